#!/usr/bin/env bash
# The cost of logging: bastion with every event written against bastion with logging off.
# Installs what bench/proxy.sh installs, then runs bench/logging.py with the arguments given.
set -euo pipefail
BENCH_SCRIPT=event_logging.py exec "$(dirname "${BASH_SOURCE[0]}")/proxy.sh" "$@"
