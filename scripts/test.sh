#!/usr/bin/env bash
# Sets up what the test suite needs on a fresh machine (a virtualenv with the project and its
# test extras), then runs the same checks CI runs: ruff, ruff format, mypy --strict, pytest.
# The project is installed as a user gets it (not editable), so the tests exercise the engine
# as compiled by mypyc (see setup.py), then the compiled packages once more from src/ (pure Python).
# Extra arguments go to pytest (for example: bash scripts/test.sh -k engine -x).
set -euo pipefail
cd "$(dirname "$0")/.."

# The dashboard test drives Debian's Chromium through Playwright (never a downloaded browser).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
# Where a C compiler exists the compiled build must succeed: a quiet fallback to pure Python
# would pass the tests while hiding a broken build (setup.py reads this variable).
if [ "${BASTION_PURE_PYTHON:-0}" != 1 ] && command -v cc >/dev/null 2>&1; then
  export BASTION_REQUIRE_COMPILED=1
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check '.[test]'

.venv/bin/python -c 'import bastion.engine.protocol as m, bastion.ratelimit.storage.memory as r; print("== engine build:", "compiled (mypyc)" if m.__file__.endswith(".so") and r.__file__.endswith(".so") else "pure Python (no C compiler?)")'

echo "== ruff"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest: bastion as installed (engine compiled by mypyc where a compiler is present)"
.venv/bin/pytest "$@"
echo "== pytest: the pure-Python source of the compiled modules (editable installs, no C compiler)"
# Only the suites of the packages setup.py compiles run twice: everything else is the same Python
# code in both passes, and running it again would only double the time the suite takes (the OIDC
# provider and alert suites exercise no compiled module beyond what the others do).
PYTHONPATH=src exec .venv/bin/pytest tests/engine tests/pipeline tests/ratelimit tests/auth \
  tests/observability tests/asgi tests/advisories tests/validation/injection \
  --ignore=tests/auth/oidc --ignore=tests/observability/alerts \
  "$@"
