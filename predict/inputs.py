"""What to predict: INPUT arguments (files, folders, globs, file lists) -> sorted `InputImage`s.

Every image gets a `key`: its path relative to the input it came from, as POSIX text. Outputs are
written at `DIR/<task>/<key>` (see `outputs.py`), so the key is built to never leave DIR: it is
relative, has no `..` and no empty parts, whatever a file list or a glob contains.

- a folder: every file with an image extension (`onepass.data.image.IMAGE_EXTENSIONS`: the formats
  the decoder accepts), recursively (hidden files and the output folder skipped); the key is the
  path below the folder.
- a glob (`frames/**/*.jpg`): the key is the path below the pattern's fixed leading folders.
- a `.txt` file: one path per line (blank lines and `#` comments skipped), relative to the list's
  folder or absolute; the key is the path below the deepest folder all listed files share.
- any other file: predicted whatever its extension; the key is its path as given when that is
  relative and stays inside the working folder, else its name.

Videos (.mp4, .mkv, .webm, wherever they are found) and numbered image sequences (a pattern with a
printf number, `cam/%06d.png`) are expanded into their sampled frames (predict/video_inputs.py):
frame 12 of `door.mp4` has the key `door.mp4/000012`; a sequence's frames keep their files' keys.
Every frame also knows its video (`InputImage.video`), index and time, for the audience report.
"""

from __future__ import annotations

import glob
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from onepass.errors import UserError

LIST_SUFFIX = ".txt"
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm")  # read as videos (decoded with PyAV: predict/video_inputs.py)
SEQUENCE_NUMBER = re.compile(r"%(0(\d+))?d")  # the printf number of a numbered sequence's file names


class InputError(UserError, ValueError):
    """An INPUT argument names nothing, or two inputs would write the same outputs."""


@dataclass(frozen=True, order=True)
class InputImage:
    key: str  # relative POSIX path, unique per run: names the outputs and the table row
    source: str  # the file to read
    video: str = ""  # a video's or numbered sequence's frame: the video's key ("" for a still image)
    frame: int = -1  # its index in the video, presentation order
    time: float = 0.0  # its time, seconds from the video's first frame
    in_video_file: bool = False  # `source` is the video file (decoded front to back), not an image


@dataclass(frozen=True)
class FrameOptions:
    """Which frames of a video or numbered sequence are predicted: every `every`-th, or with `fps` the
    first frame of each 1/fps seconds; and the frame rate of numbered sequences, which carry none."""

    every: int = 1
    fps: float | None = None
    sequence_fps: float = 25.0  # ffmpeg's default for image sequences too

    def __post_init__(self) -> None:
        if self.every < 1:
            raise InputError(f"--every must be at least 1, got {self.every}")
        for name, value in (("--fps", self.fps), ("--sequence-fps", self.sequence_fps)):
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise InputError(f"{name} must be a positive number of frames per second, got {value}")


def collect_inputs(
    arguments: Sequence[str], exclude: Path | None = None, frames: FrameOptions | None = None
) -> list[InputImage]:
    """Expand INPUT arguments into images sorted by key; `exclude` (the output folder) is never read;
    videos and numbered sequences become their frames as `frames` samples them.

    Raises InputError for an argument that matches nothing and for two different files that would
    get the same key (their outputs would overwrite each other).
    """
    from onepass.data.image import IMAGE_EXTENSIONS  # here, not at the top: the CLI parser imports this module

    extensions = frozenset(IMAGE_EXTENSIONS)
    excluded = exclude.resolve() if exclude is not None else None
    frames = frames or FrameOptions()
    by_key: dict[str, InputImage] = {}
    for argument in arguments:
        found = list(_expand(argument, extensions, excluded, frames))
        if not found and not Path(argument).is_dir():
            raise InputError(f"{argument}: matches no file (give image files, folders, glob patterns or a .txt list)")
        for image in found:
            known = by_key.get(image.key)
            if known is not None and os.path.realpath(known.source) != os.path.realpath(image.source):
                raise InputError(
                    f"{known.source} and {image.source} would both write outputs named {image.key!r}; "
                    "rename one or predict them into different --out folders"
                )
            by_key[image.key] = image
    stems: dict[str, str] = {}  # outputs drop the image's extension: a.jpg and a.png would collide
    for key in sorted(by_key):
        stem = output_stem(key)
        if stem in stems:
            raise InputError(
                f"{by_key[stems[stem]].source} and {by_key[key].source} would both write outputs named "
                f"{stem!r}.*; rename one or predict them into different --out folders"
            )
        stems[stem] = key
    return [by_key[key] for key in sorted(by_key)]


def output_stem(key: str) -> str:
    """The key without the image's extension: outputs add their own ("a/b.jpg" -> "a/b")."""
    return str(PurePosixPath(key).with_suffix(""))


def _expand(
    argument: str, extensions: frozenset[str], excluded: Path | None, frames: FrameOptions
) -> Iterable[InputImage]:
    path = Path(argument)
    if path.is_dir():
        yield from _walk(path, path, extensions, excluded, frames)
    elif path.is_file() and path.suffix.lower() == LIST_SUFFIX:
        yield from _read_list(path, frames)
    elif path.is_file():
        yield from _file(_file_key(path), str(path), frames)
    elif is_sequence_pattern(argument):
        yield from sequence_frames(argument, frames, excluded)
    elif glob.has_magic(argument):
        base = _fixed_prefix(argument)
        for match in sorted(glob.glob(argument, recursive=True)):
            found = Path(match)
            if found.is_dir():
                yield from _walk(found, base, extensions, excluded, frames)
            elif found.is_file() and not _inside(found, excluded):
                yield from _file(safe_key(found, base), match, frames)


def _file(key: str, source: str, frames: FrameOptions) -> Iterable[InputImage]:
    """An image, or a video's frames."""
    if is_video_file(source):
        from onepass.predict.video_inputs import video_frames  # PyAV and numpy, only for a video

        yield from video_frames(key, source, frames)
    else:
        yield InputImage(key, source)


def is_video_file(path: str | os.PathLike) -> bool:
    return os.path.splitext(str(path))[1].lower() in VIDEO_EXTENSIONS


def is_sequence_pattern(argument: str) -> bool:
    """A numbered image sequence: a file name with one printf number, `frames/cam1_%05d.png`."""
    return len(SEQUENCE_NUMBER.findall(Path(argument).name)) == 1 and not Path(argument).exists()


def sequence_frames(pattern: str, frames: FrameOptions, excluded: Path | None) -> Iterable[InputImage]:
    """The files a numbered pattern matches, in number order, as frames of one video keyed by the
    pattern: frame index = number - the first number (a missing number leaves a gap in time), time =
    index / --sequence-fps. %05d matches five digits or more (as printf writes them), %d any."""
    from onepass.runtime.video import FrameSampler

    path = Path(pattern)
    folder = path.parent
    match = SEQUENCE_NUMBER.search(path.name)
    digits = r"\d+" if match.group(2) is None else rf"\d{{{int(match.group(2))},}}"
    name = re.compile(re.escape(path.name[: match.start()]) + f"({digits})" + re.escape(path.name[match.end() :]))
    numbered = []
    if folder.is_dir() and not _inside(folder, excluded):
        for entry in os.listdir(folder):
            found = name.fullmatch(entry)
            if found and (folder / entry).is_file():
                numbered.append((int(found.group(1)), entry))
    numbered.sort()
    if not numbered:
        return
    first = numbered[0][0]
    times = [(number - first) / frames.sequence_fps for number, _ in numbered]
    video = _file_key(path)
    for position in FrameSampler(frames.every, frames.fps).keep(times):
        number, entry = numbered[position]
        yield InputImage(_file_key(folder / entry), str(folder / entry), video, number - first, times[position])


def _walk(
    folder: Path, base: Path, extensions: frozenset[str], excluded: Path | None, frames: FrameOptions
) -> Iterable[InputImage]:
    for root, dirs, files in os.walk(folder):
        root_path = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _inside(root_path / d, excluded))
        for name in sorted(files):
            suffix = os.path.splitext(name)[1].lower()
            if not name.startswith(".") and (suffix in extensions or suffix in VIDEO_EXTENSIONS):
                yield from _file(safe_key(root_path / name, base), str(root_path / name), frames)


def _read_list(list_file: Path, frames: FrameOptions) -> Iterable[InputImage]:
    folder = list_file.parent
    entries = []
    for line in list_file.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            entries.append(Path(os.path.normpath(folder / line)).absolute())
    if not entries:
        return
    common = Path(os.path.commonpath([str(p.parent) for p in entries]))
    for entry in entries:
        yield from _file(safe_key(entry, common), str(entry), frames)


def _file_key(path: Path) -> str:
    relative = Path(os.path.normpath(path))
    if not relative.is_absolute() and relative.parts[0] != "..":
        return relative.as_posix()
    return path.name


def _fixed_prefix(pattern: str) -> Path:
    """The leading folders of a glob pattern that hold no wildcard ("a/b/*/c*.jpg" -> "a/b")."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def safe_key(path: Path, base: Path) -> str:
    """`path` below `base` as a relative POSIX key with no `..`, empty or absolute parts.

    Both are normalised lexically first; a path that is not below its base (a symlink trick, a
    `..` in a list) falls back to its name, which can never leave the output folder either.
    """
    normal = os.path.normpath(os.path.abspath(path))
    root = os.path.normpath(os.path.abspath(base))
    relative = os.path.relpath(normal, root)
    parts = PurePosixPath(Path(relative).as_posix()).parts
    if not parts or parts[0] in ("..", "/") or any(p in ("", ".", "..") for p in parts):
        return Path(normal).name
    return "/".join(parts)


def _inside(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    resolved = path.resolve()
    return resolved == folder or folder in resolved.parents
