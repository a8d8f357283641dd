"""Root conftest: makes tests/ helpers importable; the plugin itself loads via its entry point."""
