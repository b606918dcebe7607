"""The command-line options that reach `onepass.load`, in one place for every CLI that loads a model
(`onepass predict`, `onepass serve`). Imports nothing heavy: parsers are built before torch loads."""

from __future__ import annotations

import argparse


def add_load_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--backend, --device and --precision, as `onepass.load` takes them."""
    parser.add_argument("--backend", default="auto", help="inference backend (default auto: the fastest available)")
    parser.add_argument("--device", default="auto", help="auto (a GPU if there is one) | cpu | cuda | cuda:N")
    parser.add_argument(
        "--precision",
        default="fp32",
        help="as the backend accepts (fp32, bf16, fp16, int8); auto (with --backend auto): the fastest of fp32 and, "
        "where the CPU computes it natively (AVX512-BF16, AMX), bf16",
    )
