"""`onepass info [MODEL]`: what a model package is, what it was trained and evaluated on, and its files."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    info = commands.add_parser("info", help="describe a model package")
    info.add_argument(
        "model", nargs="?", default="default", help="model package directory (default: the shipped model)"
    )
    info.set_defaults(run=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from onepass.models.card import model_card
    from onepass.models.metrics_table import format_metrics_table
    from onepass.models.package import open_package

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
        # training.config is flat (train/config.py), in packages of every onepass version
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
