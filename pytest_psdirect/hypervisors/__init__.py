"""Hypervisors: how a VM target is reached and its lifecycle. ``base``: the
:class:`~.base.Hypervisor` protocol (state, start, stop, wait_ready, checkpoints, provision,
destroy) the plugin drives; ``hyperv``: PowerShell Direct and the lifecycle through a Hyper-V
host's PowerShell session."""
