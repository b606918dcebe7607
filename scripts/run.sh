#!/usr/bin/env bash
# The main job on the shipped default model: set up, describe it, and evaluate it on freshly
# rendered synthetic scenes that it never saw (a different seed from its training data).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh .
venv="${ONEPASS_VENV:-.venv}"
out=runs/quickstart
rm -rf "$out" && mkdir -p "$out"
"$venv/bin/onepass" info
"$venv/bin/onepass" data synth --out "$out/scenes" --n 200 --size 128x160 --seed 2026
"$venv/bin/onepass" eval default --data "$out/scenes" --json "$out/eval.json" --visualize 6
