"""A simulated Hyper-V host for the tests: handlers for the psrp test server (handlers.py) and
helpers to configure it (sim.py)."""
