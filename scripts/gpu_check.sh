#!/usr/bin/env bash
# The GPU check: one command on a machine with one NVIDIA GPU and PyTorch with CUDA already installed
# (Python 3.12, any recent torch, no BentoML, no internet), in at most 8 minutes:
#
#   bash scripts/gpu_check.sh [--wheels DIR] [--out DIR] [--python PY] [--skip PART,...] [--dry-run]
#
#   1. tests    the CUDA tests (pytest -m cuda), and the frame-size graph's tests on this torch
#   2. train    a few AMP training steps on synthetic scenes with GradNorm, in bf16 and forced fp16
#               (GradScaler; GradNorm's gradient norms under fp16)
#   3. bench    onepass bench --device cuda: torch eager fp32, bf16 and fp16 autocast (OUT/gpu-torch.json)
#               and torch.compile fp16 (OUT/gpu-compile.json), at batch 1, 8 and 32, inputs 128x160 and
#               480x640; predict end to end from 480x640 and 1080x1920 frames (OUT/gpu-source-sizes.json).
#               CUDA graphs are not a backend option yet (torch.compile's "reduce-overhead" mode would be).
#   4. report   BENCHMARKS.md regenerated from every OUT/*.json (its GPU section from the gpu-*.json)
#
# Nothing is downloaded. onepass is installed with `pip install --no-deps --no-build-isolation -e .`
# into a venv that sees the machine's packages (--system-site-packages: its torch, Triton, timm, onnx,
# onnxruntime), and whatever onepass needs that the machine lacks comes only from the wheels in
# --wheels DIR (pip --no-index --find-links DIR). The wheels it may need, by import name:
# safetensors, isal, onnxscript (with onnx_ir, ml_dtypes), pycocotools, yaml (pyyaml), tqdm, rich
# (with markdown-it-py, mdurl, pygments), pytest (with iniconfig, pluggy, packaging); matplotlib is
# optional (the charts). A missing one without --wheels stops the check at once, naming them.
#
# --dry-run prints every command it would run, and where results go, without needing a GPU.
# Exit status: 0 all parts passed; 1 a part failed (the others still ran, each named in the summary);
# 2 a usage error or a machine that cannot run the check (one line on stderr).
set -uo pipefail
cd "$(dirname "$0")/.."

usage="usage: bash scripts/gpu_check.sh [--wheels DIR] [--out DIR] [--python PY] [--skip tests,train,bench,report] [--dry-run]"
wheels=""
out="docs/bench"
python="${PYTHON:-python3}"
skip=""
dry_run=0
parts="tests train bench report"
venv=".gpu-check-venv"
work="runs/gpu-check"

fail() {  # one line, exit 2: a usage error or a machine that cannot run the check
  echo "gpu_check.sh: $1" >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) [ $# -ge 2 ] || fail "--wheels needs a folder of wheels"; wheels="$2"; shift 2 ;;
    --out) [ $# -ge 2 ] || fail "--out needs a folder"; out="$2"; shift 2 ;;
    --python) [ $# -ge 2 ] || fail "--python needs an interpreter"; python="$2"; shift 2 ;;
    --skip) [ $# -ge 2 ] || fail "--skip needs a list of parts (tests, train, bench, report)"; skip="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) echo "$usage"; exit 0 ;;
    *) fail "unknown argument '$1' ($usage)" ;;
  esac
done
for part in ${skip//,/ }; do
  case " $parts " in
    *" $part "*) parts="$(echo " $parts " | sed "s/ $part / /" | xargs)" ;;
    *) fail "--skip: unknown part '$part' (tests, train, bench, report)" ;;
  esac
done
if [ -n "$wheels" ] && [ ! -d "$wheels" ]; then
  fail "--wheels $wheels: not a folder"
fi

run() {  # run SECONDS COMMAND...: print it; run it under a time limit unless this is a dry run
  local seconds="$1"
  shift
  echo "+ [${seconds}s] $*"
  [ "$dry_run" = 1 ] && return 0
  timeout --kill-after=10 "$seconds" "$@"
}

bin="$venv/bin"
if [ "$dry_run" = 0 ]; then
  command -v "$python" >/dev/null || fail "no $python here (--python PY names the interpreter with torch)"
  gpus="$("$python" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)" 2>/dev/null)" \
    || fail "$python cannot import torch: this check needs PyTorch with CUDA installed"
  [ "$gpus" -ge 1 ] 2>/dev/null || fail "no CUDA GPU here (torch.cuda.is_available() is False); run it on a machine with an NVIDIA GPU"
  missing=""
  for module in safetensors isal onnxscript pycocotools yaml tqdm rich pytest; do
    "$python" -c "import $module" 2>/dev/null || missing="$missing $module"
  done
  if [ -n "$missing" ] && [ -z "$wheels" ]; then
    fail "missing Python packages:$missing; give their wheels with --wheels DIR (nothing is downloaded)"
  fi
fi

echo "== setup: a venv over the machine's packages, onepass editable, missing packages from ${wheels:-nowhere}"
run 120 "$python" -m venv --system-site-packages "$venv" || fail "could not create $venv"
if [ -n "$wheels" ] && [ -n "${missing:-}" ]; then
  declare -A wheel_of=([yaml]=pyyaml)
  names=""
  for module in $missing; do names="$names ${wheel_of[$module]:-$module}"; done
  # shellcheck disable=SC2086  # one argument per package
  run 180 "$bin/python" -m pip install --no-index --find-links "$wheels" $names || fail "installing$names from $wheels failed"
fi
run 120 "$bin/python" -m pip install --no-deps --no-build-isolation -e . || fail "pip install -e . failed"
run 10 mkdir -p "$out" "$work"

failed=""
for part in $parts; do
  case "$part" in
    tests)
      echo "== tests: the CUDA tests (the files that have them: no BentoML here), and the frame-size graph's"
      run 150 "$bin/python" -m pytest -x -q -m cuda -p no:cacheprovider tests/runtime/test_backends.py \
        tests/runtime/test_predictor.py tests/export/test_tensorrt.py || failed="$failed tests(cuda)"
      # this torch's antialiased resize against Pillow's (another torch version than the project's)
      run 60 "$bin/python" -m pytest -x -q -p no:cacheprovider tests/models/test_inference_graph.py \
        || failed="$failed tests(frame-graph)"
      ;;
    train)
      echo "== train: AMP steps with GradNorm, bf16 and fp16"
      run 60 "$bin/onepass" data synth --out "$work/synth" --n 32 --size 128x160 --seed 0 \
        || failed="$failed train(data)"
      for amp in bf16 fp16; do
        # fp16: the loop picks bf16 where the GPU has it; hiding bf16 makes it take fp16 with its GradScaler
        run 90 "$bin/python" - "$work/synth" "$work/model-$amp" "$amp" <<'PY' || failed="$failed train($amp)"
import sys

import torch

from onepass.train.config import TrainConfig
from onepass.train.loop import train

data, out, amp = sys.argv[1:]
if amp == "fp16":
    torch.cuda.is_bf16_supported = lambda *args, **kwargs: False
config = TrainConfig.from_mapping(dict(
    data=data, val_data=data, out=out, steps=6, batch_size=8, num_workers=0, device="cuda", amp=True,
    balancer="gradnorm", warmup_steps=1, encoder="mobilenetv4_conv_small", input_size=(128, 160),
))
package = train(config, progress=False)
print(f"train {amp}: {config.run.steps} steps with GradNorm, metrics of {sorted(package.metrics['metrics'])}")
PY
      done
      ;;
    bench)
      echo "== bench: torch eager fp32 / bf16 / fp16 autocast, batch 1, 8, 32, inputs 128x160 and 480x640"
      run 120 "$bin/onepass" bench default --device cuda --backends torch \
        --precisions fp32,bf16,fp16 --batch-sizes 1,8,32 --input-sizes 128x160,480x640 --metric-images 0 \
        --iters 10 --seconds 0.5 --warmup 3 --json "$out/gpu-torch.json" || failed="$failed bench(torch)"
      # compiling takes most of a minute per variant: fp16 only, the goal's (at most 0.2x eager fp32 at batch 8)
      echo "== bench: torch.compile fp16, batch 1, 8, 32, inputs 128x160 and 480x640"
      run 180 "$bin/onepass" bench default --device cuda --backends torch-compile \
        --precisions fp16 --batch-sizes 1,8,32 --input-sizes 128x160,480x640 --metric-images 0 \
        --iters 10 --seconds 0.5 --warmup 3 --json "$out/gpu-compile.json" || failed="$failed bench(compile)"
      echo "== bench: predict end to end from 480x640 and 1080x1920 frames, batch 1 (goal: within 1.5x of the model time at 128x160)"
      run 90 "$bin/onepass" bench default --device cuda --backends torch --precisions fp32 --batch-sizes 1 \
        --source-size 128x160,480x640,1080x1920 --metric-images 0 --iters 10 --seconds 0.5 \
        --json "$out/gpu-source-sizes.json" || failed="$failed bench(source-sizes)"
      ;;
    report)
      echo "== report: BENCHMARKS.md from every $out/*.json"
      run 60 "$bin/python" -m onepass.bench.report --out BENCHMARKS.md --plots "$out" "$out"/*.json \
        || failed="$failed report"
      ;;
  esac
done

if [ "$dry_run" = 1 ]; then
  echo "dry run: results would go to $out/gpu-torch.json, $out/gpu-compile.json, $out/gpu-source-sizes.json and BENCHMARKS.md"
  exit 0
fi
if [ -n "$failed" ]; then
  echo "gpu_check.sh: failed:$failed (the log above says why)" >&2
  exit 1
fi
echo "gpu_check.sh: all passed; results in $out/gpu-torch.json, $out/gpu-compile.json, $out/gpu-source-sizes.json and BENCHMARKS.md"
