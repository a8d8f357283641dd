"""QEMU: VMs reached through the QEMU guest agent (``qemu-ga`` on virtio-serial), the Linux
analogue of PowerShell Direct: no network in the guest.

``protocol`` is the sans-IO JSON line protocol QMP and the agent share; ``channel`` carries it
over QEMU's unix sockets or ``virsh`` (libvirt domains); ``guest`` is the agent's commands
(guest-exec, guest-file-*); ``machine`` starts QEMU itself and implements
:class:`~pytest_psdirect.hypervisors.base.Hypervisor` (QMP snapshot jobs, qcow2 overlays);
``libvirt`` implements it for libvirt domains with ``virsh``.

We talk QMP ourselves rather than through PyPI's ``qemu.qmp``: that library is asyncio-only
(a sync shim marked legacy) and knows nothing of the agent's ``guest-sync-delimited``, while the
two protocols are the same few lines of JSON here.
"""
