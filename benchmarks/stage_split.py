"""Where `onepass predict`'s time goes: each stage of its pipeline timed on its own, in one process.

The CLI overlaps its stages (worker processes read and write while the driver runs inference), so
its wall time is not their sum. Run one after the other here, each stage's wall and CPU time per
image say what it costs the machine; on a CPU whose cores inference already fills, everything beside
inference comes out of the end-to-end rate.

    read      decode the files (or the video), resize to the model input (`ImageReader`, `VideoReader`)
    hand-off  pickling a chunk and its outputs, as the process pool does to pass them (timed one way:
              nothing is unpickled here)
    infer     the backend on the batch
    write     each task's `to_result`, encoding and the atomic file writes (`ResultWriter`)
    track     after the frames: tracking and the audience report (videos only)

Used by predict_throughput.py and video_throughput.py, which with `--json PATH` also write their
result as a bench document (kind "pipeline", bench/records.py) that BENCHMARKS.md is generated from.
"""

from __future__ import annotations

import datetime
import pickle
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from rich.console import Console

from onepass.bench.document import write_document
from onepass.bench.machine import source_revision, versions
from onepass.bench.pipeline_tables import stage_table
from onepass.bench.records import MachineRecord, PipelineBenchDocument, StageCost
from onepass.bench.tables import render_rich


@dataclass
class StageClock:
    """Wall and CPU seconds spent in each stage, and the images they were spent on."""

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    images: int = 0

    def time(self, stage: str, call: Callable[[], object]) -> object:
        wall, cpu = time.perf_counter(), time.process_time()
        result = call()
        self.wall[stage] = self.wall.get(stage, 0.0) + time.perf_counter() - wall
        self.cpu[stage] = self.cpu.get(stage, 0.0) + time.process_time() - cpu
        return result

    def costs(self) -> tuple[StageCost, ...]:
        """Each stage's wall and CPU milliseconds per image, in the order the stages first ran."""
        per = 1000 / max(self.images, 1)
        return tuple(StageCost(stage, seconds * per, self.cpu[stage] * per) for stage, seconds in self.wall.items())


def split_stages(
    chunks: Iterable[Sequence[object]],
    read: Callable[[Sequence[object]], object],
    backend,
    writer,
    after: Callable[[], object] | None = None,
) -> StageClock:
    """Every chunk through read, hand-off, infer and write, each timed; then `after` as "track"."""
    clock = StageClock()
    names = writer.output_names()
    for chunk in chunks:
        decoded = clock.time("read", lambda chunk=chunk: read(chunk))
        clock.time("hand-off", lambda decoded=decoded: pickle.dumps(decoded))
        if not decoded.images:
            continue
        outputs = clock.time("infer", lambda decoded=decoded: backend.run(decoded.batch))
        outputs = {name: outputs[name] for name in names}
        clock.time("hand-off", lambda outputs=outputs: pickle.dumps(outputs))
        clock.time("write", lambda decoded=decoded, outputs=outputs: writer(decoded.images, decoded.sizes, outputs))
        clock.images += len(decoded.images)
    if after is not None:
        clock.time("track", after)
    return clock


@dataclass(frozen=True)
class SteadyRate:
    """Medians over rounds of (the Predictor alone's rate, the full run's seconds, the quarter run's)."""

    predictor_per_s: float
    steady_per_s: float  # (items - quarter items) / (full - quarter): start-up cancelled
    full_s: float
    ratios: tuple[float, ...]  # each kept round's steady / Predictor alone
    left_out: int  # rounds whose full run was not clearly longer than their quarter run


def steady_rate(rounds: Sequence[tuple[float, float, float]], items: int, quarter_items: int) -> SteadyRate:
    """The medians of `rounds`. "Steady" is a difference of two subprocess wall times, which scatters by
    more than 2x between single runs on a shared machine, hence rounds; one whose full run is not 0.5 s
    longer than its quarter run says nothing (start-up swamps the items' time) and is left out."""
    kept = [(a, f, q) for a, f, q in rounds if f - q > 0.5]
    if not kept:
        differences = [round(f - q, 2) for _, f, q in rounds]
        raise SystemExit(f"no full run took clearly longer than its quarter run ({differences} s): use more items")
    steadies = [(items - quarter_items) / (f - q) for _, f, q in kept]
    return SteadyRate(
        predictor_per_s=statistics.median(a for a, _, _ in kept),
        steady_per_s=statistics.median(steadies),
        full_s=statistics.median(f for _, f, _ in kept),
        ratios=tuple(s / a for (a, _, _), s in zip(kept, steadies, strict=True)),
        left_out=len(rounds) - len(kept),
    )


def print_rounds(rate: SteadyRate) -> None:
    ratios = ", ".join(f"{r:.2f}x" for r in rate.ratios)
    print(f"  steady / Predictor alone, round by round: {ratios}")
    if rate.left_out:
        print(f"  ({rate.left_out} rounds left out: the full run within 0.5 s of the quarter run)")


def print_split(clock: StageClock, title: str) -> None:
    render_rich(stage_table(clock.costs(), title), Console())


def write_pipeline_result(path: str, clock: StageClock, machine: MachineRecord, **figures) -> None:
    """The run as a bench document (kind "pipeline"): `figures` are PipelineBenchDocument's own fields
    (inputs, model, size, items, batch_size, backend, tasks, the three rates and the target)."""
    document = PipelineBenchDocument(
        command=" ".join(["python", *sys.argv]),
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        machine=machine,
        versions=versions(),
        source=source_revision(),
        stages=clock.costs(),
        **figures,
    )
    print(f"wrote {write_document(path, document)}")
