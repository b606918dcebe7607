"""A small, fast PNG writer for the dense maps in `codecs.py`.

Pillow's PNG encoder, even at compress_level=1, spends most of its time choosing a filter for
each row and in zlib; on 240x320 depth and normal maps it measured 6-9x slower than this writer.
Here every row gets the "Up" filter (row minus the row above, in numpy) — except in indexed images,
whose class ids differ meaninglessly, so they are left unfiltered as the PNG spec recommends — and
the whole image is deflated by ISA-L at level 1 into one IDAT chunk; the files come out about the
same size.

It writes 8-bit greyscale, 8-bit indexed (with a 256-colour palette), 16-bit greyscale and
8-bit RGB PNGs, without interlacing or ancillary chunks. Reading stays with Pillow.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from isal import isal_zlib

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FILTER_NONE, _FILTER_UP = 0, 2
_MAX_CHUNK = 2**31 - 1  # a chunk's length field; only a multi-gigabyte image needs more than one IDAT
_MAX_SIDE = 2**31 - 1  # IHDR's width and height limit


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _format(array: np.ndarray, palette: np.ndarray | None) -> tuple[int, int]:
    """(bit depth, colour type) for `array`, or a ValueError naming what is supported."""
    if array.ndim == 2 and array.dtype == np.uint8:
        return 8, (0 if palette is None else 3)  # greyscale or indexed
    if palette is not None:
        raise ValueError(f"a palette needs an (H, W) uint8 index array, got {array.shape} {array.dtype}")
    if array.ndim == 2 and array.dtype == np.uint16:
        return 16, 0  # greyscale
    if array.ndim == 3 and array.shape[2] == 3 and array.dtype == np.uint8:
        return 8, 2  # RGB
    raise ValueError(
        f"PNG array must be (H, W) uint8, (H, W) uint16 or (H, W, 3) uint8, got {array.shape} {array.dtype}"
    )


def encode_png(array: np.ndarray, palette: np.ndarray | None = None) -> bytes:
    """`array` as PNG bytes: (H, W) uint8 -> 8-bit grey, or indexed colour with `palette`
    ((256, 3) uint8 RGB); (H, W) uint16 -> 16-bit grey; (H, W, 3) uint8 -> RGB."""
    bit_depth, colour_type = _format(array, palette)
    height, width = array.shape[:2]
    if not (0 < height <= _MAX_SIDE and 0 < width <= _MAX_SIDE):
        raise ValueError(f"PNG height and width must be 1 to {_MAX_SIDE}, got {array.shape}")
    if palette is not None and (palette.shape != (256, 3) or palette.dtype != np.uint8):
        raise ValueError(f"palette must be (256, 3) uint8, got {palette.shape} {palette.dtype}")

    # PNG samples are big-endian; each row is its bytes, left to right.
    rows = np.ascontiguousarray(array, dtype=">u2" if bit_depth == 16 else np.uint8).view(np.uint8)
    rows = rows.reshape(height, -1)  # (H, row bytes)
    filtered = np.empty((height, 1 + rows.shape[1]), np.uint8)  # (H, 1 + row bytes): filter type, then row
    if palette is not None:
        filtered[:, 0] = _FILTER_NONE
        filtered[:, 1:] = rows
    else:
        filtered[:, 0] = _FILTER_UP
        filtered[0, 1:] = rows[0]  # the row above the first is zeros
        np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # modulo 256, as the Up filter wants
    compressed = isal_zlib.compress(filtered, 1)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    chunks = [_SIGNATURE, _chunk(b"IHDR", header)]
    if palette is not None:
        chunks.append(_chunk(b"PLTE", palette.tobytes()))
    chunks += [_chunk(b"IDAT", compressed[i : i + _MAX_CHUNK]) for i in range(0, len(compressed), _MAX_CHUNK)]
    chunks.append(_chunk(b"IEND", b""))
    return b"".join(chunks)
