"""Parity with testinfra: one testinfra suite on a real sshd host whose login shell is bash, run
under testinfra's own plugin (paramiko backend) and under ours; outcomes and outputs must match."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_psdirect.lab.sshlab import SSHLab

SUITE = Path(__file__).parent / "parity" / "parity_suite.py"  # not test_*: only run from here


@pytest.fixture
def bash_login_user(ssh_lab: SSHLab) -> Iterator[str]:
    """The lab user, with bash as login shell for the test (the lab creates it with /bin/sh)."""
    before = subprocess.run(["getent", "passwd", ssh_lab.user], capture_output=True, text=True,
                            check=True).stdout.strip().split(":")[-1]
    subprocess.run(["chsh", "-s", "/bin/bash", ssh_lab.user], check=True)
    yield ssh_lab.user
    subprocess.run(["chsh", "-s", before, ssh_lab.user], check=True)


def _run(pytester: pytest.Pytester, name: str, target_id: str,
         *args: str) -> tuple[dict[str, str], dict[str, object]]:
    """Run the suite; return {test name without the target id: outcome} and the recorded values."""
    pytester.makepyfile(test_parity_suite=SUITE.read_text())
    xml, out = pytester.path / f"{name}.xml", pytester.path / f"{name}.jsonl"
    pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--junitxml={xml}", *args,
                                  "test_parity_suite.py")
    outcomes = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        test = str(case.get("name")).replace(f"[{target_id}-", "[").replace(f"[{target_id}]", "")
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[test] = kinds[0] if kinds else "passed"
    values = {}
    for line in out.read_text().splitlines():
        entry = json.loads(line)
        values[entry["check"]] = entry["value"]
    return outcomes, values


def test_same_outcomes_and_outputs_as_testinfra_paramiko(pytester: pytest.Pytester, ssh_lab: SSHLab,
                                                         bash_login_user: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert ssh_lab.state is not None
    address = ssh_lab.state.hosts[0].address
    url = f"paramiko://{bash_login_user}@{address}"
    key = str(ssh_lab.key_file)
    runs = {}
    for name, target_id, args in (
        ("testinfra", f"paramiko://{address}",
         ("-p", "no:psdirect", "--hosts", url, "--ssh-identity-file", key)),
        ("psdirect", f"ssh://{bash_login_user}@{address}",
         ("--hosts", url, "--ssh-identity-file", key, "--ssh-known-hosts", str(ssh_lab.known_hosts))),
    ):
        monkeypatch.setenv("PARITY_OUT", str(pytester.path / f"{name}.jsonl"))
        runs[name] = _run(pytester, name, target_id, *args)
    (theirs, their_values), (ours, our_values) = runs["testinfra"], runs["psdirect"]
    assert len(theirs) >= 20 and theirs["test_failing_check"] == "failure"
    assert their_values["test_run:test -n \"$BASH_VERSION\" && echo bash"] == [0, "bash\n", ""]
    differ = {check: {"testinfra": their_values.get(check), "psdirect": our_values.get(check)}
              for check in sorted(set(their_values) | set(our_values))
              if their_values.get(check) != our_values.get(check)}
    assert (ours, differ) == (theirs, {}), json.dumps(differ, indent=1)
