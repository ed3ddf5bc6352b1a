#!/usr/bin/env bash
# The test command of the README (and of .ci/run).
# 1. installs vtatune with its test extras and the apache-tvm backend (tvm, models: torch CPU,
#    onnx) into .venv and runs the whole suite;
# 2. proves the VTA core (hardware model, ISA, simulators, compiler) works with numpy 1.26 —
#    the PYNQ board image pins numpy < 2 — by running those tests in a second venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# The PostgreSQL tests need a server (they fail under CI and skip elsewhere without one).
# Unless VTATUNE_TEST_POSTGRES_URL names a server of yours, the same server as CI's is used:
# scripts/ci_postgres.sh (read its header for what it changes on the machine: on Debian/Ubuntu
# it may apt-get install postgresql — sudo asks for a password if needed — and it creates and
# starts its own cluster "vtatune_test" on 127.0.0.1:54329, never touching other clusters).
# A server it finds running is reused and left running; one it had to start is stopped again
# when this script exits.  VTATUNE_TEST_POSTGRES=skip runs without it (the 19 PostgreSQL tests
# are then skipped, or fail under CI).
if [ -z "${VTATUNE_TEST_POSTGRES_URL:-}" ] && [ "${VTATUNE_TEST_POSTGRES:-}" != skip ]; then
    if ! bash scripts/ci_postgres.sh status; then
        trap 'bash scripts/ci_postgres.sh stop || true' EXIT
    fi
    if ! VTATUNE_TEST_POSTGRES_URL="$(bash scripts/ci_postgres.sh)"; then
        echo "test.sh: could not start the PostgreSQL test server (above).  Set" \
             "VTATUNE_TEST_POSTGRES_URL=postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB to" \
             "a server of yours, or VTATUNE_TEST_POSTGRES=skip to run without it." >&2
        exit 1
    fi
    export VTATUNE_TEST_POSTGRES_URL
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,tvm,models]'
.venv/bin/python -m pytest -n 2 "$@"

[ -x .venv-np126/bin/python ] || "$PY" -m venv .venv-np126
.venv-np126/bin/python -m pip install -q --disable-pip-version-check 'numpy==1.26.*' -e '.[test]'
.venv-np126/bin/python -c 'import numpy; assert numpy.__version__.startswith("1.26"), numpy.__version__; print("numpy", numpy.__version__)'
.venv-np126/bin/python -m pytest -n 2 tests/core tests/cli tests/compiler tests/board "$@"
