"""The `onepass` command: one entry point, a subcommand per job.

    onepass data synth --out DIR --n N --size HxW          data/cli.py (and the data commands it lists)
    onepass info [MODEL]                                   models/cli.py
    onepass train [--config FILE] [--KEY VALUE ...] [--set KEY=VALUE ...] [--resume]
    onepass eval MODEL --data DIR [--baseline TASK=metrics.json ...]      train/cli.py
    onepass calibrate MODEL --data DIR                     train/cli.py
    onepass export MODEL [--format onnx|tensorrt] ...      export/cli.py
    onepass serve | predict | bench ...                    serve/, predict/, bench/cli.py

This module is the entry point only: each stage's CLI module (STAGE_COMMANDS) adds its commands.

Errors a user can cause print one clear line (no traceback) and exit with status 2, usage errors
included (`onepass train: error: ...`); a misspelled command or choice gets a "did you mean".
Building the parser imports nothing heavy (no torch, numpy, onnx, bentoml): `onepass --help` and
every subcommand's `--help` answer at once.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import onepass
from onepass.errors import UserError


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


# Every stage adds its own commands: each module has `add_parser(commands)` and imports nothing heavy
# at module level, so that `onepass --help` stays fast. Their errors derive from UserError.
STAGE_COMMANDS = (
    "onepass.data.cli",
    "onepass.models.cli",
    "onepass.train.cli",
    "onepass.export.cli",
    "onepass.serve.cli",
    "onepass.predict.cli",
    "onepass.bench.cli",
    "onepass.study.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = OnepassParser(prog="onepass", description="One forward pass, every answer.")
    parser.add_argument("--version", action="version", version=f"onepass {onepass.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
    except BrokenPipeError:  # whoever read stdout went away (`onepass ... | head`): stop, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 1


if __name__ == "__main__":
    sys.exit(main())
