"""The plugin seen from pytest: options, errors before collection, markers, hooks, xdist, secrets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_psdirect.lab.sshlab import SSHLab


def test_help_shows_the_option_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*psdirect*", "*--inventory=FILE*", "*--credential-env=PREFIX*"])


@pytest.mark.parametrize(("args", "message"), [
    (["--hosts", "ftp://x"], "*unknown scheme 'ftp'*"),
    (["--hosts", "ssh://root:pw@h"], "*has a password in its URL*--credential-env*"),
    (["--hosts", "qemu://vm01"], "*no transport for qemu:// targets in this version*"),
    (["--inventory", "missing.toml"], "*cannot read inventory missing.toml*"),
    (["--ssh-key", "/no/key", "--hosts", "local://"], "*--ssh-key /no/key: no such file*"),
    (["--psdirect-connect-timeout", "-1"], "*must be more than 0 seconds*"),
])
def test_bad_options_are_usage_errors(pytester: pytest.Pytester, args: list[str],
                                      message: str) -> None:
    pytester.makepyfile("def test_x(target): pass")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_no_targets_is_an_error_not_a_silent_skip(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(target): pass\ndef test_plain(): pass")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*no targets given: pass --hosts URL*"])


def test_ini_hosts_marker_and_ids(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\npsdirect_hosts = local://\n")
    pytester.makepyfile("""
        import pytest
        def test_default(target):
            assert target.url == "local://"
        @pytest.mark.targets("local://", "ssh://nobody@127.0.0.1:1")
        def test_marked(target):
            assert target.run("true").rc == 0
    """)
    result = pytester.runpytest("-v", "--psdirect-connect-timeout", "2")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines([
        "*test_default[[]local://[]] PASSED*",
        "*test_marked[[]ssh://nobody@127.0.0.1:1[]] ERROR*",
        "*connection refused by 127.0.0.1:1 (hint: is sshd running*",
    ])


def test_unreachable_target_fails_once_then_fast(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("\n".join(f"def test_{i}(target): pass" for i in range(5)))
    result = pytester.runpytest("--hosts", "ssh://u@127.0.0.1:1,local://")
    result.assert_outcomes(passed=5, errors=5)
    assert result.duration < 5


def test_inventory_tags_and_names(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", fleet="""
        [targets.me]
        url = "local://"
        tags = ["linux", "here"]
        [targets.other]
        url = "ssh://nobody@127.0.0.1:1"
        tags = ["linux"]
    """)
    pytester.makepyfile("""
        import pytest
        @pytest.mark.targets(tags=["here"])
        def test_tagged(target):
            assert target.name == "me" and "here" in target.tags
        @pytest.mark.targets("me")
        def test_named(target):
            assert target.url == "local://"
        @pytest.mark.targets(tags=["windows"])
        def test_none(target):
            pass
    """)
    result = pytester.runpytest("--inventory", "fleet.toml")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*no target has all tags*"])


def test_transport_and_credential_hooks(pytester: pytest.Pytester,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin registers a transport that requires a credential; conftest supplies one."""
    monkeypatch.setenv("CI", "true")
    pytester.makeconftest("""
        from pytest_psdirect import Credential, Secret
        from pytest_psdirect.transports.local import LocalTransport

        class NeedsCred(LocalTransport):
            scheme = "vm"
            credential_required = True

        def pytest_psdirect_register_transports(registry):
            registry.register("vm", NeedsCred)

        def pytest_psdirect_credential(target, config, required):
            if target.host == "given":
                return Credential("admin", Secret("from-hook"))
            return None

        def pytest_psdirect_session_opened(target, session):
            print("OPENED", target.url)
    """)
    pytester.makepyfile("def test_x(target): assert target.run('true').rc == 0")
    result = pytester.runpytest("-s", "--hosts", "vm://given,vm://missing")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*OPENED vm://given",
        "*vm://missing: a credential is required and none was found*--credential-env*",
    ])


def test_testinfra_host_fixture_runs_over_our_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_x(host, target):
            assert host.backend.session is target
            assert host.file("/etc/passwd").exists
    """)
    pytester.runpytest("--hosts", "local://").assert_outcomes(passed=1)


LAB_SUITE = """
import os
def test_{n}(target):
    assert target.run("true").rc == 0
"""


def test_xdist_keeps_one_session_per_target_per_worker(pytester: pytest.Pytester,
                                                       ssh_lab: SSHLab) -> None:
    pytester.makeconftest("""
        import os
        def pytest_psdirect_session_opened(target, session):
            with open(os.environ["OPENED_LOG"], "a") as fh:
                fh.write(f"{target.url} {os.environ.get('PYTEST_XDIST_WORKER')}\\n")
    """)
    for n in range(4):
        pytester.makepyfile(**{f"test_m{n}": LAB_SUITE.format(n=n)})
    log = pytester.path / "opened.log"
    os.environ["OPENED_LOG"] = str(log)
    try:
        result = pytester.runpytest_subprocess("-n", "2", "--inventory", str(ssh_lab.inventory_file))
    finally:
        del os.environ["OPENED_LOG"]
    result.assert_outcomes(passed=12)
    lines = log.read_text().splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(
        h.url for h in ssh_lab.state.hosts)  # type: ignore[union-attr]


def test_xdist_worker_crash_reports_the_test_once_and_goes_on(pytester: pytest.Pytester) -> None:
    """A worker killed mid-test: that test fails once (never re-run), the target's others run."""
    pytester.makepyfile("""
        import os, signal
        def test_a(target):
            if not os.environ.get("CRASHED_ONCE"):
                os.environ["CRASHED_ONCE"] = "1"
                os.kill(os.getpid(), signal.SIGKILL)
        def test_b(target):
            pass
    """)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess("-n", "1", "--hosts", "local://", "-rA",
                                           f"--junitxml={junit}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.no_fnmatch_line("PASSED*test_a*")
    assert junit.read_text().count('name="test_a[local://]"') == 1


def test_secrets_never_reach_output_junit_or_showlocals(pytester: pytest.Pytester,
                                                       ssh_lab: SSHLab,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    password = ssh_lab.password
    assert password
    monkeypatch.setenv("GOOD_USERNAME", ssh_lab.user)
    monkeypatch.setenv("GOOD_PASSWORD", password)
    monkeypatch.setenv("BAD_USERNAME", ssh_lab.user)
    monkeypatch.setenv("BAD_PASSWORD", password[::-1] + "-wrong")
    pytester.makepyfile("""
        def test_fails_with_locals(target):
            cred = target._transport.credential
            assert target.run("id -un").stdout == "nobody"
    """)
    hosts = ",".join(h.url for h in ssh_lab.state.hosts[:2])  # type: ignore[union-attr]
    outputs = []
    for prefix in ("GOOD", "BAD"):
        xml = pytester.path / f"{prefix}.xml"
        result = pytester.runpytest_subprocess(
            "--hosts", hosts, "--credential-env", prefix, "--ssh-known-hosts",
            str(ssh_lab.known_hosts), "--showlocals", "--log-level=DEBUG", "-rA",
            f"--junitxml={xml}", "-o", "junit_logging=all")
        outputs.append(result)
        text = "\n".join(result.outlines + result.errlines) + xml.read_text()
        assert password not in text and password[::-1] not in text
    outputs[0].assert_outcomes(failed=2)  # password login worked; the assertion failed
    outputs[1].assert_outcomes(errors=2)
    outputs[1].stdout.fnmatch_lines(["*authentication failed for user*"])


def test_example_baseline_fails_only_where_the_lab_is_weak(pytester: pytest.Pytester,
                                                            ssh_lab: SSHLab) -> None:
    suite = Path(__file__).parent.parent / "example_suites" / "linux_baseline"
    result = pytester.runpytest_subprocess(str(suite), "--inventory", str(ssh_lab.inventory_file),
                                           "-p", "no:cacheprovider", "-rf")
    hardened, *weak = ssh_lab.state.hosts  # type: ignore[union-attr]
    for line in result.outlines:
        if line.startswith("FAILED"):
            assert hardened.url not in line, line
    for host in weak:
        result.stdout.fnmatch_lines([
            f"FAILED *test_sshd_setting[[]{host.url}-permitrootlogin-no[]]*",
            f"FAILED *test_sshd_max_auth_tries[[]{host.url}[]]*",
        ], consecutive=False)
    errors = [line for line in result.outlines if line.startswith("E ")]
    for message in ("AssertionError: sshd permitrootlogin is 'yes', expected 'no'",
                    "AssertionError: sshd MaxAuthTries is 6, expected 4 or less"):
        assert sum(message in line for line in errors) == 2, message
    result.assert_outcomes(passed=8 + 5 * 2, failed=3 * 2)
    result.stdout.fnmatch_lines(["*psdirect: checks per target*", "*psdirect: targets (3)*",
                                 f"*{hardened.url} *8 passed in*"])


def test_example_baseline_on_local(pytester: pytest.Pytester) -> None:
    suite = Path(__file__).parent.parent / "example_suites" / "linux_baseline"
    result = pytester.runpytest_subprocess(str(suite), "--hosts", "local://", "-p",
                                           "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 5, result.stdout.str()
    result.stdout.fnmatch_lines(["*test_shadow_is_private*PASS*"])
