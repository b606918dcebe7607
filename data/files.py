"""Facts about files that every stage records: a file's SHA-256 (weights in a package, the ONNX an
engine was built from, a pretrained checkpoint's provenance); and writing a small file as a new one."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def replace_text(path: Path, text: str) -> None:
    """Write `text` to a file beside `path`, then move it over `path`: `path` becomes a new file, so a
    hard link to the old one (a dataset copied with `cp -al`) keeps the old content, and a reader
    never sees half a file."""
    written = path.with_name(f".{path.name}.new")
    written.write_text(text)
    os.replace(written, path)


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of the file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
