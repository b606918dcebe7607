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
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from onepass.errors import UserError

LIST_SUFFIX = ".txt"


class InputError(UserError, ValueError):
    """An INPUT argument names nothing, or two inputs would write the same outputs."""


@dataclass(frozen=True, order=True)
class InputImage:
    key: str  # relative POSIX path, unique per run: names the outputs and the table row
    source: str  # the file to read


def collect_inputs(arguments: Sequence[str], exclude: Path | None = None) -> list[InputImage]:
    """Expand INPUT arguments into images sorted by key; `exclude` (the output folder) is never read.

    Raises InputError for an argument that matches nothing and for two different files that would
    get the same key (their outputs would overwrite each other).
    """
    from onepass.data.image import IMAGE_EXTENSIONS  # here, not at the top: the CLI parser imports this module

    extensions = frozenset(IMAGE_EXTENSIONS)
    excluded = exclude.resolve() if exclude is not None else None
    by_key: dict[str, InputImage] = {}
    for argument in arguments:
        found = list(_expand(argument, extensions, excluded))
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


def _expand(argument: str, extensions: frozenset[str], excluded: Path | None) -> Iterable[InputImage]:
    path = Path(argument)
    if path.is_dir():
        yield from _walk(path, path, extensions, excluded)
    elif path.is_file() and path.suffix.lower() == LIST_SUFFIX:
        yield from _read_list(path)
    elif path.is_file():
        yield InputImage(_file_key(path), str(path))
    elif glob.has_magic(argument):
        base = _fixed_prefix(argument)
        for match in sorted(glob.glob(argument, recursive=True)):
            found = Path(match)
            if found.is_dir():
                yield from _walk(found, base, extensions, excluded)
            elif found.is_file() and not _inside(found, excluded):
                yield InputImage(safe_key(found, base), match)


def _walk(folder: Path, base: Path, extensions: frozenset[str], excluded: Path | None) -> Iterable[InputImage]:
    for root, dirs, files in os.walk(folder):
        root_path = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _inside(root_path / d, excluded))
        for name in sorted(files):
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in extensions:
                yield InputImage(safe_key(root_path / name, base), str(root_path / name))


def _read_list(list_file: Path) -> Iterable[InputImage]:
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
        yield InputImage(safe_key(entry, common), str(entry))


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
