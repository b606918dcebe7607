"""The `onepass` command: one entry point, a subcommand per job.

    onepass data synth --out DIR --n N --size HxW --seed S
    onepass train [--config FILE] [flags] [--set key=value ...] [--resume]
    onepass eval MODEL --data DIR [--baseline TASK=metrics.json ...]
    onepass export MODEL [--format onnx|tensorrt] [--half] [--int8 --calib DIR] ...
    onepass info [MODEL]

Errors a user can cause print one clear line (no traceback) and exit with status 2, usage errors
included (`onepass train: error: ...`); a misspelled command or choice gets a "did you mean".
Building the parser imports nothing heavy (no torch, numpy, onnx, bentoml): `onepass --help` and
every subcommand's `--help` answer at once.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import onepass
from onepass.errors import UserError


class UsageError(UserError, ValueError):
    """Options that cannot work together, or a required one missing; printed as one line, exit 2."""


class OnepassParser(argparse.ArgumentParser):
    """argparse with one-line errors and close-match suggestions (Ultralytics-style) for commands,
    choices and options."""

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        namespace = argparse.Namespace() if namespace is None else namespace
        # The innermost (sub)command's parser, for its error prefix: a subparser's namespace is copied
        # over its parent's, so the deepest one wins.
        namespace._parser = self
        return super().parse_known_args(args, namespace)

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            parser: OnepassParser = namespace._parser
            options = [o for action in parser._actions for o in action.option_strings]
            close = [difflib.get_close_matches(e.split("=")[0], options, n=1) for e in extras if e.startswith("-")]
            hint = "".join(f"; did you mean {c[0]!r}?" for c in close if c)
            parser.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
        return namespace

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is None or value in action.choices:
            return
        choices = [str(c) for c in action.choices]
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        if isinstance(action, argparse._SubParsersAction):
            raise argparse.ArgumentError(None, f"unknown command {value!r}{hint} (commands: {', '.join(choices)})")
        raise argparse.ArgumentError(action, f"invalid choice {value!r}{hint} (choose from {', '.join(choices)})")

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def parse_size(text: str) -> tuple[int, int]:
    """ "128x160" -> (128, 160), as (H, W)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} must look like HxW, e.g. 128x160") from None
    return height, width


def cmd_data_synth(args: argparse.Namespace) -> int:
    from onepass.data.synth_dataset import write_synthetic_dataset

    report = write_synthetic_dataset(args.out, args.n, args.size, args.seed, workers=args.workers)
    print(
        f"wrote {report.images} images to {args.out} in {report.seconds:.1f} s "
        f"({report.images_per_second:.0f} images/s end to end; rendering alone "
        f"{report.render_images_per_second_per_core:.0f} images/s per core)"
    )
    return 0


TRAIN_FLAGS = {
    # flag -> TrainConfig field (the flags users reach for most; every field also works with --set)
    "data": "data",
    "val_data": "val_data",
    "out": "out",
    "name": "name",
    "encoder": "encoder",
    "pretrained_file": "pretrained_file",
    "architecture": "architecture",
    "tasks": "tasks",
    "input_size": "input_size",
    "epochs": "epochs",
    "steps": "steps",
    "batch_size": "batch_size",
    "optimizer": "optimizer",
    "lr": "lr",
    "schedule": "schedule",
    "balancer": "balancer",
    "seed": "seed",
    "device": "device",
    "num_workers": "num_workers",
}


def cmd_train(args: argparse.Namespace) -> int:
    from onepass.train.config import TrainConfig, parse_overrides, read_config_file
    from onepass.train.loop import train

    values = read_config_file(args.config) if args.config else {}
    for flag, field in TRAIN_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            values[field] = value
    values.update(parse_overrides(args.set or []))
    for required in ("data", "out"):
        if required not in values:
            raise UsageError(f"--{required} is required (or set {required} in the --config file)")
    config = TrainConfig.from_mapping(values)
    package = train(config, resume=args.resume)
    if package is not None:
        print(f"wrote model package {package.path}")
        metrics = package.metrics
        if metrics:
            from onepass.train.evaluate import format_metrics_table

            print(
                format_metrics_table(
                    metrics["metrics"], package.config.tasks, {"trivial": metrics["baselines"].get("trivial", {})}
                )
            )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from onepass.data.folder import FolderDataset
    from onepass.models.package import METRICS_FORMAT, METRICS_VERSION, open_package, write_json_atomic
    from onepass.train.dataset import TaskDataset
    from onepass.train.evaluate import delta_mtl, evaluate, format_metrics_table

    package = open_package(args.model)
    config = package.config
    baselines = {}
    for pair in args.baseline or []:
        task, sep, path = pair.partition("=")
        if not sep or task not in {t.name for t in config.tasks}:
            raise UsageError(
                f"--baseline {pair!r} must be TASK=metrics.json with TASK one of the model's tasks "
                f"({', '.join(t.name for t in config.tasks)})"
            )
        baselines[task] = _read_metrics_file(Path(path), task)
    folder = FolderDataset(args.data, {t.name: t.codec for t in config.tasks if t.codec is not None})
    dataset = TaskDataset(folder, config.tasks, config.input_size)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, num_workers=args.num_workers)
    model = package.load_model(args.device)
    results = evaluate(model, loader, config.tasks, config.mean, config.std, args.device)
    columns = {"single-task": baselines} if baselines else {}
    print(format_metrics_table(results, config.tasks, columns))
    report = {
        "format": METRICS_FORMAT,
        "version": METRICS_VERSION,
        "model": str(package.path),
        "data": {"path": str(args.data), "images": len(dataset)},
        "metrics": results,
        "baselines": {"single-task": baselines} if baselines else {},
    }
    if baselines:
        missing = [t.name for t in config.tasks if t.name not in baselines]
        if missing:
            print(f"Δ_MTL needs a single-task baseline for every task; missing: {', '.join(missing)}")
        else:
            report["delta_mtl"] = delta_mtl(results, baselines, config.tasks)
            print(f"Δ_MTL = {report['delta_mtl']:+.2f} % (mean relative change over tasks' metrics; + is better)")
    out = Path(args.json or f"eval-{package.name}.json")
    write_json_atomic(out, report)
    print(f"wrote {out}")
    if args.visualize:
        from onepass.train.evaluate import prediction_panel

        picture = out.with_suffix(".png")
        prediction_panel(model, dataset, args.visualize).save(picture)
        print(f"wrote {picture} (predictions next to the truth for {min(args.visualize, len(dataset))} images)")
    return 0


def _read_metrics_file(path: Path, task: str) -> dict[str, float]:
    if not path.is_file():
        raise UsageError(f"--baseline: file {path} not found")
    data = json.loads(path.read_text())
    metrics = data.get("metrics", {}).get(task)
    if not isinstance(metrics, dict):
        raise UsageError(f"--baseline: {path} has no metrics for task {task!r}")
    return metrics


def cmd_info(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from onepass.models.card import model_card
    from onepass.models.package import open_package
    from onepass.train.evaluate import format_metrics_table

    package = open_package(args.model)
    config = package.config
    console = Console(width=120)
    parameters = package.parameter_count()
    console.print(f"[bold]{package.name}[/bold] version {package.version}  ({package.path})")
    console.print(
        f"encoder {config.encoder} (pretrained={config.pretrained}), architecture {config.architecture}, "
        f"decoder {config.decoder_channels} ch, input {config.input_size[0]}x{config.input_size[1]} (HxW)"
        + (f", {parameters / 1e6:.2f} M parameters" if parameters else "")
    )
    card = model_card(package)  # what it was trained on, first: the same card as the web page's
    console.print(f"[bold]trained on[/bold] {escape(card['trained_on'])}", highlight=False)
    if card["evaluated_on"]:
        console.print(f"[bold]evaluated on[/bold] {escape(card['evaluated_on'])}", highlight=False)
    console.print(f"[bold yellow]{escape(card['caveat'])}[/bold yellow]", highlight=False)
    console.print(escape(card["train_your_own"]), highlight=False)
    tasks = Table(title="tasks and outputs")
    for column in ("task", "labels", "outputs"):
        tasks.add_column(column)
    for task in config.tasks:
        tasks.add_row(
            task.name,
            task.label_summary(),
            ", ".join(f"{o.name} {o.dtype} {list(o.shape)}" for o in task.output_specs()),
        )
    console.print(tasks)
    metrics = package.metrics
    if metrics:
        console.print(f"metrics on {metrics['data'].get('path')} ({metrics['data'].get('images')} images):")
        console.print(format_metrics_table(metrics["metrics"], config.tasks, metrics.get("baselines", {})), end="")
    training = package.training
    if training:
        console.print(
            f"trained {training.get('steps')} steps / {training.get('epochs')} epochs on {training.get('train_images')} images "
            f"in {training.get('seconds')} s ({training.get('device')}), balancer {training.get('config', {}).get('balancer')}"
        )
    files = Table(title="files")
    files.add_column("file")
    files.add_column("size", justify="right")
    for name, size in package.files().items():
        files.add_row(name, f"{size / 1e6:.2f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB")
    console.print(files)
    return 0


# Later stages add their own subcommands: each module has `add_parser(commands)` and imports nothing
# heavy at module level, so that `onepass --help` stays fast. Their errors derive from UserError.
STAGE_COMMANDS = ("onepass.export.cli", "onepass.serve.cli", "onepass.predict.cli", "onepass.bench.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = OnepassParser(prog="onepass", description="One forward pass, every answer.")
    parser.add_argument("--version", action="version", version=f"onepass {onepass.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="datasets").add_subparsers(
        dest="data_command", required=True, metavar="COMMAND"
    )
    synth = data.add_parser("synth", help="render a synthetic dataset in the folder format")
    synth.add_argument("--out", required=True, help="dataset folder to create")
    synth.add_argument("--n", type=int, required=True, help="number of images")
    synth.add_argument("--size", type=parse_size, default=(128, 160), help="HxW (default 128x160)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--workers", type=int, default=None, help="render processes (default: all cores)")
    synth.set_defaults(run=cmd_data_synth)
    importlib.import_module("onepass.data.convert.cli").add_parser(data)

    train = commands.add_parser("train", help="train a model package")
    train.add_argument("--config", help="YAML or TOML file of training options")
    train.add_argument("--data", help="training dataset folder")
    train.add_argument("--val-data", dest="val_data", help="held-out dataset folder (metrics.json)")
    train.add_argument("--out", help="model package directory to write")
    train.add_argument("--name", help="package name")
    train.add_argument("--encoder", help="timm model name (features_only)")
    train.add_argument(
        "--pretrained-file",
        dest="pretrained_file",
        help="the encoder's starting weights: timm, torchvision or safetensors",
    )
    train.add_argument("--architecture", help="shared-fpn | hps")
    train.add_argument("--tasks", type=lambda s: tuple(s.split(",")), help="comma-separated, e.g. semseg,depth")
    train.add_argument("--input-size", dest="input_size", type=parse_size, help="HxW, multiples of 32")
    train.add_argument("--epochs", type=int)
    train.add_argument("--steps", type=int, help="total optimiser steps (overrides --epochs)")
    train.add_argument("--batch-size", dest="batch_size", type=int)
    train.add_argument("--optimizer", help="adamw | sgd")
    train.add_argument("--lr", type=float)
    train.add_argument("--schedule", help="cosine | constant")
    train.add_argument("--balancer", help="fixed | uncertainty | gradnorm | dwa")
    train.add_argument("--seed", type=int)
    train.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    train.add_argument("--num-workers", dest="num_workers", type=int)
    train.add_argument(
        "--set", nargs="*", metavar="KEY=VALUE", help="any other option, e.g. lr_tasks=\"{'depth': 1e-3}\""
    )
    train.add_argument("--resume", action="store_true", help="continue from OUT/train/checkpoint.pt")
    train.set_defaults(run=cmd_train)

    evaluate = commands.add_parser("eval", help="evaluate a model package on a dataset")
    evaluate.add_argument("model", help="model package directory (or 'default')")
    evaluate.add_argument("--data", required=True, help="dataset folder")
    evaluate.add_argument("--json", help="where to write the results (default eval-<name>.json)")
    evaluate.add_argument("--baseline", nargs="*", metavar="TASK=METRICS_JSON", help="single-task results for Δ_MTL")
    evaluate.add_argument(
        "--visualize", type=int, default=0, metavar="N", help="also draw the first N images (PNG beside the JSON)"
    )
    evaluate.add_argument("--batch-size", dest="batch_size", type=int, default=16)
    evaluate.add_argument("--num-workers", dest="num_workers", type=int, default=0)
    evaluate.add_argument("--device", default="cpu")
    evaluate.set_defaults(run=cmd_eval)

    info = commands.add_parser("info", help="describe a model package")
    info.add_argument(
        "model", nargs="?", default="default", help="model package directory (default: the shipped model)"
    )
    info.set_defaults(run=cmd_info)

    for module in STAGE_COMMANDS:
        importlib.import_module(module).add_parser(commands)
    return parser


# What the CLI prints as one line and exit status 2: every onepass error a user can cause, and the
# operating system's word on a path the user gave.
USER_ERRORS = (UserError, FileExistsError, FileNotFoundError)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version (0) or a usage error, already printed (2)
        return done.code if isinstance(done.code, int) else 2
    run: Callable[[argparse.Namespace], int] = args.run
    prog = args._parser.prog  # "onepass train", "onepass data synth"
    try:
        return run(args)
    except USER_ERRORS as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
