#!/usr/bin/env bash
# The test command of the README (and of .ci/run).
# 1. installs vtatune with its test extras and the apache-tvm backend (tvm, models: torch CPU,
#    onnx) into .venv and runs the whole suite;
# 2. proves the VTA core (hardware model, ISA, simulators, compiler) works with numpy 1.26 —
#    the PYNQ board image pins numpy < 2 — by running those tests in a second venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# CI: a PostgreSQL server from Debian's packages for the database tests (they fail, not
# skip, when CI is set and no server is configured).
if [ -n "${CI:-}" ] && [ -z "${VTATUNE_TEST_POSTGRES_URL:-}" ]; then
    VTATUNE_TEST_POSTGRES_URL="$(bash scripts/ci_postgres.sh)"
    export VTATUNE_TEST_POSTGRES_URL
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,tvm,models]'
.venv/bin/python -m pytest -n 2 "$@"

[ -x .venv-np126/bin/python ] || "$PY" -m venv .venv-np126
.venv-np126/bin/python -m pip install -q --disable-pip-version-check 'numpy==1.26.*' -e '.[test]'
.venv-np126/bin/python -c 'import numpy; assert numpy.__version__.startswith("1.26"), numpy.__version__; print("numpy", numpy.__version__)'
.venv-np126/bin/python -m pytest -n 2 tests/core tests/cli tests/compiler "$@"
