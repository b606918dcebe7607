#!/usr/bin/env bash
# Set up the environment with the dev, ray and bench extras and run the linters and the whole test suite.
# The install is editable (scripts/setup.sh --editable): the venv imports this checkout, so a later
# `.venv/bin/python -m pytest ...` by hand tests the same, current code.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --editable ".[dev,ray,bench,video]"
venv="${ONEPASS_VENV:-.venv}"
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
"$venv/bin/python" -m pytest "$@"
