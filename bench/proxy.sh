#!/usr/bin/env bash
# Reverse-proxy benchmark: bastion vs nginx on one core each. See bench/README.md.
# Installs nginx and wrk (Debian packages) and bastion (compiled, into .venv) when missing,
# then runs bench/run_proxy.py with the arguments given (--rounds, --duration, --quick, ...).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"

need_apt=()
command -v nginx >/dev/null 2>&1 || need_apt+=(nginx)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v taskset >/dev/null 2>&1 || need_apt+=(util-linux)
if ((${#need_apt[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "missing ${need_apt[*]}; install them (as root: apt-get install nginx-light wrk)" >&2
        exit 1
    fi
    apt-get update -qq
    pkgs=()
    for p in "${need_apt[@]}"; do
        if [[ $p == nginx ]]; then
            # nginx-light is enough (and smallest); fall back to nginx where it does not exist.
            if apt-cache show nginx-light >/dev/null 2>&1; then pkgs+=(nginx-light); else pkgs+=(nginx); fi
        else
            pkgs+=("$p")
        fi
    done
    echo "installing ${pkgs[*]} ..." >&2
    # The benchmark never uses the system nginx or its configuration: it runs its own instances
    # with -p/-c on a temporary directory.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "no virtualenv at $venv; create it first (python3 -m venv .venv)" >&2
    exit 1
fi
if [[ ! -x "$venv/bin/bastion" ]] || ! "$venv/bin/python" -c "import bastion" 2>/dev/null; then
    echo "installing bastion into $venv ..." >&2
    # Not editable: an editable install runs the pure-Python engine (see setup.py), which is
    # not what users run; run_proxy.py prints which engine it measured.
    "$venv/bin/pip" install -q "$root"
fi

exec "$venv/bin/python" "$root/bench/${BENCH_SCRIPT:-run_proxy.py}" "$@"
