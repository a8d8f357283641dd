"""An acceptance gate for Windows Server VMs on Hyper-V, run over PowerShell Direct (no network
needed in the guest)::

    pytest example_suites/hyperv_gate --vm-name web01 --hyperv-host hv01 --credential-env VM
    pytest example_suites/hyperv_gate --vm-name web01,web02 --vm-start --junitxml=gate.xml

``VM_USERNAME``/``VM_PASSWORD`` hold an administrator account of the guest. Each check is one
PowerShell script run in the VM with ``target.run_ps`` (values as parameters); a failing check
says what it found and what was expected. IIS checks run where IIS is installed or the target
is tagged ``iis`` (inventory tags). Thresholds are the constants below: adjust them to your
policy. Add ``--vm-start`` to start VMs that are off, ``-rs`` to see what was skipped and why.

Every script starts with a ``# gate:NAME`` comment: PowerShell ignores it, and the test suite's
simulated Hyper-V host uses it to answer as a guest would (tests/test_hyperv_gate_example.py).
"""

from __future__ import annotations

import pytest

from pytest_psdirect import TargetSession

REQUIRED_SERVICES = ("EventLog", "WinRM", "W32Time", "Dnscache", "LanmanServer", "vmicheartbeat")
MIN_BUILD = 14393  # Windows Server 2016
MIN_FREE_GB = 10.0
MIN_FREE_PERCENT = 15.0
UNSYNCED_TIME_SOURCES = ("Local CMOS Clock", "Free-running System Clock")


def test_os_is_a_supported_windows_server(ps):
    os_info = ps("""# gate:os
        $os = Get-CimInstance -ClassName Win32_OperatingSystem
        [pscustomobject]@{ Caption = $os.Caption; Build = [int]$os.BuildNumber
                           ProductType = [int]$os.ProductType }""")[0]
    assert os_info["ProductType"] in (2, 3), f"{os_info['Caption']} is not a server OS"
    assert os_info["Build"] >= MIN_BUILD, (
        f"{os_info['Caption']} build {os_info['Build']}: expected {MIN_BUILD} (2016) or later")


def test_required_services_run_and_start_automatically(ps):
    found = {s["Name"]: s for s in ps("""# gate:services
        param([string[]]$Name)
        Get-Service -Name $Name -ErrorAction SilentlyContinue | ForEach-Object {
            [pscustomobject]@{ Name = $_.Name; Status = [string]$_.Status
                               StartType = [string]$_.StartType } }""",
                                       Name=list(REQUIRED_SERVICES))}
    missing = [n for n in REQUIRED_SERVICES if n not in found]
    assert not missing, f"services not installed: {missing}"
    bad = {n: f"{s['Status']}/{s['StartType']}" for n, s in found.items()
           if s["Status"] != "Running" or s["StartType"] != "Automatic"}
    assert not bad, f"expected Running/Automatic, found {bad}"


def test_firewall_is_on_in_every_profile(ps):
    profiles = ps("""# gate:firewall
        Get-NetFirewallProfile | ForEach-Object {
            [pscustomobject]@{ Name = $_.Name; Enabled = [bool]$_.Enabled
                               DefaultInboundAction = [string]$_.DefaultInboundAction } }""")
    assert {p["Name"] for p in profiles} == {"Domain", "Private", "Public"}
    off = [p["Name"] for p in profiles if not p["Enabled"]]
    assert not off, f"the firewall is off in profile(s) {off}"
    allowing = [p["Name"] for p in profiles if p["DefaultInboundAction"] == "Allow"]
    assert not allowing, f"inbound traffic is allowed by default in {allowing}"


def test_no_reboot_is_pending(ps):
    pending = ps(r"""# gate:pending-reboot
        $cv = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion'
        $sm = Get-ItemProperty -Path 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager'
        [pscustomobject]@{
            ComponentServicing = Test-Path "$cv\Component Based Servicing\RebootPending"
            WindowsUpdate = Test-Path "$cv\WindowsUpdate\Auto Update\RebootRequired"
            FileRenames = [bool]$sm.PendingFileRenameOperations }""")[0]
    reasons = [k for k in ("ComponentServicing", "WindowsUpdate", "FileRenames") if pending[k]]
    assert not reasons, f"a reboot is pending ({', '.join(reasons)}): reboot before the gate"


def test_windows_update_service_is_not_disabled(ps):
    wu = ps("""# gate:wuauserv
        $s = Get-Service -Name wuauserv
        [pscustomobject]@{ Status = [string]$s.Status; StartType = [string]$s.StartType }""")[0]
    assert wu["StartType"] != "Disabled", "the Windows Update service (wuauserv) is disabled"


def test_time_is_synchronized(ps):
    source = ps("""# gate:time
        $src = (w32tm /query /source | Out-String).Trim()
        [pscustomobject]@{ Source = $src; W32Time = [string](Get-Service -Name W32Time).Status }""")[0]
    assert source["W32Time"] == "Running", "W32Time is not running"
    assert source["Source"] not in UNSYNCED_TIME_SOURCES, (
        f"time source is {source['Source']!r}: configure NTP or the Hyper-V time provider")


def test_system_drive_has_free_space(ps):
    disk = ps("""# gate:disk
        $d = Get-CimInstance -ClassName Win32_LogicalDisk -Filter "DeviceID='$($env:SystemDrive)'"
        [pscustomobject]@{ Drive = $d.DeviceID; Free = [double]$d.FreeSpace
                           Size = [double]$d.Size }""")[0]
    free_gb, percent = disk["Free"] / 2**30, 100 * disk["Free"] / disk["Size"]
    assert free_gb >= MIN_FREE_GB and percent >= MIN_FREE_PERCENT, (
        f"{disk['Drive']} has {free_gb:.1f} GB free ({percent:.0f}%): expected at least "
        f"{MIN_FREE_GB:g} GB and {MIN_FREE_PERCENT:g}%")


def test_smb1_is_disabled(ps):
    smb = ps("""# gate:smb1
        [pscustomobject]@{ SMB1 = [bool](Get-SmbServerConfiguration).EnableSMB1Protocol }""")[0]
    assert not smb["SMB1"], "SMB1 is enabled: Set-SmbServerConfiguration -EnableSMB1Protocol $false"


def test_remote_desktop_requires_nla(ps):
    rdp = ps(r"""# gate:rdp-nla
        $ts = 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server'
        $k = Get-ItemProperty -Path "$ts\WinStations\RDP-Tcp"
        [pscustomobject]@{ UserAuthentication = [int]$k.UserAuthentication }""")[0]
    assert rdp["UserAuthentication"] == 1, (
        "Remote Desktop allows connections without Network Level Authentication")


def test_defender_real_time_protection_is_on(ps):
    mp = ps("""# gate:defender
        $s = Get-MpComputerStatus
        [pscustomobject]@{ RealTime = [bool]$s.RealTimeProtectionEnabled
                           SignatureAgeDays = [int]$s.AntivirusSignatureAge }""")[0]
    assert mp["RealTime"], "Microsoft Defender real-time protection is off"
    assert mp["SignatureAgeDays"] <= 7, f"antivirus signatures are {mp['SignatureAgeDays']} days old"


def test_iis_serves_its_sites(ps, target: TargetSession):
    iis = ps("""# gate:iis
        $w3 = Get-Service -Name W3SVC -ErrorAction SilentlyContinue
        $sites = @()
        if ($w3) { Import-Module WebAdministration; $sites = @(Get-Website | ForEach-Object {
            [pscustomobject]@{ Name = $_.Name; State = [string]$_.State } }) }
        [pscustomobject]@{ Installed = [bool]$w3; W3SVC = [string]$w3.Status; Sites = $sites }""")[0]
    if not iis["Installed"]:
        if "iis" in target.tags:
            pytest.fail("tagged iis, but IIS (W3SVC) is not installed")
        pytest.skip("IIS is not installed")
    assert iis["W3SVC"] == "Running", f"W3SVC is {iis['W3SVC']}"
    stopped = [s["Name"] for s in iis["Sites"] if s["State"] != "Started"]
    assert iis["Sites"] and not stopped, f"IIS sites not started: {stopped or 'no sites'}"
