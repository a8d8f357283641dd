#!/usr/bin/env bash
# The README's first command: install, then run the Linux baseline against this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e .
python3 -m pytest example_suites/linux_baseline --hosts local:// -p no:cacheprovider -q "$@"
