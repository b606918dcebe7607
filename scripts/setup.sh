#!/usr/bin/env bash
# Create (or update) the project's virtual environment and install onepass into it.
#   bash scripts/setup.sh [--editable] [PIP_TARGET]     PIP_TARGET defaults to "." (e.g. ".[dev]")
# Without --editable the wheel is built and installed, as users get it (scripts/run.sh). With it the
# venv imports this checkout's source (scripts/test.sh), so `pytest` run by hand after an edit tests
# the edited code; tests/test_checkout.py fails when that is not so.
# Environment:
#   ONEPASS_VENV=DIR    the venv folder (default .venv)
#   ONEPASS_TORCH=cpu   torch and torchvision from PyTorch's CPU-only wheel index: no CUDA libraries
#                       (about 1.9 GB instead of 6.4 GB with every extra; README, "Install"). Needs a
#                       new venv. Default: the pinned wheels from the configured index (PyPI's carry
#                       CUDA; on this project's machines pip takes them from local files).
set -euo pipefail
cd "$(dirname "$0")/.."
editable=()
if [ "${1:-}" = "--editable" ]; then
  editable=(--editable)
  shift
fi
venv="${ONEPASS_VENV:-.venv}"
target="${1:-.}"
case "${ONEPASS_TORCH:-default}" in
  default) torch_index=() ;;
  cpu) torch_index=(--index-url https://download.pytorch.org/whl/cpu) ;;
  *)
    echo "setup.sh: ONEPASS_TORCH must be 'cpu' or unset (got '${ONEPASS_TORCH}')" >&2
    exit 2
    ;;
esac
python="$(command -v python3.11 || command -v python3)"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
cuda_build() { "$venv/bin/python" -c 'import sys, torch; sys.exit(torch.version.cuda is None)' 2>/dev/null; }
if [ "${ONEPASS_TORCH:-}" = cpu ] && cuda_build; then
  echo "setup.sh: $venv holds a CUDA build of torch; ONEPASS_TORCH=cpu needs a new venv (rm -rf $venv, or set ONEPASS_VENV)" >&2
  exit 2
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
# torch first, pinned, from the chosen index
"$venv/bin/python" -m pip install --quiet "${torch_index[@]}" "torch==2.14.1" "torchvision==0.29.1"
if [ "${ONEPASS_TORCH:-}" = cpu ] && cuda_build; then
  echo "setup.sh: pip installed a CUDA build of torch although ONEPASS_TORCH=cpu (another index offered it first)" >&2
  exit 1
fi
if [ ${#editable[@]} -eq 0 ]; then
  # a fresh wheel even when the version number has not changed
  "$venv/bin/python" -m pip install --quiet --upgrade --force-reinstall --no-deps "$target"
fi
"$venv/bin/python" -m pip install --quiet "${editable[@]}" "$target"
"$venv/bin/python" -c 'import sys, torch, onepass
build = "CUDA " + torch.version.cuda if torch.version.cuda else "CPU only"
print(f"onepass {onepass.__version__} installed in {sys.prefix} from {onepass.__path__[0]} (torch {torch.__version__}, {build})")'
