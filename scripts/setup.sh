#!/usr/bin/env bash
# Create (or update) the project's virtual environment and install onepass into it.
#   bash scripts/setup.sh [PIP_TARGET]     PIP_TARGET defaults to "." (e.g. ".[dev]" for the tests)
# The wheel is built and installed (not editable), as users get it. ONEPASS_VENV picks the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${ONEPASS_VENV:-.venv}"
target="${1:-.}"
python="$(command -v python3.11 || command -v python3)"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
# torch first, pinned: on this project's machines pip takes these two from local files.
"$venv/bin/python" -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
"$venv/bin/python" -m pip install --quiet --upgrade --force-reinstall --no-deps "$target"
"$venv/bin/python" -m pip install --quiet "$target"
echo "onepass installed in $venv ($("$venv/bin/python" -c 'import onepass; print(onepass.__version__)'))"
