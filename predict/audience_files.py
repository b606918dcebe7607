"""The audience report of a `onepass predict` run with videos (or numbered sequences) among its inputs:

    DIR/audience.json           {"format": "onepass-audience", "version": 1, "model": ..., "videos":
                                 {<video key>: the report of runtime/audience.py: video, tracker,
                                 summary, tracks}}
    DIR/audience.csv            one row per track: video, track, first_seen_s, last_seen_s, dwell_s,
                                frames, attention_s, attraction, then <attribute>, <attribute>_share
    DIR/audience/<video>.png    the timeline: each track a bar from its first to its last sighting,
                                its attention shaded

Built at the end of every run from the records of the tracked task (DIR/<task>.jsonl), over every
frame of each video that has its row, so a resumed run reports the whole video, and the same frames
always give the same report. Each file is written atomically and replaced whole.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from onepass.models.tasks.base import Task
from onepass.predict.inputs import InputImage, output_stem
from onepass.predict.outputs import OutputLayout, write_atomic
from onepass.runtime.audience import AUDIENCE_FORMAT, AUDIENCE_VERSION, Frame, audience_report, tracked_task

AUDIENCE_JSON = "audience.json"
AUDIENCE_CSV = "audience.csv"
TIMELINE_DIR = "audience"
TRACK_COLUMNS = ("track", "first_seen_s", "last_seen_s", "dwell_s", "frames", "attention_s", "attraction")


def write_audience(
    layout: OutputLayout, images: Sequence[InputImage], tasks: Sequence[Task], model: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Track every video of `images` and write the report files; None (and nothing written) when no
    input is a video or no chosen task tracks objects."""
    task = tracked_task(tasks)
    videos: dict[str, list[InputImage]] = {}
    for image in sorted(images, key=lambda i: (i.video, i.frame)):
        if image.video:
            videos.setdefault(image.video, []).append(image)
    if task is None or not videos:
        return None
    records = read_records(layout.record_file(task.name), task.name)
    reports = {}
    for video, frames in videos.items():
        analysed = [Frame(f.frame, f.time, task.detections(records[f.key])) for f in frames if f.key in records]
        steps = sorted(b.time - a.time for a, b in zip(analysed, analysed[1:], strict=False))
        rate = 1.0 / steps[len(steps) // 2] if steps and steps[len(steps) // 2] > 0 else 1.0
        reports[video] = audience_report(
            analysed,
            rate,
            source=frames[0].source,
            planned_frames=len(frames),
            missing_frames=len(frames) - len(analysed),
            width=frame_width(frames[0]),
        )
    document = {"format": AUDIENCE_FORMAT, "version": AUDIENCE_VERSION, "model": dict(model), "videos": reports}
    root = layout.root
    write_atomic(root / AUDIENCE_JSON, (json.dumps(document, indent=2) + "\n").encode(), layout.temp_dir)
    write_atomic(root / AUDIENCE_CSV, audience_csv(reports).encode(), layout.temp_dir)
    for video, report in reports.items():
        write_atomic(timeline_file(root, video), timeline_png(video, report), layout.temp_dir)
    return document


def frame_width(image: InputImage) -> int | None:
    """A video's (or numbered sequence's) frame width in pixels, from the container's header or the
    first frame's file header (no decoding); None when it cannot be read (the tracks then get no side
    crossing)."""
    from PIL import Image

    from onepass.runtime.video import BadVideo, video_width

    try:
        if image.in_video_file:
            return video_width(image.source)
        with Image.open(image.source) as picture:
            return picture.width
    except (BadVideo, OSError):  # unreadable: its error record is written already; no crossing then
        return None


def read_records(path: Path, task: str) -> dict[str, Any]:
    """{image key: its record} from a task's JSONL (one line per finished image, as outputs.py keeps it)."""
    records: dict[str, Any] = {}
    if path.is_file():
        for line in path.read_bytes().splitlines():
            if line.strip():
                entry = json.loads(line)
                records[entry["image"]] = entry[task]
    return records


def timeline_file(root: Path, video: str) -> Path:
    return root / TIMELINE_DIR / f"{output_stem(video)}.png"


def audience_csv(reports: Mapping[str, Mapping[str, Any]]) -> str:
    attributes = list(dict.fromkeys(a for r in reports.values() for t in r["tracks"] for a in t["votes"]))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["video", *TRACK_COLUMNS, *(c for a in attributes for c in (a, f"{a}_share"))])
    for video, report in reports.items():
        for track in report["tracks"]:
            votes = track["votes"]
            writer.writerow(
                [
                    video,
                    *(track.get(c, "") for c in TRACK_COLUMNS),
                    *(
                        v
                        for a in attributes
                        for v in (votes.get(a, {}).get("label", ""), votes.get(a, {}).get("share", ""))
                    ),
                ]
            )
    return buffer.getvalue()


def timeline_png(video: str, report: Mapping[str, Any]) -> bytes:
    """Tracks as bars over time (the dwell), the spans of attention shaded darker."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    from matplotlib.figure import Figure

    tracks = report["tracks"]
    figure = Figure(figsize=(8, 1.2 + 0.32 * max(1, len(tracks))), dpi=100)
    axes = figure.subplots()
    for row, track in enumerate(tracks):
        axes.barh(row, track["dwell_s"], left=_entered(track), height=0.6, color="#9ecae1")
        for start, end in track.get("looking", []):
            axes.barh(row, end - start, left=start, height=0.6, color="#08519c")
    labels = [f"{t['track']}: " + " ".join(v["label"] for v in t["votes"].values()) for t in tracks]
    axes.set_yticks(range(len(tracks)), labels, fontsize=8)
    axes.invert_yaxis()
    duration = max([_entered(t) + t["dwell_s"] for t in tracks], default=1.0)
    axes.set_xlim(0, duration)
    axes.set_xlabel("seconds (pale: in view; dark: looking at the display)")
    summary = report["summary"]
    title = f"{video}: {summary['ots']} people"
    if "attention_s_total" in summary:
        title += f", {summary['looked']} looked, {summary['attention_s_total']:.1f} s of attention"
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _entered(track: Mapping[str, Any]) -> float:
    """When the track's person came into view: its first sighting, less the side crossing before it."""
    return track["first_seen_s"] - track.get("crossing_s", [0.0, 0.0])[0]
