#!/usr/bin/env bash
# Set up a virtual environment with the project and its test tools, then run the tests.
# This is the README's test command: `bash scripts/test.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest -q "$@"
