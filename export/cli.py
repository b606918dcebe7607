"""`onepass export MODEL --format onnx|tensorrt [options]`: every export checked against PyTorch.

    onepass export MODEL                              model.onnx, parity per head
    onepass export MODEL --half --int8 --calib DIR    + model.fp16.onnx, model.int8.onnx, metric costs
    onepass export MODEL --format tensorrt [--half]   model.<gpu>.trt<version>.<precision>.plan

fp32 exports must pass each head's parity thresholds or are removed; reduced precisions report
what they cost in task metrics on held-out synthetic scenes, next to PyTorch fp32. Every report
also goes to MODEL/exports.json. The flags are the formats' options (export/formats.py); an option
the chosen format does not take is refused.
"""

from __future__ import annotations

import argparse

from onepass.export.formats import EXPORT_FORMATS, command_line_options, export_format, flag


def add_parser(commands: argparse._SubParsersAction) -> None:
    formats = "; ".join(f"{f.name}: {f.writes.replace('`', '')}" for f in EXPORT_FORMATS.values())
    export = commands.add_parser(
        "export", help="export a model package (ONNX fp32/fp16/int8, TensorRT), checked against PyTorch",
        description=f"Formats — {formats}.",
    )  # fmt: skip
    export.add_argument("model", help="model package directory (or 'default')")
    default = next(iter(EXPORT_FORMATS))
    export.add_argument("--format", default=default, help=f"one of: {', '.join(EXPORT_FORMATS)} (default {default})")
    # every format's options, from their dataclasses; None = not given, so that an option the chosen
    # format does not take is refused rather than ignored
    for option in command_line_options():
        if option.type is bool:
            export.add_argument(
                flag(option.name), dest=option.name, action="store_true", default=None, help=option.help
            )
        else:
            export.add_argument(
                flag(option.name), dest=option.name, type=option.type, metavar=option.metavar, help=option.help
            )
    export.set_defaults(run=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from onepass.models.package import open_package
    from onepass.models.package_exports import read_exports_report, write_exports_report

    chosen = export_format(args.format)
    given = {o.name: getattr(args, o.name) for o in command_line_options() if getattr(args, o.name) is not None}
    options = chosen.make_options(given)  # checked before the package is read or any slow work starts
    package = open_package(args.model)
    report = read_exports_report(package.path)
    chosen.export(package, options, report)
    write_exports_report(package.path, report)
    return 0
