"""What pretrained encoder weights change on the synthetic scenes, at the default model's budget.

    python benchmarks/pretrained_encoder.py --pretrained-file mobilenetv4_conv_small.safetensors \\
        [--config configs/default.yaml] [--train-images 3000] [--val-images 500] [--epochs 12] [--out runs/pretrained]

Two runs of the same config (configs/default.yaml: the shipped model's recipe), data and seed,
differing only in where the encoder starts: `scratch` (random init, as the default model) and
`pretrained` (--pretrained-file). Each evaluates on the held-out scenes after every epoch
(OUT/<arm>/train/log.jsonl). Printed, as Markdown, and written to OUT/pretrained_encoder.json:

- each task's metrics at the end of both runs;
- the steps `pretrained` took to reach the scratch run's final value of each task's headline
  metric (its first one: mIoU, abs err, mean angle, people's AP), and of
  all of them at once; "-" when it never did. Epoch granularity: evaluation runs once an epoch.

The data is rendered here (seeds 0 and 1, as scripts/train_default_model.sh does) unless --data
and --val-data name folders. The full run is the default model's training twice (README: "The
default model" gives its time), evaluations included.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from onepass.data.synth_dataset import write_synthetic_dataset
from onepass.train.config import TrainConfig, read_config_file
from onepass.train.loop import train

ARMS = ("scratch", "pretrained")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrained-file", required=True, help="the encoder's starting weights (any layout)")
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--data", help="training folder (default: render --train-images scenes)")
    parser.add_argument("--val-data", help="held-out folder (default: render --val-images scenes)")
    parser.add_argument("--train-images", type=int, default=3000)
    parser.add_argument("--val-images", type=int, default=500)
    parser.add_argument("--epochs", type=int, help="default: the config's")
    parser.add_argument("--out", default="runs/pretrained-encoder")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    out = Path(args.out)
    values = read_config_file(args.config)
    size = tuple(values.get("input_size", (128, 160)))
    data, val_data = args.data, args.val_data
    if data is None:
        data = str(out / "synth-train")
        write_synthetic_dataset(data, args.train_images, size, 0)
    if val_data is None:
        val_data = str(out / "synth-val")
        write_synthetic_dataset(val_data, args.val_images, size, 1)
    logs = {}
    for arm in ARMS:
        config = {**values, "data": data, "val_data": val_data, "out": str(out / arm), "name": arm}
        if args.epochs:
            config["epochs"] = args.epochs
        if arm == "pretrained":
            config["pretrained_file"] = args.pretrained_file
        package = train(TrainConfig.from_mapping(config))
        logs[arm] = [json.loads(line) for line in (package.path / "train" / "log.jsonl").read_text().splitlines()]
        tasks = package.config.tasks
    report = compare(logs, {t.name: t.metric_directions() for t in tasks})
    report["pretrained_file"] = str(args.pretrained_file)
    (out / "pretrained_encoder.json").write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))


def compare(logs: dict[str, list[dict[str, Any]]], directions: dict[str, dict[str, bool]]) -> dict[str, Any]:
    """Final metrics of both arms, and the steps the pretrained arm took to reach scratch's final headlines."""
    final = {arm: logs[arm][-1]["val"] for arm in ARMS}
    headline = {task: next(iter(metrics)) for task, metrics in directions.items()}

    def reached(record: dict[str, Any], task: str, metric: str) -> bool:
        value, target = record["val"][task][metric], final["scratch"][task][metric]
        return value >= target if directions[task][metric] else value <= target

    steps: dict[str, int | None] = {}
    for task, metric in headline.items():
        steps[f"{task}.{metric}"] = next((r["step"] for r in logs["pretrained"] if reached(r, task, metric)), None)
    steps["all"] = next(
        (r["step"] for r in logs["pretrained"] if all(reached(r, t, m) for t, m in headline.items())), None
    )
    return {
        "final": final,
        "headline": headline,
        "steps_to_scratch_final": steps,
        "total_steps": logs["scratch"][-1]["step"],
    }


def markdown(report: dict[str, Any]) -> str:
    lines = ["| task | metric | scratch | pretrained |", "|---|---|---|---|"]
    for task, metrics in report["final"]["scratch"].items():
        for metric, value in metrics.items():
            lines.append(f"| {task} | {metric} | {value:.4g} | {report['final']['pretrained'][task][metric]:.4g} |")
    lines += ["", f"steps for `pretrained` to reach scratch's final value (of {report['total_steps']}):", ""]
    lines += ["| headline | steps |", "|---|---|"]
    lines += [
        f"| {name} | {'-' if steps is None else steps} |" for name, steps in report["steps_to_scratch_final"].items()
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
