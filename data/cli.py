"""`onepass data COMMAND`: the dataset commands.

    onepass data synth --out DIR --n N --size HxW --seed S
    onepass data convert FORMAT SRC DST [options]       (data/convert/cli.py)

`synth` is defined here; every other data command registers itself: its module is listed in
DATA_COMMANDS and has `add_parser(data_commands)`, which adds its subparser to the `data` group (as
every stage's CLI module adds its command to `onepass`). Like them, these modules import nothing heavy
at module level, so that `onepass data --help` answers at once.
"""

from __future__ import annotations

import argparse
import importlib

# The modules of the other `onepass data` commands, each with `add_parser(data_commands)`.
DATA_COMMANDS: tuple[str, ...] = ("onepass.data.convert.cli", "onepass.data.sequences_cli")


def parse_size(text: str) -> tuple[int, int]:
    """ "128x160" -> (128, 160), as (H, W)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} must look like HxW, e.g. 128x160") from None
    return height, width


def add_parser(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="datasets", description="Commands that make datasets in the folder format.")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    add_synth_parser(data_commands)
    for module in DATA_COMMANDS:
        importlib.import_module(module).add_parser(data_commands)


def add_synth_parser(data_commands: argparse._SubParsersAction) -> None:
    synth = data_commands.add_parser("synth", help="render a synthetic dataset in the folder format")
    synth.add_argument("--out", required=True, help="dataset folder to create")
    synth.add_argument("--n", type=int, required=True, help="number of images")
    synth.add_argument("--size", type=parse_size, default=(128, 160), help="HxW (default 128x160)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--workers", type=int, default=None, help="render processes (default: all cores)")
    synth.set_defaults(run=cmd_synth)


def cmd_synth(args: argparse.Namespace) -> int:
    from onepass.data.synth_dataset import write_synthetic_dataset

    report = write_synthetic_dataset(args.out, args.n, args.size, args.seed, workers=args.workers)
    print(
        f"wrote {report.images} images to {args.out} in {report.seconds:.1f} s "
        f"({report.images_per_second:.0f} images/s end to end; rendering alone "
        f"{report.render_images_per_second_per_core:.0f} images/s per core)"
    )
    return 0
