"""Compliance: Reasons, DSC-style resources (Audit / AuditAndSet), assertion helpers.

Example::

    from pytest_psdirect.compliance import File, SshdSetting, assert_compliant

    def test_sshd_root(target):
        assert_compliant(target.check(SshdSetting("permitrootlogin", "no")))
"""

from .assertions import assert_compliant, assert_reason, describe
from .model import ComplianceResult, Mode, Observed, Reason, Resource
from .psresource import PSResource
from .resources.accounts import Group, User
from .resources.dsc import DscResource
from .resources.files import File, MountOption
from .resources.system import KernelModule, Package, Service, SshdSetting, Sysctl
from .resources.windows import (
    AccountPolicy,
    AuditPolicy,
    FirewallProfile,
    OptionalFeature,
    RegistryValue,
    WindowsService,
)
from .runner import Checker
from .shell import ShellResource, q

__all__ = [
    "AccountPolicy", "AuditPolicy", "Checker", "ComplianceResult", "DscResource", "File",
    "FirewallProfile", "Group", "KernelModule", "Mode", "MountOption", "Observed",
    "OptionalFeature", "PSResource", "Package", "Reason", "RegistryValue", "Resource", "Service",
    "ShellResource", "SshdSetting", "Sysctl", "User", "WindowsService", "assert_compliant",
    "assert_reason", "describe", "q",
]
