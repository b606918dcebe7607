"""Injected faults for `onepass predict` runs: a disk that fills up under the workers, and one under the
driver's table. Importable by the local engine's worker processes (they unpickle DiskFillsUp by name)."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from onepass.predict.stages import ResultWriter

FILES_BEFORE_FULL = 6  # DiskFillsUp: the disk takes this many image files, then nothing more


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def output_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*.png") if ".tmp" not in p.relative_to(root).parts)


@dataclass(frozen=True)
class DiskFillsUp(ResultWriter):
    """A ResultWriter whose file writes fail with ENOSPC once DIR holds FILES_BEFORE_FULL image files,
    as a full disk makes them fail: inside `write_atomic`, when the bytes go out."""

    def write(self, image, results) -> None:
        if output_files(self.layout.root) < FILES_BEFORE_FULL:
            return super().write(image, results)
        with mock.patch.object(Path, "write_bytes", no_space):
            return super().write(image, results)


class TableDiskFull:
    """Stands in for the `os` module of onepass.predict.outputs: the `appends`-th append to
    predictions.csv (after its header) writes half its bytes, then fails with ENOSPC."""

    def __init__(self, appends: int):
        self.appends = appends

    def __getattr__(self, name: str):
        return getattr(os, name)

    def write(self, descriptor: int, data: bytes) -> int:
        if os.readlink(f"/proc/self/fd/{descriptor}").endswith("predictions.csv") and not data.startswith(b"image,"):
            self.appends -= 1
            if self.appends == 0:
                os.write(descriptor, data[: len(data) // 2])
                no_space()
        return os.write(descriptor, data)
