#!/usr/bin/env bash
# The README's first command: install into .venv (works where the system pip refuses, PEP 668),
# then run the Linux baseline against this machine. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
.venv/bin/python -m pytest example_suites/linux_baseline --hosts local:// -p no:cacheprovider -q "$@"
