"""`onepass data sequences`: render synthetic video sequences with their tracks (data/synth_sequences.py,
the format in data/sequence.py). Registered in data/cli.py's DATA_COMMANDS; imports nothing heavy."""

from __future__ import annotations

import argparse

from onepass.data.cli import parse_size


def add_parser(data_commands: argparse._SubParsersAction) -> None:
    sequences = data_commands.add_parser(
        "sequences", help="render synthetic video sequences with tracks (docs/video.md)"
    )
    sequences.add_argument("--out", required=True, help="sequence dataset folder to create")
    sequences.add_argument("--n", type=int, required=True, help="number of sequences")
    sequences.add_argument("--seconds", type=float, default=12.0, help="length of each (default 12)")
    sequences.add_argument("--fps", type=float, default=8.0, help="frames per second (default 8)")
    sequences.add_argument("--size", type=parse_size, default=(128, 160), help="HxW (default 128x160)")
    sequences.add_argument("--seed", type=int, default=0)
    sequences.add_argument("--workers", type=int, default=None, help="render processes (default: all cores)")
    sequences.set_defaults(run=cmd_sequences)


def cmd_sequences(args: argparse.Namespace) -> int:
    from onepass.data.synth_sequences import write_synthetic_sequences

    frames, seconds = write_synthetic_sequences(
        args.out, args.n, args.seconds, args.fps, args.size, args.seed, workers=args.workers
    )
    print(f"wrote {args.n} sequences ({frames} frames) to {args.out} in {seconds:.1f} s")
    return 0
