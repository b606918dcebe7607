"""A folder of semantic masks and the labelling tool's class list -> DST/semseg/ (indexed PNGs of
dataset.json's class ids).

- The class list is either one name per line (the mask value i is the class on line i, as Pascal
  VOC-style id masks have it), or CVAT's labelmap.txt (`name:r,g,b:parts:actions` per line) for
  colour masks. Blank lines and lines starting with '#' are skipped.
- Masks are PNGs: 8-bit grey or palette ones hold class ids (a palette PNG's index is the id),
  RGB ones colours of the labelmap. `ignore_value` (default 255) in an id mask means "no label".
- Tool classes are matched to dataset.json's by name, so the two lists may be in any order; a tool
  class named in `unlabelled` (e.g. "background") becomes "no label"; any other tool class that
  dataset.json does not list is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from onepass.data.codecs import IGNORE_INDEX, IndexedPngCodec
from onepass.data.convert import ConvertError
from onepass.data.convert._dataset import check_size, label_files, read_png, target_dataset
from onepass.data.progress import progress_bar

CODEC = IndexedPngCodec()


def convert(
    src: Path,
    dst: Path,
    progress: bool = False,
    classes: str | None = None,
    unlabelled: Sequence[str] = (),
    ignore_value: float = IGNORE_INDEX,
) -> str:
    dataset = target_dataset(dst)
    names, colours = read_class_list(Path(str(classes)))
    table = _id_table(names, dataset.description.classes, unlabelled, Path(str(classes)), dst)
    ignore = int(ignore_value)
    files = label_files(src, (".png",), dataset)
    for sample_id, path in progress_bar(files.items(), desc="semseg masks", unit="mask", enabled=progress):
        tool_ids = _tool_ids(path, colours, len(names), ignore)
        check_size(path, tool_ids.shape, dataset.images[sample_id])
        out = dst / "semseg" / f"{sample_id}{CODEC.extension}"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(CODEC.encode(table[tool_ids]))
    return f"wrote {len(files)} masks to {dst / 'semseg'} ({len(dataset.images) - len(files)} images have none)"


def read_class_list(path: Path) -> tuple[list[str], list[tuple[int, int, int]] | None]:
    """Class names in id order, and their colours when the list is a CVAT labelmap."""
    if not path.is_file():
        raise ConvertError(f"{path}: class list not found (--classes)")
    lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        raise ConvertError(f"{path}: no class names")
    if not any(":" in line for line in lines):
        return lines, None
    names, colours = [], []
    for number, line in enumerate(lines, 1):
        name, _, rest = line.partition(":")
        try:
            rgb = tuple(int(v) for v in rest.partition(":")[0].split(","))
        except ValueError:
            rgb = ()
        if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise ConvertError(f"{path}, class {number}: {line!r} is not 'name:r,g,b::' as in CVAT's labelmap.txt")
        if rgb in colours:
            raise ConvertError(f"{path}, class {number}: colour {rgb} is already class {names[colours.index(rgb)]!r}")
        names.append(name.strip())
        colours.append(rgb)
    return names, colours


def _id_table(names: list[str], classes: Sequence[str], unlabelled: Sequence[str], path: Path, dst: Path) -> np.ndarray:
    """Tool id -> dataset id (uint8, 256 entries; IGNORE_INDEX for unlabelled and unused ids)."""
    if not classes:
        raise ConvertError(f"{dst / 'dataset.json'}: no 'classes'; list the classes the masks may hold there")
    unknown = sorted(set(names) - set(classes) - set(unlabelled))
    if unknown:
        raise ConvertError(
            f"{path}: classes {unknown} are not in {dst / 'dataset.json'} ({', '.join(classes)}); add them there, "
            "or map them to 'no label' with --unlabelled NAME"
        )
    if len(names) > IGNORE_INDEX:
        raise ConvertError(f"{path}: {len(names)} classes; id masks hold at most {IGNORE_INDEX}")
    table = np.full(256, IGNORE_INDEX, np.uint8)
    for tool_id, name in enumerate(names):
        if name not in unlabelled:
            table[tool_id] = classes.index(name)
    return table


def _tool_ids(path: Path, colours: list[tuple[int, int, int]] | None, count: int, ignore: int) -> np.ndarray:
    """(H, W) tool class ids of a mask; `count` (past every id) where it is unlabelled."""
    image = read_png(path, "PNG mask")
    if image.mode in ("P", "L"):
        values = np.asarray(image).astype(np.int32)
        invalid = (values >= count) & (values != ignore)
        if invalid.any():
            raise ConvertError(
                f"{path}: values {np.unique(values[invalid])[:5].tolist()} are not ids of the {count} classes in "
                f"the list (0..{count - 1}) nor the unlabelled value {ignore} (--ignore-value)"
            )
        return np.where(values == ignore, count, values)
    if image.mode in ("RGB", "RGBA") and colours is not None:
        rgb = np.asarray(image.convert("RGB")).astype(np.int32)
        codes = rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]  # (H, W)
        known = np.array([r << 16 | g << 8 | b for r, g, b in colours])
        order = np.argsort(known)
        position = np.clip(np.searchsorted(known[order], codes), 0, len(known) - 1)
        found = known[order][position] == codes
        if not found.all():
            stray = [tuple(int(c >> s & 255) for s in (16, 8, 0)) for c in np.unique(codes[~found])[:5]]
            raise ConvertError(f"{path}: colours {stray} are not in the labelmap")
        return order[position]
    wanted = "8-bit grey or palette PNGs of ids" + (
        "" if colours is None else ", or RGB PNGs of the labelmap's colours"
    )
    raise ConvertError(f"{path}: a {image.mode} PNG; masks here are {wanted}")
