#!/usr/bin/env bash
# The cost of a guard: bastion with it against bastion without it. See bench/README.md.
# Installs what bench/proxy.sh installs, then runs bench/guards.py with the arguments given.
set -euo pipefail
BENCH_SCRIPT=guards.py exec "$(dirname "${BASH_SOURCE[0]}")/proxy.sh" "$@"
