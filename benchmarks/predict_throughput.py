"""End-to-end images/s of `onepass predict` against the Predictor alone on pre-decoded batches.

    python benchmarks/predict_throughput.py                       # 400 synthetic scenes, 128x160
    python benchmarks/predict_throughput.py --n 2000 --size 480x640 --backend onnxruntime
    python benchmarks/predict_throughput.py --n 4000 --precision auto --compile   # bf16 where the CPU has it

The predict issue's target: end to end (read files, decode, infer, encode, write, table) at least
0.9x the Predictor's own rate on images already decoded in memory (`predictor.predict` on batches
of the CLI's batch size: preprocessing, inference and per-image results, no files).

`onepass predict` runs as a real subprocess, twice a round (`--rounds`, default 3): on a quarter of the
images and on all of them; each figure is the median over the rounds (stage_split.py's `steady_rate`).
The difference of the two wall times cancels start-up (Python, torch, the model, the workers), so
"steady" is the rate a long job sees; "with start-up" is the full run's own rate. Then each stage
of the pipeline is timed on its own in this process (stage_split.py), to say where the time goes.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from stage_split import print_rounds, print_split, split_stages, steady_rate, write_pipeline_result

import onepass
from onepass.bench.machine import describe_machine
from onepass.bench.timing import time_calls
from onepass.data.cli import parse_size
from onepass.data.image import decode_image
from onepass.data.synth_dataset import write_synthetic_dataset
from onepass.predict.inputs import collect_inputs
from onepass.predict.job import default_batch_size
from onepass.predict.outputs import OutputLayout
from onepass.predict.stages import ImageReader, ResultWriter
from onepass.predict.video_inputs import video_chunks
from onepass.runtime.predictor import resolve_device

TARGET = 0.9  # the predict issue's: end to end at least 0.9x the Predictor alone


def predictor_alone(images: list[np.ndarray], predictor: onepass.Predictor, batch_size: int, seconds: float) -> float:
    """images/s of `predictor.predict` over every image, in batches of `batch_size` (one call: all of them)."""

    def every_image() -> None:
        for start in range(0, len(images), batch_size):
            predictor.predict(images[start : start + batch_size])

    return time_calls(every_image, warmup=1, runs=1, seconds=seconds, items=len(images)).throughput_per_s


def stage_split(folder: Path, out: Path, predictor: onepass.Predictor, batch_size: int):
    """The CLI's stages on the images of `folder`, one after the other (stage_split.py)."""
    package, tasks = predictor.package, predictor.config.tasks
    layout = OutputLayout.for_tasks(out, tasks, "png", False)
    layout.temp_dir.mkdir(parents=True)
    writer = ResultWriter(package, tuple(t.name for t in tasks), layout)
    chunks = video_chunks(collect_inputs([str(folder)]), batch_size)
    return split_stages(chunks, ImageReader(package), predictor.backend.sharing_cores(), writer)


def predict_cli(inputs: Path, out: Path, load_options: list[str]) -> float:
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "onepass", "predict", str(inputs), "--out", str(out), "--no-progress"]
    command += load_options
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=400, help="images in the full run (default 400)")
    parser.add_argument("--size", type=parse_size, default=(128, 160), help="HxW of the images (default 128x160)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", help="as `onepass predict` takes it (auto: fp32 or bf16)")
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the torch backend (with --backend auto: a candidate)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to time the Predictor alone")
    parser.add_argument("--json", help="also write the result here, as a bench document for BENCHMARKS.md")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of Predictor alone, quarter run, full run; medians (default 3)"
    )
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `onepass predict` options")
    args = parser.parse_args()
    device = resolve_device(args.device)
    batch_size = default_batch_size(args.backend, device)
    machine = describe_machine(device)  # its load average before the work
    # The Predictor alone and `onepass predict` load the model alike: "auto" times at the CLI's batch size.
    load_options = ["--backend", args.backend, "--device", device, "--precision", args.precision]
    load_options += ["--compile"] * args.compile + args.extra

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        write_synthetic_dataset(root / "scenes", args.n, args.size, seed=7, progress=False)
        files = sorted((root / "scenes" / "images").iterdir())
        (root / "quarter").mkdir()
        for path in files[: args.n // 4]:
            (root / "quarter" / path.name).symlink_to(path)
        images = [np.asarray(decode_image(p)) for p in files]
        predictor = onepass.load(
            backend=args.backend, device=device, precision=args.precision, compile=args.compile, batch_size=batch_size
        )
        print(f"Predictor alone: {predictor.backend_choice}", flush=True)

        rounds = []  # (Predictor alone images/s, full run s, quarter run s), the three in turn each round
        for _ in range(max(1, args.rounds)):
            alone = predictor_alone(images, predictor, batch_size, args.seconds)
            quarter = predict_cli(root / "quarter", root / "out-quarter", load_options)
            full = predict_cli(root / "scenes" / "images", root / "out", load_options)
            rounds.append((alone, full, quarter))
        split = stage_split(root / "scenes" / "images", root / "out-split", predictor, batch_size)

    rate = steady_rate(rounds, args.n, args.n // 4)
    chosen = f"{predictor.backend.name} {predictor.backend.precision}"  # "onnxruntime fp32", "torch bf16"
    chosen = f"auto: {chosen}" if args.backend == "auto" else chosen
    alone, steady, full = rate.predictor_per_s, rate.steady_per_s, rate.full_s
    print(f"images {args.n} at {args.size[0]}x{args.size[1]}, {' '.join(load_options)}, batch {batch_size}")
    print(f"Predictor alone, pre-decoded batches:  {alone:8.1f} images/s")
    print(f"onepass predict, steady (full - 1/4):  {steady:8.1f} images/s  = {steady / alone:.2f}x the Predictor")
    print_rounds(rate)
    print(f"onepass predict, with start-up:        {args.n / full:8.1f} images/s  ({full:.1f} s for {args.n} images)")
    print_split(split, "onepass predict's stages, one after the other in one process")
    if args.json:
        write_pipeline_result(
            args.json, split, machine, inputs="images", model="default", size=args.size, items=args.n,
            batch_size=batch_size, backend=chosen, tasks=None, predictor_per_s=alone, steady_per_s=steady,
            with_startup_per_s=args.n / full, target=TARGET,
        )  # fmt: skip


if __name__ == "__main__":
    main()
