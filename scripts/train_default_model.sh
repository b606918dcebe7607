#!/usr/bin/env bash
# Train the shipped default model from scratch on this machine's CPU, then copy the package files
# into src/onepass/default_model/. Everything it uses is rendered here (no downloads).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${ONEPASS_VENV:-.venv}"
work="${1:-runs/default-model}"
rm -rf "$work" && mkdir -p "$work"
"$venv/bin/onepass" data synth --out "$work/synth-train" --n 3000 --size 128x160 --seed 0
"$venv/bin/onepass" data synth --out "$work/synth-val" --n 500 --size 128x160 --seed 1
"$venv/bin/onepass" train --config configs/default.yaml --data "$work/synth-train" --val-data "$work/synth-val" --out "$work/first"
# version 2: 600 more steps from those weights, a fresh schedule (configs/default-finetune.yaml)
"$venv/bin/onepass" train --config configs/default-finetune.yaml --init-from "$work/first" --data "$work/synth-train" \
  --val-data "$work/synth-val" --out "$work/package"
target=src/onepass/default_model
rm -rf "$target" && mkdir -p "$target"
cp "$work/package/onepass.json" "$work/package/weights.safetensors" "$work/package/metrics.json" "$target/"
"$venv/bin/onepass" export "$target" --int8 --calib synth   # model.onnx, model.int8.onnx, exports.json
"$venv/bin/onepass" info "$target"
