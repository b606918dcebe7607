"""Converters from other layouts into the folder dataset format (`onepass data convert FORMAT SRC DST`).

One table of formats, each with the options it accepts (the CLI is built from it); each format's
work is one module of this package with a `convert(src, dst, **options) -> str` function (the
line the CLI prints). Adding a format means adding its module and one row here.

This module imports nothing heavy, so that `onepass --help` stays fast; a format's module is
imported only to run it.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onepass.errors import UserError, unknown_name_error


class ConvertError(UserError, ValueError):
    """A source file or folder cannot be converted; the message names it, what is wrong, and the fix."""


@dataclass(frozen=True)
class Option:
    """One option of a format: a keyword of its `convert()` and a CLI flag (--name-with-dashes)."""

    name: str
    help: str
    default: Any = None
    kind: str = "text"  # text | number | flag (true when given) | list (repeatable)
    required: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class ConvertFormat:
    name: str
    module: str  # onepass.data.convert.<module>, with convert(src, dst, **options)
    summary: str
    src: str  # what SRC is
    dst: str  # what DST is, and what is written there
    options: tuple[Option, ...] = ()


CONVERT_FORMATS = {
    f.name: f
    for f in (
        ConvertFormat(
            "nyuv2-mtan",
            "nyuv2_mtan",
            "NYUv2 as mtan and LibMTL lay it out (13 classes, depth, normals) -> two folder datasets",
            "the folder holding train/ and val/, each with image/ label/ depth/ normal/ {i}.npy files",
            "a new folder: DST/train and DST/val are written, each a folder dataset",
        ),
        ConvertFormat(
            "coco-people",
            "coco_people",
            "a COCO instances JSON (from a labelling tool) -> the dataset's people.json",
            "the COCO JSON file: images, annotations (bbox, iscrowd, optional 'attributes'), categories",
            "a folder dataset (images/ and dataset.json with its person_attributes): DST/people.json is written",
            (
                Option("category", "the COCO category that is a person (default: person)", "person"),
                Option("strip_prefix", "a leading folder to remove from every file_name, e.g. frames/"),
                Option("drop_crowd", "leave out iscrowd regions (default: refuse a file that has any)", False, "flag"),
                Option("drop_attribute", "an annotation attribute to leave out (repeatable), e.g. occluded", (), "list"),
            ),
        ),
        ConvertFormat(
            "semseg-masks",
            "semseg_masks",
            "a folder of class-id (or colour) mask PNGs and the tool's class list -> DST/semseg/",
            "the mask folder: <id>.png per labelled image (sub-folders as in images/)",
            "a folder dataset (images/ and dataset.json with the classes): DST/semseg/<id>.png is written",
            (
                Option(
                    "classes",
                    "the tool's class list: one name per line (line i is id i), or CVAT's labelmap.txt "
                    "(name:r,g,b:: per line) for colour masks",
                    required=True,
                ),
                Option("unlabelled", "a tool class that means 'no label' (repeatable), e.g. background", (), "list"),
                Option("ignore_value", "the pixel value of unlabelled pixels in id masks (default 255)", 255, "number"),
            ),
        ),
        ConvertFormat(
            "sequence-frames",
            "sequence_frames",
            "a synthetic sequence dataset's frames -> more images of a folder dataset, with their people",
            "the sequence dataset folder (sequences.json; `onepass data sequences`)",
            "a folder dataset (images/ and dataset.json with the same person_attributes): the frames go to "
            "DST/images/sequences/, their people into DST/people.json",
            (Option("every", "keep every N-th frame of each sequence (default 1: all)", 1, "number"),),
        ),
        ConvertFormat(
            "depth",
            "depth_maps",
            "a folder of depth maps, 16-bit PNGs or float .npy files -> DST/depth/ (16-bit PNG, millimetres)",
            "the depth folder: <id>.png (16-bit) or <id>.npy (float, metres) per labelled image",
            "a folder dataset (images/ and dataset.json): DST/depth/<id>.png is written",
            (
                Option("png_scale", "16-bit PNGs: units per metre (default 1000, millimetres; TUM: 5000)", 1000.0, "number"),
                Option("npy_scale", ".npy files: metres per unit (default 1.0, metres)", 1.0, "number"),
            ),
        ),
    )
}  # fmt: skip


def convert(format_name: str, src: str | os.PathLike, dst: str | os.PathLike, progress: bool = False, **options) -> str:
    """Run one converter (see CONVERT_FORMATS); returns its one-line report."""
    if format_name not in CONVERT_FORMATS:
        raise unknown_name_error("convert format", format_name, list(CONVERT_FORMATS))
    chosen = CONVERT_FORMATS[format_name]
    known = {o.name: o for o in chosen.options}
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConvertError(f"{format_name}: unknown option(s) {unknown} (its options: {sorted(known) or 'none'})")
    values = {name: options.get(name, option.default) for name, option in known.items()}
    missing = [known[name].flag for name, value in values.items() if known[name].required and value is None]
    if missing:
        raise ConvertError(f"{format_name} needs {', '.join(missing)}")
    module = importlib.import_module(f"onepass.data.convert.{chosen.module}")
    return module.convert(Path(src), Path(dst), progress=progress, **values)
