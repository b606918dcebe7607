"""`onepass data convert FORMAT SRC DST [options]`: other layouts into the folder dataset format.

    onepass data convert nyuv2-mtan ~/data/nyuv2 data/nyuv2            DST/train, DST/val
    onepass data convert coco-people export.json my-frames              my-frames/people.json
    onepass data convert semseg-masks masks/ my-frames --classes classes.txt
    onepass data convert depth depth/ my-frames                         my-frames/depth/*.png
    onepass data convert sequence-frames sequences/ synth-train --every 2   frames + people.json

Each format is a subcommand with its own options (CONVERT_FORMATS); building the parser imports
nothing heavy.
"""

from __future__ import annotations

import argparse

from onepass.data.convert import CONVERT_FORMATS, ConvertFormat


def add_parser(data_commands: argparse._SubParsersAction) -> None:
    """Add `convert` to the `onepass data` subcommands."""
    convert = data_commands.add_parser(
        "convert", help="convert another layout (NYUv2, COCO people, masks, depth maps) into the folder format",
        description="Formats — " + "; ".join(f"{f.name}: {f.summary}" for f in CONVERT_FORMATS.values()) + ".",
    )  # fmt: skip
    formats = convert.add_subparsers(dest="convert_format", required=True, metavar="FORMAT")
    for chosen in CONVERT_FORMATS.values():
        _add_format(formats, chosen)


def _add_format(formats: argparse._SubParsersAction, chosen: ConvertFormat) -> None:
    parser = formats.add_parser(chosen.name, help=chosen.summary, description=chosen.summary)
    parser.add_argument("src", metavar="SRC", help=chosen.src)
    parser.add_argument("dst", metavar="DST", help=chosen.dst)
    for option in chosen.options:
        if option.kind == "flag":
            parser.add_argument(option.flag, dest=option.name, action="store_true", help=option.help)
        elif option.kind == "list":
            parser.add_argument(option.flag, dest=option.name, action="append", default=None, help=option.help)
        else:
            parser.add_argument(
                option.flag, dest=option.name, type=float if option.kind == "number" else str,
                required=option.required, default=None, help=option.help,
            )  # fmt: skip
    parser.set_defaults(run=cmd_convert, convert_options=tuple(o.name for o in chosen.options))


def cmd_convert(args: argparse.Namespace) -> int:
    from onepass.data.convert import convert

    options = {name: getattr(args, name) for name in args.convert_options if getattr(args, name) is not None}
    print(convert(args.convert_format, args.src, args.dst, progress=True, **options))
    return 0
