"""`onepass train` and `onepass eval`.

    onepass train [--config FILE] [--KEY VALUE ...] [--set KEY=VALUE ...] [--resume]
    onepass eval MODEL --data DIR [--baseline TASK=metrics.json ...] [--visualize N]
    onepass calibrate MODEL --data DIR [--images N] [--no-rescore]

The train flags are made from TrainConfig's fields (train/config.py): one flag per flat key, its
type, help and choices from the field, one argument group per section. A flag overrides the
--config file, and `--set` overrides both. Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
import json
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from onepass.data.cli import parse_size
from onepass.errors import ConfigError
from onepass.train.config import CalibrationOptions, Option, options


def add_parser(commands: argparse._SubParsersAction) -> None:
    add_train_parser(commands)
    add_eval_parser(commands)
    add_calibrate_parser(commands)


# ---- onepass train --------------------------------------------------------------------------------
def add_train_parser(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train", help="train a model package",
        description="Train a model package. Every option is a field of onepass.train.config.TrainConfig: "
        "set it with its flag, in a --config file (flat keys, e.g. batch_size: 16) or with --set key=value.",
    )  # fmt: skip
    train.add_argument(
        "--config", metavar="FILE", help="YAML or TOML file of training options (flat keys, as the flags' names)"
    )
    groups: dict[type, argparse._ArgumentGroup] = {}
    for option in options():
        if option.section not in groups:
            doc = (option.section.__doc__ or "").strip().splitlines()[0]
            groups[option.section] = train.add_argument_group(f"{_section_title(option)} options", doc)
        groups[option.section].add_argument(_flag(option), dest=option.key, default=None, **_flag_arguments(option))
    train.add_argument(
        "--set", nargs="*", metavar="KEY=VALUE",
        help="any option by its key, after the flags and the file, e.g. lr_tasks=\"{'depth': 1e-3}\" "
        "(values read with ast.literal_eval; a bare word is a string)",
    )  # fmt: skip
    train.add_argument("--resume", action="store_true", help="continue from OUT/train/checkpoint.pt")
    train.set_defaults(run=cmd_train)


def _flag(option: Option) -> str:
    return "--" + option.key.replace("_", "-")


def _section_title(option: Option) -> str:
    return option.path[0] if len(option.path) == 2 else " ".join(option.path[:-1])


def _flag_arguments(option: Option) -> dict[str, Any]:
    """type, action, metavar, choices and help for the option's flag, from its field's type."""
    hint = option.hint
    if typing.get_origin(hint) in (types.UnionType, typing.Union):  # X | None: a flag sets X
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    help_text = option.help
    if option.choices:
        each = "each " if origin is tuple else ""
        help_text += f"; {each}one of: {', '.join(option.choices)}"
    if option.required:
        help_text += f" (required, here or as {option.key} in the --config file)"
    elif "(default" not in help_text:
        help_text += f" (default: {_shown(option.default)})"
    flag: dict[str, Any] = {"help": help_text.replace("%", "%%")}
    if hint is bool:
        return {**flag, "action": argparse.BooleanOptionalAction}
    if hint in (int, float, str):
        flag |= {"type": hint, "metavar": option.metavar or ("NAME" if option.choices else hint.__name__.upper())}
        if option.choices:
            flag["choices"] = option.choices
        return flag
    if origin is tuple and arguments == (int, int):
        return {**flag, "type": parse_size, "metavar": "HxW"}
    if origin is tuple and arguments[-1] is Ellipsis:
        return {**flag, "type": comma_separated(option.choices), "metavar": "A,B,..."}
    if origin is dict:
        return {**flag, "type": literal_mapping, "metavar": "{...}"}
    raise TypeError(f"TrainConfig option {option.key}: no flag for type {option.hint}")


def _shown(value: Any) -> str:
    if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    if isinstance(value, tuple) and len(value) == 2:
        return f"{value[0]}x{value[1]}"
    return "none" if value is None else str(value)


def comma_separated(choices: tuple[str, ...] | None):
    """A flag type: "semseg,depth" -> ("semseg", "depth"), each one of `choices` when given."""

    def parse(text: str) -> tuple[str, ...]:
        import difflib

        items = tuple(item.strip() for item in text.split(",") if item.strip())
        for item in items:
            if choices is not None and item not in choices:
                close = difflib.get_close_matches(item, choices, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise argparse.ArgumentTypeError(f"unknown {item!r}{hint} (choose from {', '.join(choices)})")
        return items

    return parse


def literal_mapping(text: str) -> dict[str, Any]:
    """A flag type: "{'depth': 4e-3}" -> {"depth": 0.004}, read with ast.literal_eval (never eval)."""
    import ast

    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r} must be a mapping, e.g. \"{{'depth': 4e-3}}\"")
    return value


def cmd_train(args: argparse.Namespace) -> int:
    from onepass.train.config import TrainConfig, parse_overrides, read_config_file
    from onepass.train.loop import train

    values = read_config_file(args.config) if args.config else {}
    for option in options():
        value = getattr(args, option.key)
        if value is not None:
            values[option.key] = value
    values.update(parse_overrides(args.set or []))
    for option in options():
        if option.required and option.key not in values:
            raise ConfigError(f"{_flag(option)} is required (or set {option.key} in the --config file)")
    config = TrainConfig.from_mapping(values)
    package = train(config, resume=args.resume)
    if package is not None:
        print(f"wrote model package {package.path}")
        metrics = package.metrics
        if metrics:
            from onepass.models.metrics_table import format_metrics_table

            print(format_metrics_table(metrics["metrics"], package.config.tasks, metrics["baselines"]))
    return 0


# ---- onepass eval ---------------------------------------------------------------------------------
# Datasets of other kinds that `onepass eval` scores, each registered by the later stage that can score
# it (a stage never imports a later one): name -> (accepts(data path), evaluate(package, args) -> exit
# status). predict/cli.py registers sequence datasets (tracking over video frames, docs/video.md).
DATASET_EVALUATORS: dict[str, tuple[Callable[[str], bool], Callable[[Any, argparse.Namespace], int]]] = {}


def add_eval_parser(commands: argparse._SubParsersAction) -> None:
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


def cmd_eval(args: argparse.Namespace) -> int:
    """The package's metrics on a folder dataset, written as a metrics document (the shape of the
    package's own metrics.json), with Δ_MTL when every task has a single-task baseline."""
    from onepass.models.metrics_table import format_metrics_table
    from onepass.models.package import open_package, write_metrics
    from onepass.train.dataset import TaskDataset
    from onepass.train.evaluate import data_description, delta_mtl, evaluate_dataset

    package = open_package(args.model)
    for accepts, evaluate_other in DATASET_EVALUATORS.values():
        if accepts(args.data):
            return evaluate_other(package, args)
    config = package.config
    single_task = {}
    for pair in args.baseline or []:
        task, sep, path = pair.partition("=")
        if not sep or task not in {t.name for t in config.tasks}:
            raise ConfigError(
                f"--baseline {pair!r} must be TASK=metrics.json with TASK one of the model's tasks "
                f"({', '.join(t.name for t in config.tasks)})"
            )
        single_task[task] = _read_baseline(Path(path), task)
    baselines = {"single-task": single_task} if single_task else {}
    dataset = TaskDataset.from_folder(args.data, config.tasks, config.input_size)
    model = package.load_model(args.device)
    results = evaluate_dataset(model, dataset, args.batch_size, args.num_workers, args.device)
    print(format_metrics_table(results, config.tasks, baselines))
    delta = None
    if single_task:
        missing = [t.name for t in config.tasks if t.name not in single_task]
        if missing:
            print(f"Δ_MTL needs a single-task baseline for every task; missing: {', '.join(missing)}")
        else:
            delta = delta_mtl(results, single_task, config.tasks)
            print(f"Δ_MTL = {delta:+.2f} % (mean relative change over tasks' metrics; + is better)")
    out = Path(args.json or f"eval-{package.name}.json")
    description = data_description(args.data, len(dataset))
    write_metrics(out, results, description, baselines, model=str(package.path), delta_mtl=delta)
    print(f"wrote {out}")
    if args.visualize:
        from onepass.train.evaluate import prediction_panel

        picture = out.with_suffix(".png")
        prediction_panel(model, dataset, args.visualize).save(picture)
        print(f"wrote {picture} (predictions next to the truth for {min(args.visualize, len(dataset))} images)")
    return 0


def _read_baseline(path: Path, task: str) -> dict[str, float]:
    """One task's metrics from a metrics document (a package's metrics.json or an eval report)."""
    if not path.is_file():
        raise ConfigError(f"--baseline: file {path} not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"--baseline: {path} is not valid JSON ({error})") from None
    section = data.get("metrics") if isinstance(data, dict) else None
    metrics = section.get(task) if isinstance(section, dict) else None
    if not isinstance(metrics, dict):
        raise ConfigError(f"--baseline: {path} has no metrics for task {task!r}")
    return metrics


# ---- onepass calibrate ----------------------------------------------------------------------------
def add_calibrate_parser(commands: argparse._SubParsersAction) -> None:
    calibrate = commands.add_parser(
        "calibrate", help="choose a package's decision settings (a score threshold) on labelled data",
        description="Choose each task's decision settings (the people count's score threshold) on a labelled "
        "folder and write them into the package's onepass.json, with the data that chose them and the metric "
        "before and after. Training does this after its last epoch; this command does it for a package that "
        "exists. metrics.json is scored again on its own held-out folder. Export the package again afterwards: "
        "its exported graphs hold the old settings.",
    )  # fmt: skip
    calibrate.add_argument("model", help="model package directory (or 'default')")
    calibrate.add_argument(
        "--data", required=True, metavar="DIR",
        help="labelled folder dataset to choose them on: training data or a split of it, not the held-out "
        "folder metrics.json is scored on",
    )  # fmt: skip
    default_images = CalibrationOptions().images
    calibrate.add_argument(
        "--images", type=int, default=default_images, metavar="N",
        help=f"at most this many of its images, spread over the folder (default: {default_images})",
    )  # fmt: skip
    calibrate.add_argument(
        "--no-rescore", dest="rescore", action="store_false",
        help="leave metrics.json as it is (its figures then predate the new settings)",
    )  # fmt: skip
    calibrate.add_argument("--batch-size", dest="batch_size", type=int, default=16)
    calibrate.add_argument("--num-workers", dest="num_workers", type=int, default=0)
    calibrate.add_argument("--device", default="cpu")
    calibrate.set_defaults(run=cmd_calibrate)


def cmd_calibrate(args: argparse.Namespace) -> int:
    """`onepass.train.calibrate.calibrate` on a package: its onepass.json gets the new settings and the
    record, its metrics.json is scored again, and its exports are reported stale when the settings changed."""
    import dataclasses

    from onepass.models.metrics_table import format_metrics_table
    from onepass.models.package import CONFIG_FILE, METRICS_FILE, open_package, save_metrics, write_package_config
    from onepass.models.package_exports import FRAME_ONNX_FILE, ONNX_FILES
    from onepass.train.calibrate import (
        calibrate,
        describe_calibration,
        has_settings_to_calibrate,
        same_folder,
        task_names,
    )
    from onepass.train.dataset import TaskDataset
    from onepass.train.evaluate import data_description, evaluate_dataset

    if args.images < 1:
        raise ConfigError(f"--images must be positive, got {args.images}")
    package = open_package(args.model)
    config = package.config
    if not has_settings_to_calibrate(config.tasks):
        raise ConfigError(f"{package.path}: no task of this model has settings to calibrate ({task_names(config)})")
    if not Path(args.data).is_dir():
        raise ConfigError(f"--data {args.data}: no such folder (give a labelled folder dataset)")
    dataset = TaskDataset.from_folder(args.data, config.tasks, config.input_size)
    metrics = package.metrics
    held_out_set = None
    if metrics is not None and args.rescore:
        held_out = str(metrics["data"].get("path", ""))
        where = package.path / METRICS_FILE
        if not held_out or not Path(held_out).is_dir():
            raise ConfigError(
                f"{where} was scored on {held_out or 'an unrecorded folder'}, which is not here to score it again; "
                "run where it is, or pass --no-rescore to leave metrics.json as it is"
            )
        if same_folder(held_out, args.data):
            raise ConfigError(
                f"--data {args.data} is the held-out folder {where} is scored on: settings chosen on it would "
                "score themselves; calibrate on training data (or a split of it), or pass --no-rescore"
            )
        held_out_set = TaskDataset.from_folder(held_out, config.tasks, config.input_size)
    model = package.load_model(args.device)
    result = calibrate(model, dataset, args.images, args.batch_size, args.num_workers, args.device)
    training = {**package.training, "calibration": result.record}
    write_package_config(dataclasses.replace(package, config=result.config, training=training))
    for line in describe_calibration(result.record):
        print(line)
    print(f"wrote {package.path / CONFIG_FILE}")
    if held_out_set is not None:
        model.config = result.config  # the weights stay; only post-processing settings changed
        results = evaluate_dataset(model, held_out_set, args.batch_size, args.num_workers, args.device)
        baselines = metrics.get("baselines", {})
        print(format_metrics_table(results, result.config.tasks, baselines))
        save_metrics(package.path, results, data_description(metrics["data"]["path"], len(held_out_set)), baselines)
        print(f"wrote {package.path / METRICS_FILE} (scored again on {metrics['data']['path']})")
    exported = [*ONNX_FILES.values(), FRAME_ONNX_FILE, *(p.name for p in sorted(package.path.glob("model.*.plan")))]
    stale = [name for name in exported if (package.path / name).is_file()]
    if stale and result.config != config:
        print(
            f"{', '.join(stale)}: exported with the old settings, so refused from now on; "
            f"export the package again with `onepass export {package.path}` and the options it was exported with"
        )
    return 0
