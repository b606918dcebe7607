"""The tables of a `PipelineBenchDocument` (benchmarks/predict_throughput.py, video_throughput.py):
`onepass predict` end to end against the Predictor alone, and its stages one by one."""

from __future__ import annotations

from dataclasses import dataclass

from onepass.bench.records import PipelineBenchDocument, StageCost
from onepass.bench.tables import Table, number, size_text, times


@dataclass(frozen=True)
class ThroughputRow:
    document: PipelineBenchDocument

    COLUMNS = (
        "inputs", "size", "items", "batch", "tasks", "Predictor alone /s", "onepass predict, steady /s",
        "steady / Predictor", "target", "with start-up /s",
    )  # fmt: skip

    def cells(self) -> tuple[str, ...]:
        d = self.document
        met = "met" if d.ratio >= d.target else "not met"
        return (
            d.inputs,
            size_text(d.size),
            str(d.items),
            str(d.batch_size),
            ", ".join(d.tasks) if d.tasks else "all",
            number(d.predictor_per_s),
            number(d.steady_per_s),
            times(d.ratio),
            f"≥ {d.target:.2f}x ({met})",
            number(d.with_startup_per_s),
        )


@dataclass(frozen=True)
class StageRow:
    cost: StageCost
    share: float  # of the stages' summed wall time

    COLUMNS = ("stage", "wall ms per item", "CPU ms per item", "share of the wall time")

    def cells(self) -> tuple[str, ...]:
        return (self.cost.stage, number(self.cost.wall_ms, 2), number(self.cost.cpu_ms, 2), f"{100 * self.share:.0f} %")


def stage_table(stages: tuple[StageCost, ...], title: str = "Its stages, one after the other in one process") -> Table:
    total = sum(s.wall_ms for s in stages) or 1.0
    return Table(
        title,
        StageRow.COLUMNS,
        tuple(StageRow(s, s.wall_ms / total) for s in stages),
        "In the CLI they overlap: worker processes read and write while the main process runs inference, so on "
        "a CPU that inference fills everything beside it comes out of the end-to-end rate.",
    )


def pipeline_tables(document: PipelineBenchDocument) -> list[Table]:
    what = "frames" if document.inputs == "video" else "images"
    return [
        Table(
            f"onepass predict on {what} against the Predictor alone ({document.model}, {document.backend})",
            ThroughputRow.COLUMNS,
            (ThroughputRow(document),),
            "steady: the full run's wall time minus a run on its first quarter, so start-up cancels; the Predictor "
            f"alone runs on the same {what} already decoded in memory.",
        ),
        stage_table(document.stages),
    ]
