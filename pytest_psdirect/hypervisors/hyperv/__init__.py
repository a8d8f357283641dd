"""Hyper-V: PowerShell Direct into VMs.

``nested`` reaches a VM through a PowerShell session on its Hyper-V host (any OS runs pytest);
``lifecycle`` implements :class:`~pytest_psdirect.hypervisors.base.Hypervisor` (Get-VM,
Start-VM, Stop-VM, checkpoints, differencing-disk provisioning) with host templates;
``troubleshoot`` maps the documented PowerShell Direct errors to exceptions with their causes;
``templates/`` holds the host-side PowerShell, shipped as files, values passed as parameters.
The native route (AF_HYPERV socket on a Windows host) plugs in where
:meth:`pytest_psdirect.transports.psdirect.PSDirectTransport._native_engine` says.
"""
