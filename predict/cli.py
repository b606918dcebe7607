"""`onepass predict INPUT... --out DIR`: batch inference, local or on Ray Data (docs/predict.md).

Exit status: 0 when every image is done, 1 when some inputs failed (see DIR/errors.jsonl),
2 for a usage error or a failed write (printed as one line by the main CLI; after a failed write
the same command resumes). Nothing heavy is imported here: `onepass --help` builds this parser.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from onepass.predict.outputs import FORMATS
from onepass.runtime.load_options import add_load_arguments


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "predict",
        help="predict every task for many images, written to a folder (resumable)",
        description="Predict folders, files, glob patterns or .txt lists of images into DIR: one file per "
        "task per image, predictions.csv (+ .parquet) with the attributes, errors.jsonl for bad inputs. "
        "Re-running the same command skips what is complete.",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="image or video file (.mp4, .mkv, .webm), folder, glob pattern, .txt list, or numbered "
        "image sequence (frames/%%06d.png)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (created; re-use it to resume)")
    parser.add_argument("--model", default="default", help="model package directory (default: the shipped model)")
    parser.add_argument(
        "--tasks", type=lambda s: tuple(t for t in s.split(",") if t), help="comma-separated (default: all)"
    )
    parser.add_argument(
        "--format", default="png", choices=FORMATS, help="png: each task's file encoding; npz: raw arrays"
    )
    parser.add_argument("--visualize", action="store_true", help="also write a panel PNG per image (DIR/visualize/)")
    parser.add_argument(
        "--maps-at", dest="maps_at", default="frame", choices=("frame", "model"),
        help="the maps at each image's size (frame, the default) or at the model's input size (model: the cheapest)",
    )  # fmt: skip
    add_load_arguments(parser)
    parser.add_argument(
        "--batch-size", dest="batch_size", type=int, help="images per inference call (default: 16 on CPU, 64 on GPU)"
    )
    parser.add_argument("--workers", type=int, help="local engine: reader/writer processes (default: cores, max 8)")
    parser.add_argument(
        "--max-pixels", dest="max_pixels", type=int, help="larger images are recorded as errors (default 89478485)"
    )
    sampling = parser.add_mutually_exclusive_group()
    sampling.add_argument("--every", type=int, default=1, metavar="N", help="videos: predict every N-th frame")
    sampling.add_argument(
        "--fps", type=float, metavar="F", help="videos: predict F frames per second (the first of each 1/F s)"
    )
    parser.add_argument(
        "--sequence-fps",
        dest="sequence_fps",
        type=float,
        default=25.0,
        metavar="R",
        help="frame rate of numbered image sequences (default 25)",
    )
    parser.add_argument("--engine", default="local", choices=("local", "ray"), help="local (default) or ray")
    parser.add_argument("--ray-address", dest="ray_address", help="join this Ray cluster (default: start a local Ray)")
    parser.add_argument("--ray-actors", dest="ray_actors", type=int, default=1, help="Predictor actors (default 1)")
    parser.add_argument(
        "--ray-gpus-per-actor", dest="ray_gpus_per_actor", type=float, default=0.0, help="GPUs per actor (default 0)"
    )
    parser.add_argument(
        "--ray-cpus-per-actor", dest="ray_cpus_per_actor", type=float, default=1.0, help="CPUs per actor (default 1)"
    )
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show progress (the default): a bar on a terminal, a line per 10%% in a log",
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false", help="show no progress")
    parser.set_defaults(run=cmd_predict)
    from onepass.train.cli import DATASET_EVALUATORS  # `onepass eval` on sequence datasets: scored here

    DATASET_EVALUATORS["sequences"] = (is_sequence_dataset, cmd_eval_sequences)


def is_sequence_dataset(path: str) -> bool:
    from onepass.data.sequence import is_sequence_dataset

    return is_sequence_dataset(path)


def cmd_eval_sequences(package, args: argparse.Namespace) -> int:
    """`onepass eval MODEL --data SEQUENCES`: tracking scores (predict/sequence_eval.py)."""
    from onepass.errors import ConfigError
    from onepass.predict.sequence_eval import eval_sequences_command

    for flag, given in (("--baseline", args.baseline), ("--visualize", args.visualize)):
        if given:
            raise ConfigError(f"{flag} applies to image datasets; {args.data} is a sequence dataset, drop {flag}")
    return eval_sequences_command(package, Path(args.data), args.json, args.device, args.batch_size)


def cmd_predict(args: argparse.Namespace) -> int:
    from onepass.data.image import MAX_IMAGE_PIXELS
    from onepass.predict.job import PredictJob, run_job

    job = PredictJob(
        inputs=tuple(args.inputs),
        out=args.out,
        model=args.model,
        tasks=args.tasks,
        format=args.format,
        visualize=args.visualize,
        maps_at=args.maps_at,
        backend=args.backend,
        device=args.device,
        precision=args.precision,
        compile=args.compile,
        batch_size=args.batch_size,
        workers=args.workers,
        max_pixels=args.max_pixels or MAX_IMAGE_PIXELS,
        engine=args.engine,
        ray_address=args.ray_address,
        ray_actors=args.ray_actors,
        ray_gpus_per_actor=args.ray_gpus_per_actor,
        ray_cpus_per_actor=args.ray_cpus_per_actor,
        progress=args.progress,
        every=args.every,
        fps=args.fps,
        sequence_fps=args.sequence_fps,
    )
    summary = run_job(job)
    print(f"onepass predict: {summary.line()}")
    print(f"wrote {args.out} (predictions.csv: one row per image)")
    if summary.audience:  # videos: the audience over time (predict/audience_files.py)
        print(
            f"wrote {args.out / 'audience.json'} and audience.csv (one row per person tracked), timelines in audience/"
        )
    if summary.failed:
        print(f"{summary.failed} input(s) failed; reasons in {args.out / 'errors.jsonl'}")
        return 1
    return 0
