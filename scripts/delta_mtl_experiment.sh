#!/usr/bin/env bash
# Δ_MTL of the multi-task model against single-task models at the same budget: one model per task
# and one with all four tasks, same encoder, data, epochs and seed; then `onepass eval` with the
# single-task metrics as baselines. Uses the data that scripts/train_default_model.sh rendered.
#   bash scripts/delta_mtl_experiment.sh [EPOCHS] [WORK_DIR]
# One seed, one configuration: the README's first experiment. `onepass study` (docs/study.md) runs the
# whole grid (architectures, balancers, per-task learning rates) over several seeds, with mean ± std.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${ONEPASS_VENV:-.venv}"
epochs="${1:-4}"
work="${2:-runs/default-model}"
out="$work/delta-mtl-${epochs}ep"
mkdir -p "$out"
common=(--config configs/default.yaml --data "$work/synth-train" --val-data "$work/synth-val" --epochs "$epochs")
baselines=()
for task in semseg depth normals attributes; do
  "$venv/bin/onepass" train "${common[@]}" --tasks "$task" --out "$out/single-$task" --name "single-$task"
  baselines+=("$task=$out/single-$task/metrics.json")
done
"$venv/bin/onepass" train "${common[@]}" --out "$out/multi" --name multi
"$venv/bin/onepass" eval "$out/multi" --data "$work/synth-val" --json "$out/delta_mtl.json" --baseline "${baselines[@]}"
