"""Hypervisors: how a VM target is reached (and, later, its lifecycle). ``hyperv``: PowerShell
Direct through a Hyper-V host's PowerShell session."""
