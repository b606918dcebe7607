"""The command-line options that reach `onepass.load`, in one place for every CLI that loads a model
(`onepass predict`, `onepass serve`). Imports nothing heavy: parsers are built before torch loads."""

from __future__ import annotations

import argparse


def add_load_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--backend, --device, --precision and --compile, as `onepass.load` takes them."""
    parser.add_argument("--backend", default="auto", help="inference backend (default auto: the fastest available)")
    parser.add_argument("--device", default="auto", help="auto (a GPU if there is one) | cpu | cuda | cuda:N")
    parser.add_argument(
        "--precision",
        default="fp32",
        help="as the backend accepts (fp32, bf16, fp16, int8); auto (with --backend auto): the fastest of fp32 and, "
        "where the CPU computes it natively (AVX512-BF16, AMX), bf16",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch backend: torch.compile the model (a minute or more at the first start); with --backend auto, the "
        "compiled torch model is one of the candidates timed (with --precision auto, at bf16 too where the CPU has it)",
    )
