"""NYUv2 as mtan (lorenmt/mtan) and LibMTL lay it out -> two folder datasets (docs/nyuv2.md).

```
SRC/{train,val}/image/{i}.npy    (288, 384, 3) float, RGB in [0, 1]
SRC/{train,val}/label/{i}.npy    (288, 384) float, class ids 0..12, -1 = no label
SRC/{train,val}/depth/{i}.npy    (288, 384, 1) float, metres, 0 = no measurement
SRC/{train,val}/normal/{i}.npy   (288, 384, 3) float, unit vectors, 0 = no normal
```

As mtan's loader does, a split holds N images where N is the number of .npy files in image/, and
image i is the four files {i}.npy (i = 0..N-1). Each becomes DST/<split>/ with images/<i:04d>.png
and semseg/, depth/, normals/ in the folder format: −1 becomes 255 (unlabelled), depth a 16-bit PNG
in millimetres (0.5 mm rounding), normals an RGB PNG (8 bits a component: under 0.5° of rounding),
the image 8-bit RGB. The normals are stored as the files give them: mtan does not document their
axes, and onepass's (x right, y up, z toward the camera) matters only when mixing them with other
data. Every file is read with allow_pickle=False and checked before it is written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from onepass.data.codecs import DepthPngCodec, IndexedPngCodec, NormalsPngCodec
from onepass.data.convert import ConvertError
from onepass.data.folder import DatasetDescription, DatasetWriter
from onepass.data.progress import progress_bar

# The 13 classes of NYUv2 (Couprie et al. 2013, as in ankurhanda/SceneNetv1.0), ids 0..12 in mtan's
# files (SceneNet's 1..13, shifted by one; its 0, "unknown", is mtan's -1).
NYUV2_CLASSES = (
    "bed", "books", "ceiling", "chair", "floor", "furniture", "objects",
    "picture", "sofa", "table", "tv", "wall", "window",
)  # fmt: skip
SPLITS = ("train", "val")
FOLDERS = ("image", "label", "depth", "normal")
MTAN_IGNORE = -1
MAX_DEPTH = 65.535  # metres: the largest 16-bit millimetre value
UNIT_TOLERANCE = 0.1  # a normal's length may be 1 ± this (0 = no normal)
CODECS = {"semseg": IndexedPngCodec(), "depth": DepthPngCodec(), "normals": NormalsPngCodec()}


def convert(src: Path, dst: Path, progress: bool = False) -> str:
    if not src.is_dir():
        raise ConvertError(
            f"{src}: not a folder; the mtan layout is SRC/train and SRC/val, each with {', '.join(FOLDERS)}"
        )
    counts = {split: _count(src / split) for split in SPLITS}  # every split checked before anything is written
    for split in SPLITS:
        if (dst / split / "dataset.json").exists():
            raise ConvertError(f"{dst / split}: already a dataset; remove it or choose another DST")
    for split in SPLITS:
        writer = DatasetWriter(dst / split, DatasetDescription(NYUV2_CLASSES), CODECS)
        for index in progress_bar(range(counts[split]), desc=f"nyuv2 {split}", unit="image", enabled=progress):
            image, dense = read_sample(src / split, index)
            writer.write(f"{index:04d}", image, dense, {})
        writer.close()
    return f"wrote {dst / 'train'} ({counts['train']} images) and {dst / 'val'} ({counts['val']} images), 13 classes"


def _count(root: Path) -> int:
    if not root.is_dir():
        raise ConvertError(f"{root}: missing; the mtan layout has train/ and val/, each with {', '.join(FOLDERS)}")
    for folder in FOLDERS:
        if not (root / folder).is_dir():
            raise ConvertError(f"{root / folder}: missing; each split has {', '.join(f + '/' for f in FOLDERS)}")
    count = len(list((root / "image").glob("*.npy")))
    if count == 0:
        raise ConvertError(f"{root / 'image'}: no .npy files")
    for folder in FOLDERS:  # all there before anything is written
        for index in range(count):
            if not _path(root, folder, index).is_file():
                raise _missing(root, folder, index, count)
    return count


def _missing(root: Path, folder: str, index: int, count: int) -> ConvertError:
    return ConvertError(
        f"{_path(root, folder, index)}: missing; mtan's layout numbers every split's files 0..N-1 in each of "
        f"{', '.join(FOLDERS)} (N = {count}, the .npy files in {root / 'image'})"
    )


def read_sample(root: Path, index: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Image `index` of a split: (H, W, 3) uint8 RGB and the semseg, depth and normals labels."""
    image = _load(root, "image", index)
    height, width = image.shape[:2]
    if image.ndim != 3 or image.shape[2] != 3:
        raise ConvertError(f"{_path(root, 'image', index)}: shape {image.shape}, expected (H, W, 3) RGB")
    label = _load(root, "label", index, (height, width))
    depth = _load(root, "depth", index, (height, width, 1))
    normal = _load(root, "normal", index, (height, width, 3))
    return _image(image, _path(root, "image", index)), {
        "semseg": _classes(label, _path(root, "label", index)),
        "depth": _metres(depth[..., 0], _path(root, "depth", index)),
        "normals": _normals(normal, _path(root, "normal", index)),
    }


def _path(root: Path, folder: str, index: int) -> Path:
    return root / folder / f"{index}.npy"


def _load(root: Path, folder: str, index: int, shape: tuple[int, ...] | None = None) -> np.ndarray:
    path = _path(root, folder, index)
    if not path.is_file():
        raise _missing(root, folder, index, len(list((root / "image").glob("*.npy"))))
    try:
        array = np.load(path, allow_pickle=False)  # never unpickle
    except (ValueError, OSError, EOFError) as error:
        raise ConvertError(f"{path}: not a readable .npy array ({error})") from None
    if not isinstance(array, np.ndarray) or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ConvertError(f"{path}: holds {getattr(array, 'dtype', type(array).__name__)}, not numbers")
    if shape is not None and folder == "depth" and array.shape == shape[:2]:
        array = array[..., None]  # (H, W) depth: the channel axis is implied
    if shape is not None and array.shape != shape:
        raise ConvertError(f"{path}: shape {array.shape}, but its image {_path(root, 'image', index)} needs {shape}")
    return array


def _image(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if not np.isfinite(array).all() or array.min() < -1e-3 or array.max() > 1 + 1e-3:
        raise ConvertError(
            f"{path}: image values from {np.nanmin(array):g} to {np.nanmax(array):g}; mtan's images are floats in [0, 1]"
        )
    return np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)


def _classes(array: np.ndarray, path: Path) -> np.ndarray:
    values = np.unique(array)
    bad = values[(values != np.round(values)) | (values < MTAN_IGNORE) | (values >= len(NYUV2_CLASSES))]
    if bad.size:
        raise ConvertError(
            f"{path}: label values {bad[:5].tolist()} are not class ids 0..{len(NYUV2_CLASSES) - 1} or {MTAN_IGNORE}"
        )
    ids = array.astype(np.int16)
    return np.where(ids == MTAN_IGNORE, 255, ids).astype(np.uint8)


def _metres(array: np.ndarray, path: Path) -> np.ndarray:
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > MAX_DEPTH:
        raise ConvertError(
            f"{path}: depth from {np.nanmin(array):g} to {np.nanmax(array):g}; expected finite metres in "
            f"[0, {MAX_DEPTH}] (0 = no measurement)"
        )
    return array.astype(np.float32)


def _normals(array: np.ndarray, path: Path) -> np.ndarray:
    normals = array.astype(np.float32)
    if not np.isfinite(normals).all():
        raise ConvertError(f"{path}: normals must be finite")
    length = np.linalg.norm(normals, axis=2)  # (H, W)
    labelled = np.any(normals != 0, axis=2)
    off = labelled & (np.abs(length - 1.0) > UNIT_TOLERANCE)
    if off.any():
        raise ConvertError(
            f"{path}: {int(off.sum())} normals are not unit vectors (lengths {length[off].min():.3g} to "
            f"{length[off].max():.3g}); expected unit vectors, or 0 for no normal"
        )
    return normals
