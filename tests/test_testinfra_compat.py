"""pytest-psdirect in place of testinfra's plugin: its options, URLs, testinfra_hosts, backend API."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import pytest

from pytest_psdirect.errors import TargetSpecError
from pytest_psdirect.plugin.testinfra_compat import TESTINFRA_OPTIONS, from_testinfra
from pytest_psdirect.plugin.xdist_sched import target_of


@pytest.mark.parametrize(("spec", "connection", "ours"), [
    ("paramiko://admin@web01:2222", None, "ssh://admin@web01:2222"),
    ("ssh://web01?ssh_identity_file=/k/id&timeout=5", None, "ssh://web01?key=/k/id&timeout=5"),
    ("safe-ssh://web01?controlpersist=120", None, "ssh://web01"),
    ("local://?sudo=true&sudo_user=www", None, "local://?sudo=true&sudo_user=www"),
    ("local://", None, "local://"),
    ("web01", None, "web01"),                      # bare: parse_target makes it ssh://web01
    ("admin@web01", "paramiko", "ssh://admin@web01"),
    ("anything", "local", "local://"),
    ("winrm://srv01", None, "winrm://srv01"),      # ours (no transport yet: a usage error later)
    ("docker://web", None, "container://web?runtime=docker"),
    ("podman://root@web", None, "container://root@web?runtime=podman"),
    ("web", "docker", "container://web?runtime=docker"),
])
def test_testinfra_urls_map_to_ours(spec, connection, ours):
    assert from_testinfra(spec, connection) == ours


@pytest.mark.parametrize(("spec", "connection", "names"), [
    ("docker://web?sudo=true", None, "docker://[USER@]NAME"),
    ("ansible://all", None, "--inventory"),
    ("salt://minion", None, "--inventory"),
    ("kubectl://pod", None, "ssh:// or local://"),
    ("web01", "ansible", "--inventory"),
    ("ssh://web01?ssh_config=/x", None, "--ssh-config"),
    ("ssh://web01?ansible_inventory=/x", None, "--inventory"),
])
def test_unsupported_testinfra_urls_name_the_equivalent(spec, connection, names):
    with pytest.raises(TargetSpecError) as info:
        from_testinfra(spec, connection)
    assert names in str(info.value) and "-p no:psdirect" in str(info.value)


def test_help_has_each_testinfra_option_once_in_our_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    text = result.stdout.str()
    for option in TESTINFRA_OPTIONS:
        assert sum(line.lstrip().startswith(option + (" " if option in ("--sudo", "--nagios",
                   "--force-ansible") else "=")) for line in text.splitlines()) == 1, option
    assert "\ntestinfra:" not in text


@pytest.mark.parametrize(("args", "message"), [
    (["--connection", "ansible", "--hosts", "web"], "*testinfra's ansible backend is not supported*"),
    (["--connection", "lxc"], "*use ssh:// or local://*"),
    (["--ssh-extra-args=-o ForwardAgent=no"], "*--ssh-extra-args: not supported*--ssh-config*"),
    (["--ansible-inventory", "inv.yml"], "*--ansible-inventory: not supported*--inventory*"),
    (["--force-ansible"], "*--force-ansible: not supported*"),
    (["--hosts", "lxc://web"], "*lxc://web*ssh:// or local://*"),
    (["--ssh-key", "a", "--ssh-identity-file", "b"], "*name different keys*"),
])
def test_unsupported_testinfra_options_are_usage_errors(pytester: pytest.Pytester, args, message):
    pytester.makepyfile("def test_x(host): pass")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_testinfra_hosts_and_connection_select_targets(pytester: pytest.Pytester) -> None:
    """As in testinfra: testinfra_hosts picks a module's hosts unless --hosts is given."""
    pytester.makepyfile(
        test_mod="""
            testinfra_hosts = ["local://", "paramiko://nobody@127.0.0.1:1"]
            def test_a(host):
                pass
        """,
        test_plain="def test_b(host): pass",
        test_bad="testinfra_hosts = ['lxc://c']\ndef test_c(host): pass",
    )
    result = pytester.runpytest("--collect-only", "-q", "test_mod.py")
    result.stdout.fnmatch_lines(["test_mod.py::test_a[[]local://[]]",
                                 "test_mod.py::test_a[[]ssh://nobody@127.0.0.1:1[]]"])
    result = pytester.runpytest("--collect-only", "-q", "--hosts", "a,b", "--connection", "ssh",
                                "test_mod.py", "test_plain.py")
    assert sorted(line for line in result.outlines if "::" in line) == [
        "test_mod.py::test_a[ssh://a]", "test_mod.py::test_a[ssh://b]",
        "test_plain.py::test_b[ssh://a]", "test_plain.py::test_b[ssh://b]"]
    result = pytester.runpytest("--connection", "local", "test_plain.py", "-v")
    result.stdout.fnmatch_lines(["*test_b[[]local://[]] PASSED*"])
    result = pytester.runpytest("test_bad.py")  # found while collecting: a collection error
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*UsageError: test_bad: testinfra_hosts:*lxc://c*ssh:// or local://*"])


def test_backend_answers_like_testinfras_local_backend(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import testinfra
        def test_x(host):
            theirs = testinfra.get_host("local://").backend
            ours = host.backend
            assert ours.get_hostname() == theirs.get_hostname() == "local"
            assert ours.get_connection_type() == theirs.get_connection_type() == "local"
            assert ours.host.name == "local" and ours.host.user is None
            assert host.check_output("echo %s", "a b") == "a b"
    """)
    pytester.runpytest("--hosts", "local://").assert_outcomes(passed=1)


def test_sudo_options_wrap_host_commands_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_x(host, target, pytestconfig):
            user = pytestconfig.getoption("sudo_user")
            prefix = f"sudo -u {user} /bin/sh -c " if user else "sudo /bin/sh -c "
            assert host.backend.get_command("id -u").startswith(prefix)
            assert not target.testinfra.backend.get_command("id -u").startswith("sudo")
            with host.sudo("nobody"):
                assert host.backend.get_command("id").startswith(prefix + "'sudo -u nobody")
    """)
    pytester.runpytest("--hosts", "local://", "--sudo").assert_outcomes(passed=1)
    pytester.runpytest("--hosts", "local://", "--sudo-user", "www-data").assert_outcomes(passed=1)


@pytest.mark.skipif(not shutil.which("sudo"), reason="needs sudo (.ci/run installs it)")
def test_host_sudo_runs_commands_as_that_user(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import os
        def test_x(host):
            if os.geteuid() != 0:
                return
            with host.sudo("nobody"):
                assert host.check_output("id -un") == "nobody"
            assert host.check_output("id -un") == "root"
    """)
    pytester.runpytest("--hosts", "local://?sudo_user=root").assert_outcomes(passed=1)


def test_ssh_identity_file_is_our_ssh_key(pytester: pytest.Pytester) -> None:
    key = pytester.path / "id_test"
    key.write_text("not used")
    pytester.makepyfile(f"""
        def test_x(pytestconfig):
            assert pytestconfig.getoption("ssh_key") == {str(key)!r}
    """)
    pytester.runpytest("--ssh-identity-file", str(key)).assert_outcomes(passed=1)
    result = pytester.runpytest("--ssh-identity-file", "/no/such/key")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_nagios_status_line_and_exit_code(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok(host): pass\ndef test_bad(host): assert 0")
    result = pytester.runpytest("--hosts", "local://", "--nagios")
    assert result.ret == 2
    assert result.outlines[0].startswith("TESTINFRA CRITICAL - 1 passed, 1 failed, 0 skipped")
    result = pytester.runpytest("--hosts", "local://", "--nagios", "-k", "ok")
    assert result.ret == 0
    assert result.outlines[0].startswith("TESTINFRA OK - 1 passed, 0 failed")


# -- test ids under xdist ----------------------------------------------------------------------

def test_target_of_reads_the_target_from_a_node_id():
    assert target_of("a.py::t[ssh://u@web-1-x-y]", ("ssh://u@web-1", "ssh://u@web")) == "ssh://u@web-1"
    assert target_of("a.py::t[local://?n=2-a-b]") == "local://?n=2"
    assert target_of("a.py::t[k-local://]") == "local://"
    assert target_of("a.py::t") is None


def _junit_names(path) -> list[str]:
    root = ET.parse(path).getroot()
    return sorted(f"{c.get('classname')}::{c.get('name')}" for c in root.iter("testcase"))


def test_ids_and_junit_names_are_the_same_with_and_without_xdist(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import os
        def pytest_psdirect_session_opened(target, session):
            with open("opened.log", "a") as fh:
                fh.write(f"{target.url} {os.environ.get('PYTEST_XDIST_WORKER')}\\n")
    """)
    pytester.makepyfile(**{f"test_m{n}": """
        import pytest
        @pytest.mark.targets("local://", "local://?n=2", "local://?n=3")
        @pytest.mark.parametrize("k", ["a-b", "c"])
        def test_y(target, k):
            pass
        def test_plain():
            pass
    """ for n in range(3)})
    plain = pytester.runpytest("--collect-only", "-q")
    ids = sorted(line for line in plain.outlines if "::" in line)
    assert len(ids) == 21 and all("@" not in i for i in ids)
    pytester.runpytest("--junitxml=one.xml", "-p", "no:randomly").assert_outcomes(passed=21)
    (pytester.path / "opened.log").unlink()
    result = pytester.runpytest("-n", "2", "-v", "--junitxml=two.xml")
    result.assert_outcomes(passed=21)
    ran = sorted(line.split(" PASSED ")[1].strip() for line in result.outlines if " PASSED " in line)
    assert ran == ids
    assert _junit_names(pytester.path / "one.xml") == _junit_names(pytester.path / "two.xml")
    opened = (pytester.path / "opened.log").read_text().splitlines()
    assert sorted(line.split()[0] for line in opened) == ["local://", "local://?n=2", "local://?n=3"]
