"""A plain testinfra suite, run by tests/test_testinfra_parity.py under testinfra's own plugin and
under ours: every check records what it saw into $PARITY_OUT, so both runs can be compared."""

import json
import os

import pytest


@pytest.fixture
def record(request):
    """record(value): append {check, value} to $PARITY_OUT (check: test name and command)."""
    callspec = getattr(request.node, "callspec", None)
    check = request.node.originalname + (f":{callspec.params['cmd']}" if callspec and "cmd" in
                                         callspec.params else "")

    def write(value):
        with open(os.environ["PARITY_OUT"], "a") as fh:
            fh.write(json.dumps({"check": check, "value": value}) + "\n")
        return value
    return write


def outcome(result):
    return [result.rc, result.stdout, result.stderr]


COMMANDS = [
    "[[ -n x && x == x ]] && echo yes",
    "echo -e 'a\\tb'",
    "echo $'c\\td'",
    "cat <<< here-string",
    "source /etc/os-release && echo $ID",
    "set -o pipefail; false | true; echo $?",
    "kill -9 $$; echo survived",
    "f=$(mktemp); echo $$ > $f; sh -c 'test $PPID -eq $(cat '$f') && echo own'; rm -f $f",
    "no_such_command_parity",
    "echo out; echo err >&2; exit 3",
    "test -n \"$BASH_VERSION\" && echo bash",
    "cd /tmp && pwd",
    "(sleep 0.3; echo late) & echo now",
    "echo next",
    "printf '%s|' \"$0\" \"$HOME\" \"$USER\"",
]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_run(host, record, cmd):
    record(outcome(host.run(cmd)))


def test_check_output(host, record):
    assert record(host.check_output("echo %s", "a b")) == "a b"


def test_run_expect(host, record):
    record(outcome(host.run_expect([0, 1], "grep -q no-such-line /etc/passwd")))


def test_file(host, record):
    f = host.file("/etc/passwd")
    record([f.exists, f.is_file, f.mode, f.user, f.group, "root:" in f.content_string])


def test_user(host, record):
    user = host.user()
    record([user.name, user.shell, user.home, host.user("root").uid])


def test_package(host, record):
    record([host.package("openssh-server").is_installed, host.package("no-such-pkg").is_installed])


def test_service(host, record):
    try:
        record(["ok", host.service("ssh").is_running])
    except Exception as exc:  # no init system in the lab: the error must match too
        record(["error", type(exc).__name__])


def test_process(host, record):
    record(bool(host.process.filter(comm="sshd")))


def test_sysctl(host, record):
    record(host.sysctl("kernel.ostype"))


def test_socket(host, record):
    record([host.socket("tcp://0.0.0.0:22").is_listening, host.socket("tcp://0.0.0.0:1").is_listening])


def test_exists(host, record):
    record([host.exists("bash"), host.exists("no-such-binary")])


def test_failing_check(host):
    assert host.run("false").rc == 0
