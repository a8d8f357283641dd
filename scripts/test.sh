#!/usr/bin/env bash
# The README's test command: system packages, Python dependencies, lint, types, whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    openssh-server openssh-client iproute2 procps passwd >/dev/null
fi
python3 -m pip install -q -e '.[dev]'
ruff check .
mypy
python3 -m pytest tests -p no:cacheprovider -ra "$@"
