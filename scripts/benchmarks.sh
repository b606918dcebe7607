#!/usr/bin/env bash
# Measure the shipped default model and write BENCHMARKS.md from the results (numbers only from runs).
#
#   bash scripts/benchmarks.sh            # no GPU: "cpu serve predict"; with a CUDA GPU: "gpu"
#   bash scripts/benchmarks.sh cpu        # or any of: cpu gpu serve predict report, e.g. "cpu serve"
#
# Results (JSON) and charts (PNG) go to docs/bench/; BENCHMARKS.md is regenerated from every JSON
# there, so a GPU machine's run adds its section next to the CPU results already in the repo.
# About 15 minutes on 2 CPU cores; run it on a quiet machine (each result records the load average).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${ONEPASS_VENV:-.venv}"
py="$venv/bin/python"
onepass="$venv/bin/onepass"
results=docs/bench
work=runs/bench-work  # exports and the built single-task models, shared by the runs below
model=default

if ! "$py" -c "import matplotlib" 2>/dev/null; then
  echo "the charts need matplotlib: $venv/bin/pip install '.[bench]'" >&2
  exit 2
fi
parts="$*"
if [ -z "$parts" ]; then
  if "$py" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then parts="gpu"; else parts="cpu serve predict"; fi
fi
mkdir -p "$results"
rm -rf "$work"

bench() {  # bench NAME ARGS...: one `onepass bench` run -> docs/bench/NAME.json (+ NAME-*.png)
  local name="$1"
  shift
  echo "== onepass bench $model $* ($name)"
  "$onepass" bench "$model" --workdir "$work" --json "$results/$name.json" --plot "$results" "$@"
}

for part in $parts; do
  case "$part" in
    cpu)
      # every precision of the eager and exported backends this CPU has, at the model's input size
      bench cpu --device cpu --backends torch,onnxruntime --batch-sizes 1,8
      # input size: the same model at 2x and 3x the pixels per side
      bench cpu-input-sizes --device cpu --backends torch,onnxruntime --precisions fp32 \
        --batch-sizes 1,8 --input-sizes 128x160,256x320,384x480 --metric-images 0
      # one pass against four single-task models (the 0.30x goal is for onnxruntime on CPU)
      bench cpu-vs-single-task --device cpu --backends torch,onnxruntime --precisions fp32 \
        --batch-sizes 1,8 --vs-single-task --metric-images 0
      # torch.compile on its own: compiling takes minutes on 2 cores (first_run_s in the JSON)
      bench cpu-compile --device cpu --backends torch-compile --precisions fp32 --batch-sizes 1,8 --metric-images 0
      # predict end to end from a decoded frame at each camera size (pre, model and post each timed)
      bench cpu-source-sizes --device cpu --backends onnxruntime --precisions fp32 --batch-sizes 1,8 \
        --source-size 240x320,480x640,720x1280 --metric-images 0
      # the people head's cost: the same model without it, when the model has one
      if "$py" -c "import sys; from onepass.models.package import open_package
sys.exit(0 if 'people' in [t.name for t in open_package('$model').config.tasks] else 1)"; then
        bench cpu-people-head --device cpu --backends torch,onnxruntime --precisions fp32 --batch-sizes 1,8 \
          --head-cost people --metric-images 0
      fi
      ;;
    gpu)
      bench gpu --device cuda --batch-sizes 1,8,32
      bench gpu-vs-single-task --device cuda --backends torch,onnxruntime,tensorrt --precisions fp16 \
        --batch-sizes 1,8,32 --vs-single-task --metric-images 0
      ;;
    serve)
      # onepass serve against the thirty-line baseline (Starlette + uvicorn + onnxruntime on the same
      # model.onnx), as the performance issue measured them: a 240x320 JPEG, keep-alive clients, maps on
      # and off. The bench starts each server on a free loopback port, one after the other, and stops it.
      echo "== onepass bench serve --model $model --baseline"
      "$onepass" bench serve --model "$model" --baseline --concurrency 1,4,16,64 --duration 10 \
        --source-size 240x320 --upload jpeg --maps true,false --json "$results/serve.json" --plot "$results"
      # where onepass serve's time over the baseline goes: the same app under plain uvicorn, without BentoML
      echo "== onepass bench serve --model $model --baseline --without-bentoml"
      "$onepass" bench serve --model "$model" --baseline --without-bentoml --concurrency 1,16 --duration 10 \
        --source-size 240x320 --upload jpeg --maps false --json "$results/serve-layers.json"
      ;;
    predict)
      # onepass predict end to end against the Predictor alone, on files and on a video, split by stage
      echo "== onepass predict on files and video"
      "$py" benchmarks/predict_throughput.py --n 2400 --backend onnxruntime --json "$results/predict-128x160.json"
      "$py" benchmarks/predict_throughput.py --n 400 --size 480x640 --backend onnxruntime \
        --json "$results/predict-480x640.json"
      "$py" benchmarks/video_throughput.py --model "$model" --seconds 60 --backend onnxruntime \
        --json "$results/predict-video.json"
      ;;
    report) ;;
    *)
      echo "unknown part '$part' (cpu, gpu, serve, predict, report)" >&2
      exit 2
      ;;
  esac
done

"$py" -m onepass.bench.report --out BENCHMARKS.md --plots "$results" "$results"/*.json
