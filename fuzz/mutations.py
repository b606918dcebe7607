"""Structure-aware mutations that libFuzzer's byte-level ones rarely reach.

A byte flip inside a PNG header is refused by the chunk's CRC before any interesting code runs, so
every mutated PNG gets its CRCs recomputed (most of the time: a wrong CRC is a case too). On top of
that: header fields set to boundary values (sizes, bit depths, colour types, palette and
transparency lengths, animation frame counts), EXIF orientation tags in JPEG and PNG, and for the
dataset's text files JSON values of the wrong type or size and CSV rows that break the header.
"""

from __future__ import annotations

import json
import random
import struct
import zlib

import atheris

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"
INTERESTING_SIDES = (0, 1, 2, 3, 7, 8, 255, 256, 4097, 65535, 65536, 2**24, 2**31 - 1, 2**31, 2**32 - 1)
EXIF_ORIENTATIONS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 255, 65535)


def mutate_image_bytes(data: bytes, max_size: int, rng: random.Random) -> bytes:
    """One mutation of an image file: structural where the format is known, else libFuzzer's."""
    if data.startswith(PNG_SIGNATURE) and rng.random() < 0.3:
        data = mutate_png_structure(data, rng)
    elif data.startswith(JPEG_SOI) and rng.random() < 0.2:
        data = mutate_jpeg_structure(data, rng)
    elif rng.random() < 0.05:
        data = data[: rng.randrange(len(data) + 1)]  # truncation anywhere
    else:
        data = atheris.Mutate(data, max_size)
    if data.startswith(PNG_SIGNATURE) and rng.random() < 0.9:
        data = fix_png_crcs(data)
    return data[:max_size]


# --- PNG ---------------------------------------------------------------------------------------


def png_chunks(data: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """(chunk type, payload) pairs of a PNG, and whatever follows the last whole chunk."""
    chunks, offset = [], len(PNG_SIGNATURE)
    while offset + 12 <= len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        end = offset + 12 + length
        if end > len(data):
            break
        chunks.append((data[offset + 4 : offset + 8], data[offset + 8 : end - 4]))
        offset = end
    return chunks, data[offset:]


def build_png(chunks: list[tuple[bytes, bytes]], tail: bytes = b"") -> bytes:
    parts = [PNG_SIGNATURE]
    for kind, payload in chunks:
        crc = zlib.crc32(payload, zlib.crc32(kind))
        parts.append(struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc))
    return b"".join(parts) + tail


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute the CRC of every whole chunk, so mutations reach the parser behind the check."""
    if not data.startswith(PNG_SIGNATURE):
        return data
    return build_png(*png_chunks(data))


def _random_side(rng: random.Random) -> int:
    return rng.choice(INTERESTING_SIDES) if rng.random() < 0.7 else rng.randrange(1, 5000)


def _ihdr(rng: random.Random, payload: bytes) -> bytes:
    fields = list(struct.unpack(">IIBBBBB", payload)) if len(payload) == 13 else [1, 1, 8, 0, 0, 0, 0]
    which = rng.randrange(5)
    if which == 0:
        fields[0] = _random_side(rng)
    elif which == 1:
        fields[1] = _random_side(rng)
    elif which == 2:
        fields[2] = rng.choice((1, 2, 4, 8, 16, 0, 3, 32, 255))  # bit depth
    elif which == 3:
        fields[3] = rng.choice((0, 2, 3, 4, 6, 1, 5, 7, 255))  # colour type
    else:
        fields[6] = rng.choice((0, 1, 2))  # interlace
    return struct.pack(">IIBBBBB", *fields)


def _extra_chunk(rng: random.Random) -> tuple[bytes, bytes]:
    """An ancillary or critical chunk whose size or content is at an edge."""
    kind = rng.choice((b"PLTE", b"tRNS", b"eXIf", b"acTL", b"fcTL", b"iCCP", b"zTXt", b"iTXt", b"sBIT", b"pHYs"))
    if kind in (b"PLTE", b"tRNS"):
        return kind, bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 2, 3, 6, 255, 256, 768, 769, 1024))))
    if kind == b"eXIf":
        return kind, exif_orientation_block(rng.choice(EXIF_ORIENTATIONS))
    if kind == b"acTL":
        return kind, struct.pack(">II", rng.choice((0, 1, 2, 2**31)), rng.choice((0, 1, 2**31)))
    if kind == b"fcTL":  # sequence, width, height, x, y, delay num/den, dispose, blend
        sides = [_random_side(rng) for _ in range(4)]
        return kind, struct.pack(">IIIIIHHBB", 0, *sides, 1, rng.choice((0, 1)), rng.randrange(4), rng.randrange(3))
    if kind == b"iCCP":
        return kind, b"icc\x00\x00" + zlib.compress(bytes(rng.randrange(256) for _ in range(rng.randrange(200))))
    if kind == b"zTXt":  # a small chunk that inflates a lot
        return kind, b"Comment\x00\x00" + zlib.compress(b"A" * rng.choice((10, 10**6, 10**7)))
    if kind == b"iTXt":
        return kind, b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + zlib.compress(b"<x>" * rng.randrange(1000))
    return kind, bytes(rng.randrange(256) for _ in range(rng.randrange(12)))


def mutate_png_structure(data: bytes, rng: random.Random) -> bytes:
    chunks, tail = png_chunks(data)
    if not chunks:
        return data
    op = rng.randrange(5)
    index = rng.randrange(len(chunks))
    if op == 0:  # rewrite a header field
        position = next((i for i, (kind, _) in enumerate(chunks) if kind == b"IHDR"), 0)
        chunks[position] = (b"IHDR", _ihdr(rng, chunks[position][1]))
    elif op == 1:
        chunks.insert(rng.randrange(len(chunks) + 1), _extra_chunk(rng))
    elif op == 2 and len(chunks) > 1:
        del chunks[index]
    elif op == 3:
        chunks.insert(index, chunks[index])  # duplicated chunk (two IHDRs, two PLTEs, ...)
    else:  # payload cut short or grown
        kind, payload = chunks[index]
        chunks[index] = (kind, payload[: rng.randrange(len(payload) + 1)] if rng.random() < 0.5 else payload * 2)
    return build_png(chunks, tail)


# --- JPEG / EXIF -------------------------------------------------------------------------------


def exif_orientation_block(orientation: int) -> bytes:
    """A minimal little-endian TIFF/EXIF block with one Orientation (0x0112) entry."""
    return b"II*\x00\x08\x00\x00\x00" + b"\x01\x00" + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + b"\x00" * 4


def mutate_jpeg_structure(data: bytes, rng: random.Random) -> bytes:
    op = rng.randrange(3)
    if op == 0:  # an EXIF segment with an edge orientation right after SOI
        exif = b"Exif\x00\x00" + exif_orientation_block(rng.choice(EXIF_ORIENTATIONS))
        return data[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + data[2:]
    sof = next((i for i in range(2, len(data) - 9) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC1, 0xC2)), None)
    if sof is None:
        return data
    field = sof + 5 if op == 1 else sof + 7  # height, or width, of the frame header
    return data[:field] + struct.pack(">H", rng.choice((0, 1, 2, 8, 255, 65535))) + data[field + 2 :]


# --- dataset text files ------------------------------------------------------------------------

_ODD_JSON_VALUES = (
    None,
    True,
    1,
    -1,
    1.5,
    "",
    "x",
    [],
    {},
    ["a"],
    ["a", "a"],
    [1, 2],
    [["a"]],
    {"a": "b"},
    ["c"] * 300,
    "\u0000",
    "\ud800",
)


def mutate_json_text(data: bytes, max_size: int, rng: random.Random) -> bytes:
    """Replace, remove or add one value of a JSON document (or fall back to byte mutation)."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return atheris.Mutate(data, max_size)
    op = rng.randrange(6)
    if op == 0:
        return (b"[" * rng.choice((100, 1000, 10_000)) + b"]" * rng.choice((0, 100, 10_000)))[:max_size]
    if op == 1:
        return ("9" * rng.choice((100, 5000))).encode()[:max_size]  # Python refuses ints over 4300 digits
    if op == 2:
        return b"\xef\xbb\xbf" + data  # a UTF-8 byte order mark (Windows editors write one)
    containers = _containers(document)
    if not containers:
        return atheris.Mutate(data, max_size)
    container = rng.choice(containers)
    keys = list(container) if isinstance(container, dict) else list(range(len(container)))
    value = rng.choice(_ODD_JSON_VALUES)
    if op == 3 and keys:
        del container[rng.choice(keys)]
    elif isinstance(container, dict):
        key = rng.choice(keys + ["format", "version", "classes", "attribute_groups", "", "image"])
        container[key] = value
    else:
        container.insert(rng.randrange(len(container) + 1), value)
    return json.dumps(document).encode()[:max_size]


def _containers(value: object) -> list:
    found = []
    if isinstance(value, dict | list):
        found.append(value)
        for child in value.values() if isinstance(value, dict) else value:
            found.extend(_containers(child))
    return found


def mutate_csv_text(data: bytes, max_size: int, rng: random.Random) -> bytes:
    """Line-level edits of a CSV file, or byte mutation."""
    op = rng.randrange(7)
    lines = data.split(b"\n")
    if op == 0:
        return atheris.Mutate(data, max_size)
    if op == 1:
        return b"\xef\xbb\xbf" + data
    index = rng.randrange(len(lines))
    if op == 2:
        del lines[index]
    elif op == 3:
        lines.insert(index, lines[rng.randrange(len(lines))])
    elif op == 4:
        lines[index] = lines[index] + rng.choice((b",", b",,x", b',"', b"\r", b"\x00", b"\xff\xfe"))
    elif op == 5:
        cells = lines[index].split(b",")
        cells[rng.randrange(len(cells))] = rng.choice((b"", b" ", b".png", b"/", b"..", b'"a,b"', b"x" * 200_000))
        lines[index] = b",".join(cells)
    else:
        lines[index] = lines[index].replace(b",", b";")
    return b"\n".join(lines)[:max_size]
