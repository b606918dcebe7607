"""A folder of depth maps -> DST/depth/ (16-bit PNGs in millimetres, the folder format's).

- `<id>.png`: a 16-bit grey PNG of `png_scale` units per metre (1000: millimetres, what Kinect /
  RealSense tools write; TUM RGB-D's is 5000); 0 = no measurement.
- `<id>.npy`: a float (H, W) or (H, W, 1) array of metres times `npy_scale`, read with
  allow_pickle=False; 0, NaN and ±inf = no measurement (the usual marks of a float depth map).

Negative depth is refused, and so is depth beyond 65.535 m, which no 16-bit millimetre PNG holds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from onepass.data.codecs import DepthPngCodec
from onepass.data.convert import ConvertError
from onepass.data.convert._dataset import check_size, label_files, read_png, target_dataset
from onepass.data.progress import progress_bar

CODEC = DepthPngCodec()
MAX_DEPTH = 65.535  # metres: the largest 16-bit millimetre value


def convert(src: Path, dst: Path, progress: bool = False, png_scale: float = 1000.0, npy_scale: float = 1.0) -> str:
    if not png_scale > 0 or not npy_scale > 0:
        raise ConvertError(f"--png-scale and --npy-scale must be positive, got {png_scale} and {npy_scale}")
    dataset = target_dataset(dst)
    files = label_files(src, (".png", ".npy"), dataset)
    for sample_id, path in progress_bar(files.items(), desc="depth maps", unit="map", enabled=progress):
        metres = _npy(path, npy_scale) if path.suffix.lower() == ".npy" else _png(path, png_scale)
        check_size(path, metres.shape, dataset.images[sample_id])
        if metres.min() < 0 or metres.max() > MAX_DEPTH:
            raise ConvertError(
                f"{path}: depth from {metres.min():g} to {metres.max():g} m; the folder format holds 0 to {MAX_DEPTH} m "
                "(is the scale right? --png-scale / --npy-scale)"
            )
        out = dst / "depth" / f"{sample_id}{CODEC.extension}"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(CODEC.encode(metres))
    return f"wrote {len(files)} depth maps to {dst / 'depth'} ({len(dataset.images) - len(files)} images have none)"


def _png(path: Path, scale: float) -> np.ndarray:
    image = read_png(path)
    if image.mode not in ("I;16", "I;16B", "I"):
        raise ConvertError(f"{path}: a {image.mode} PNG; depth PNGs are 16-bit grey (8 bits cannot hold depth)")
    return (np.asarray(image).astype(np.float64) / scale).astype(np.float32)


def _npy(path: Path, scale: float) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)  # never unpickle
    except (ValueError, OSError, EOFError) as error:
        raise ConvertError(f"{path}: not a readable .npy array ({error})") from None
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
        raise ConvertError(f"{path}: {array.dtype} array of shape {array.shape}; depth is a float (H, W) array")
    metres = array.astype(np.float64) * scale
    return np.where(np.isfinite(metres), metres, 0.0).astype(np.float32)
