"""The sequence dataset format: videos as numbered frames, with every person's box per frame linked by
track id, written, validated and read. `onepass eval` scores tracking on it (docs/video.md).

```
DIR/
  sequences.json          {"format": "onepass-sequences", "version": 1, "sequences": ["000", ...],
                           "generator": {...}}                (optional provenance)
  <sequence>/frames/000000.png, 000001.png ...   the frames, in order
  <sequence>/tracks.json  {"format": "onepass-tracks", "version": 1, "fps": 8.0, "size": [H, W],
                           "person_attributes": {"age_group": ["child", "adult"], ...},
                           "tracks": [{"id": 1, "attributes": {"age_group": "adult", ...}}, ...],
                           "frames": [{"file": "frames/000000.png", "time": 0.0,
                                       "people": [{"track": 1, "bbox": [x, y, w, h], "yaw": -12.5,
                                                   "looking": true, "truncated": false}, ...]}, ...]}
```

- `time` is seconds from the first frame, strictly increasing; `fps` the nominal rate.
- `bbox` is COCO's [x, y, width, height] in pixels around the person's visible pixels (as in
  people.json); each track appears at most once per frame; a frame lists only the visible people.
- A track's `attributes` do not change over the sequence (a class of `person_attributes` each);
  `yaw` (degrees, 0 facing the camera) and `looking` (a boolean) are per frame; any may be missing.

Every file is validated when read, and an error names the file, the frame and the track.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onepass.data.folder import DatasetError

SEQUENCES_FILE = "sequences.json"
SEQUENCES_FORMAT = "onepass-sequences"
TRACKS_FILE = "tracks.json"
TRACKS_FORMAT = "onepass-tracks"
FORMAT_VERSION = 1
FRAMES_DIR = "frames"


class SequenceError(DatasetError):
    """A sequence dataset is malformed; the message names the file, the frame or track, and the fault."""


@dataclass(frozen=True)
class TrackedPerson:
    track: int
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 pixels (from the file's x, y, w, h)
    yaw: float | None = None
    looking: bool | None = None
    truncated: bool = False


@dataclass(frozen=True)
class LabelledFrame:
    path: Path  # the frame's image file
    time: float  # seconds from the first frame
    people: tuple[TrackedPerson, ...]


@dataclass(frozen=True)
class LabelledSequence:
    name: str
    fps: float
    size: tuple[int, int]  # (H, W)
    person_attributes: dict[str, tuple[str, ...]]
    tracks: dict[int, dict[str, str]]  # track id -> its attributes
    frames: tuple[LabelledFrame, ...]


def is_sequence_dataset(path: str | os.PathLike) -> bool:
    return (Path(path) / SEQUENCES_FILE).is_file()


def read_sequence_dataset(root: str | os.PathLike) -> list[LabelledSequence]:
    """Every sequence sequences.json lists, each validated."""
    root = Path(root)
    manifest = _load_json(root / SEQUENCES_FILE)
    _check_format(root / SEQUENCES_FILE, manifest, SEQUENCES_FORMAT)
    names = manifest.get("sequences")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise SequenceError(f"{root / SEQUENCES_FILE}: 'sequences' must be a non-empty list of folder names")
    if len(set(names)) != len(names):
        raise SequenceError(f"{root / SEQUENCES_FILE}: a sequence is listed twice")
    for name in names:
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise SequenceError(f"{root / SEQUENCES_FILE}: sequence {name!r} must be a folder inside {root}")
    return [read_sequence(root / name) for name in names]


def read_sequence(folder: str | os.PathLike) -> LabelledSequence:
    """One sequence folder's tracks.json, validated against itself and its frames' files."""
    folder = Path(folder)
    path = folder / TRACKS_FILE
    document = _load_json(path)
    _check_format(path, document, TRACKS_FORMAT)
    fps = document.get("fps")
    if not isinstance(fps, int | float) or isinstance(fps, bool) or not (fps > 0 and math.isfinite(fps)):
        raise SequenceError(f"{path}: 'fps' must be a positive number, got {fps!r}")
    size = document.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise SequenceError(f"{path}: 'size' must be [height, width] in pixels, got {size!r}")
    height, width = size
    classes = document.get("person_attributes", {})
    if not isinstance(classes, dict) or not all(
        isinstance(c, list) and c and all(isinstance(v, str) for v in c) for c in classes.values()
    ):
        raise SequenceError(f"{path}: 'person_attributes' must map each attribute to its list of classes")
    tracks = _read_tracks(path, document.get("tracks"), classes)
    frames_in = document.get("frames")
    if not isinstance(frames_in, list) or not frames_in:
        raise SequenceError(f"{path}: 'frames' must be a non-empty list")
    frames = []
    previous = -math.inf
    for number, frame in enumerate(frames_in):
        where = f"{path}: frame {number}"
        if not isinstance(frame, dict):
            raise SequenceError(f"{where}: must be an object with 'file', 'time' and 'people'")
        file = frame.get("file")
        if not isinstance(file, str) or Path(file).is_absolute() or ".." in Path(file).parts:
            raise SequenceError(f"{where}: 'file' must be a path inside {folder}, got {file!r}")
        if not (folder / file).is_file():
            raise SequenceError(f"{where}: its image {folder / file} is missing")
        time = frame.get("time")
        if not isinstance(time, int | float) or isinstance(time, bool) or not math.isfinite(time):
            raise SequenceError(f"{where}: 'time' must be a number of seconds, got {time!r}")
        if time <= previous:
            raise SequenceError(f"{where}: time {time} s does not come after the previous frame's {previous} s")
        previous = time
        people = frame.get("people", [])
        if not isinstance(people, list):
            raise SequenceError(f"{where}: 'people' must be a list")
        frames.append(LabelledFrame(folder / file, float(time), _read_people(where, people, tracks, width, height)))
    return LabelledSequence(
        folder.name, float(fps), (height, width), {a: tuple(c) for a, c in classes.items()}, tracks, tuple(frames)
    )


def _read_tracks(path: Path, tracks: Any, classes: Mapping[str, list[str]]) -> dict[int, dict[str, str]]:
    if not isinstance(tracks, list):
        raise SequenceError(f"{path}: 'tracks' must be a list of {{'id', 'attributes'}}")
    result: dict[int, dict[str, str]] = {}
    for entry in tracks:
        track = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(track, int) or isinstance(track, bool) or track < 0:
            raise SequenceError(f"{path}: every track needs a non-negative integer 'id', got {entry!r}")
        if track in result:
            raise SequenceError(f"{path}: track {track} is listed twice")
        attributes = entry.get("attributes", {})
        if not isinstance(attributes, dict):
            raise SequenceError(f"{path}: track {track}: 'attributes' must be an object")
        for name, value in attributes.items():
            if name not in classes:
                raise SequenceError(
                    f"{path}: track {track}: attribute {name!r} is not in person_attributes ({', '.join(classes)})"
                )
            if value not in classes[name]:
                raise SequenceError(
                    f"{path}: track {track}: {value!r} is not a class of {name!r} ({', '.join(classes[name])})"
                )
        result[track] = dict(attributes)
    return result


def _read_people(
    where: str, people: list, tracks: Mapping[int, Any], width: int, height: int
) -> tuple[TrackedPerson, ...]:
    seen: set[int] = set()
    result = []
    for person in people:
        track = person.get("track") if isinstance(person, dict) else None
        if track not in tracks:
            raise SequenceError(f"{where}: person {person!r} names no track listed in 'tracks'")
        if track in seen:
            raise SequenceError(f"{where}: track {track} appears twice")
        seen.add(track)
        box = person.get("bbox")
        if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
            raise SequenceError(f"{where}: track {track}: 'bbox' must be [x, y, width, height], got {box!r}")
        x, y, w, h = (float(v) for v in box)
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width + 1e-3 or y + h > height + 1e-3:
            raise SequenceError(f"{where}: track {track}: bbox {box} does not lie inside the {width}x{height} frame")
        yaw = person.get("yaw")
        if yaw is not None and not (_is_number(yaw) and -180.0 <= yaw <= 180.0):
            raise SequenceError(f"{where}: track {track}: 'yaw' must be degrees in [-180, 180], got {yaw!r}")
        looking = person.get("looking")
        if looking is not None and not isinstance(looking, bool):
            raise SequenceError(f"{where}: track {track}: 'looking' must be true or false, got {looking!r}")
        result.append(TrackedPerson(track, (x, y, x + w, y + h), yaw, looking, bool(person.get("truncated", False))))
    return tuple(result)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise SequenceError(f"{path}: missing")
    try:
        return json.loads(path.read_bytes())
    except (ValueError, RecursionError) as error:
        raise SequenceError(f"{path}: not valid JSON ({error})") from None


def _check_format(path: Path, document: Any, expected: str) -> None:
    if not isinstance(document, dict) or document.get("format") != expected:
        raise SequenceError(f"{path}: 'format' must be {expected!r}")
    if document.get("version") != FORMAT_VERSION:
        raise SequenceError(
            f"{path}: unsupported version {document.get('version')!r}; this onepass reads version {FORMAT_VERSION}"
        )


def tracks_document(
    fps: float,
    size: tuple[int, int],
    person_attributes: Mapping[str, Sequence[str]],
    tracks: Mapping[int, Mapping[str, str]],
    frames: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """A tracks.json document; `frames` as in the file ({"file", "time", "people": [...]})."""
    return {
        "format": TRACKS_FORMAT,
        "version": FORMAT_VERSION,
        "fps": fps,
        "size": list(size),
        "person_attributes": {a: list(c) for a, c in person_attributes.items()},
        "tracks": [{"id": t, "attributes": dict(a)} for t, a in sorted(tracks.items())],
        "frames": list(frames),
    }


def write_sequences_manifest(root: Path, names: Sequence[str], generator: Mapping[str, Any] | None = None) -> None:
    """sequences.json, written last: a folder with it is complete."""
    document: dict[str, Any] = {"format": SEQUENCES_FORMAT, "version": FORMAT_VERSION, "sequences": list(names)}
    if generator:
        document["generator"] = dict(generator)
    (root / SEQUENCES_FILE).write_text(json.dumps(document, indent=2) + "\n")
