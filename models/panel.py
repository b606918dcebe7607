"""Pictures of predictions that a person can read: each task's own `visualize` with its key
(`Task.legend`) underneath, side by side with titles, and the image-level results as text
(`Task.describe`) in a column beside the pictures.

`result_panel` is the one-image picture of /visualize and `onepass predict --visualize`;
`onepass eval --visualize` composes its rows (truth and prediction) with `compose`. Nothing here
knows a task by name: every key and every line of text comes from a task's hooks.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from onepass.models.tasks.base import Task
from onepass.models.tasks.legends import ColourBar, KeyPicture, Legend, Swatches

TILE_MIN_WIDTH = 192  # px: a narrower image is scaled up, so that its key has room to be read
TILE_MAX_WIDTH = 640  # px: a wider one is scaled down (a VGA frame stays as it is)
TILE_MAX_HEIGHT = 960  # px: and a very tall one too, whatever its width
TEXT_COLUMN_WIDTH = 220  # px: the image-level results beside the pictures
GAP = 6  # px between columns

FONT_SIZE, SMALL_FONT_SIZE = 14, 12
LINE, SMALL_LINE = 18, 15
PAD = 6
TITLE_HEIGHT = LINE + 2

BACKGROUND = (24, 24, 24)
TEXT = (230, 230, 230)
MUTED = (160, 166, 178)
HIGHLIGHT = (255, 215, 120)


@dataclass(frozen=True)
class Tile:
    title: str
    picture: np.ndarray  # (H, W, 3) uint8
    legend: Legend | None = None


@dataclass(frozen=True)
class Row:
    """One image's tiles, and (heading, lines) sections of text for the column beside them."""

    tiles: Sequence[Tile]
    text: Sequence[tuple[str, Sequence[str]]] = field(default_factory=tuple)


def picture_tiles(image: np.ndarray, result: Mapping[str, Any], tasks: Sequence[Task], label: str = "") -> list[Tile]:
    """A titled tile with its key per task in `result` that draws a picture."""
    tiles = []
    for task in tasks:
        picture = task.visualize(result[task.name], image) if task.name in result else None
        if picture is not None:
            tiles.append(Tile(f"{task.name} {label}".strip(), picture, task.legend(result[task.name])))
    return tiles


def text_sections(result: Mapping[str, Any], tasks: Sequence[Task], label: str = "") -> list[tuple[str, list[str]]]:
    """(heading, lines) per task in `result` that says it in words."""
    sections = []
    for task in tasks:
        lines = task.describe(result[task.name]) if task.name in result else []
        if lines:
            sections.append((f"{task.name} {label}".strip(), lines))
    return sections


def result_panel(
    image: np.ndarray, result: Mapping[str, Any], tasks: Sequence[Task], footnote: str = ""
) -> Image.Image:
    """One image: the input, each task's picture and key, the results said in words beside them."""
    row = Row([Tile("input", image), *picture_tiles(image, result, tasks)], text_sections(result, tasks))
    return compose([row], footnote)


def tile_size(height: int, width: int) -> tuple[int, int]:
    """The (H, W) a picture of an image of this size is drawn at in a panel."""
    scale = min(max(1.0, TILE_MIN_WIDTH / width), TILE_MAX_WIDTH / width, TILE_MAX_HEIGHT / height)
    return max(1, round(height * scale)), max(1, round(width * scale))


def panel_width(tile_width: int, columns: int, text: bool) -> int:
    """The width of a panel of `columns` tiles `tile_width` wide (and the text column, if any)."""
    return columns * (tile_width + GAP) - GAP + (GAP + TEXT_COLUMN_WIDTH if text else 0)


def compose(rows: Sequence[Row], footnote: str = "") -> Image.Image:
    """A grid: one row per image, one titled tile per column with its key underneath, the text
    column on the right (when any row has text), and an optional footnote across the bottom."""
    columns = max(len(row.tiles) for row in rows)
    tile_width = max(tile_size(*t.picture.shape[:2])[1] for row in rows for t in row.tiles)
    text_width = TEXT_COLUMN_WIDTH if any(row.text for row in rows) else 0
    width = panel_width(tile_width, columns, bool(text_width))
    pictures = [_draw_row(row, tile_width, text_width, width) for row in rows]
    if footnote:
        pictures.append(_draw_lines([(footnote, HIGHLIGHT)], width, SMALL_FONT_SIZE))
    canvas = Image.new("RGB", (width, sum(p.height for p in pictures)), BACKGROUND)
    top = 0
    for picture in pictures:
        canvas.paste(picture, (0, top))
        top += picture.height
    return canvas


def _draw_row(row: Row, tile_width: int, text_width: int, width: int) -> Image.Image:
    tiles = [_scaled(t.picture) for t in row.tiles]
    keys = [draw_legend(t.legend, tile_width) if t.legend is not None else None for t in row.tiles]
    tiles_height = max(t.height for t in tiles) + max((k.height for k in keys if k is not None), default=0)
    text = _draw_text(row.text, text_width) if text_width and row.text else None
    height = TITLE_HEIGHT + max(tiles_height, text.height if text else 0)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for c, (tile, picture, key) in enumerate(zip(row.tiles, tiles, keys, strict=True)):
        left = c * (tile_width + GAP)
        draw.text((left + 3, 2), _fit(tile.title, tile_width - 6, _font(FONT_SIZE)), fill=TEXT, font=_font(FONT_SIZE))
        canvas.paste(picture, (left, TITLE_HEIGHT))
        if key is not None:
            canvas.paste(key, (left, TITLE_HEIGHT + picture.height))
    if text is not None:
        canvas.paste(text, (width - text_width, TITLE_HEIGHT))
    return canvas


def _scaled(picture: np.ndarray) -> Image.Image:
    image = Image.fromarray(picture)
    height, width = tile_size(image.height, image.width)
    return (
        image
        if (height, width) == (image.height, image.width)
        else image.resize((width, height), Image.Resampling.BILINEAR)
    )


# ---- keys ------------------------------------------------------------------------------------


def draw_legend(legend: Legend, width: int) -> Image.Image:
    """A legend drawn `width` pixels wide (as tall as it needs), on the panel's background."""
    if isinstance(legend, Swatches):
        return _draw_swatches(legend, width)
    if isinstance(legend, ColourBar):
        return _draw_colour_bar(legend, width)
    if isinstance(legend, KeyPicture):
        return _draw_key_picture(legend, width)
    raise TypeError(f"no drawing for a legend of type {type(legend).__name__}")


def _draw_swatches(legend: Swatches, width: int) -> Image.Image:
    font = _font(SMALL_FONT_SIZE)
    box = SMALL_LINE - 4
    cell = box + 4 + max((font.getlength(label) for label, _ in legend.items), default=0) + 10
    per_line = max(1, int((width - 2 * PAD) // cell))
    cell = (width - 2 * PAD) / per_line if per_line > 1 else width - 2 * PAD
    lines = -(-len(legend.items) // per_line)
    head = _draw_lines([(legend.title, MUTED)], width, SMALL_FONT_SIZE)
    note = _draw_lines([(legend.note, MUTED)], width, SMALL_FONT_SIZE) if legend.note else None
    swatches_height = head.height + lines * SMALL_LINE
    canvas = Image.new("RGB", (width, swatches_height + (note.height if note else PAD)), BACKGROUND)
    canvas.paste(head, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, (label, colour) in enumerate(legend.items):
        left = PAD + (i % per_line) * cell
        top = head.height + (i // per_line) * SMALL_LINE
        draw.rectangle((left, top + 1, left + box, top + 1 + box), fill=tuple(colour), outline=MUTED)
        text = _fit(label, cell - box - 8, font)
        draw.text((left + box + 4, top), text, fill=TEXT, font=font)
    if note:
        canvas.paste(note, (0, swatches_height))
    return canvas


def _draw_colour_bar(legend: ColourBar, width: int) -> Image.Image:
    font = _font(SMALL_FONT_SIZE)
    head = _draw_lines([(legend.title, MUTED)], width, SMALL_FONT_SIZE)
    note = _draw_lines([(legend.note, MUTED)], width, SMALL_FONT_SIZE) if legend.note else None
    bar_height = 10
    left, right = PAD + 4, width - PAD - 4
    stops = np.asarray(legend.colours, np.float32)  # (S, 3)
    positions = np.linspace(0.0, 1.0, len(stops))
    along = np.linspace(0.0, 1.0, max(1, right - left))
    bar = np.stack([np.interp(along, positions, stops[:, c]) for c in range(3)], axis=-1).astype(np.uint8)
    height = head.height + bar_height + 3 + SMALL_LINE + (note.height if note else PAD)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    canvas.paste(head, (0, 0))
    canvas.paste(Image.fromarray(np.repeat(bar[None], bar_height, axis=0)), (left, head.height))
    draw = ImageDraw.Draw(canvas)
    for at, label in legend.ticks:
        x = left + at * (right - left - 1)
        draw.line((x, head.height + bar_height, x, head.height + bar_height + 2), fill=TEXT)
        half = font.getlength(label) / 2
        draw.text((min(max(x - half, 1), width - 2 * half - 1), head.height + bar_height + 2), label, TEXT, font)
    if note:
        canvas.paste(note, (0, height - note.height))
    return canvas


def _draw_key_picture(legend: KeyPicture, width: int) -> Image.Image:
    """The picture with its title and note beside it, or under it when the key is narrow."""
    picture = Image.fromarray(legend.picture)
    beside = width - picture.width - 2 * PAD >= 110
    text_width = width - picture.width - PAD if beside else width
    text = _draw_lines([(legend.title, MUTED), (legend.note, TEXT)], text_width, SMALL_FONT_SIZE)
    picture_height = picture.height + 2 * PAD
    height = max(picture_height, text.height) if beside else picture_height + text.height
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    canvas.paste(picture, (PAD, PAD), picture if picture.mode == "RGBA" else None)
    canvas.paste(text, (picture.width + PAD, 0) if beside else (0, picture_height))
    return canvas


# ---- text ------------------------------------------------------------------------------------


def _draw_text(sections: Sequence[tuple[str, Sequence[str]]], width: int) -> Image.Image:
    lines: list[tuple[str, tuple[int, int, int]]] = []
    for heading, items in sections:
        lines += _wrap(heading, width - 2 * PAD, FONT_SIZE, MUTED)
        for item in items:
            lines += _wrap(item, width - 2 * PAD, FONT_SIZE, HIGHLIGHT)
        lines.append(("", TEXT))
    return _draw_lines(lines, width, FONT_SIZE)


def _draw_lines(lines: Sequence[tuple[str, tuple[int, int, int]]], width: int, size: int) -> Image.Image:
    """Lines of text (each with its colour), wrapped to `width`."""
    line_height = LINE if size == FONT_SIZE else SMALL_LINE
    wrapped = [piece for text, colour in lines for piece in _wrap(text, width - 2 * PAD, size, colour)]
    canvas = Image.new("RGB", (width, len(wrapped) * line_height + 2), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for i, (text, colour) in enumerate(wrapped):
        draw.text((PAD, 1 + i * line_height), text, fill=colour, font=_font(size))
    return canvas


def _wrap(text: str, width: float, size: int, colour: tuple[int, int, int]) -> list[tuple[str, tuple[int, int, int]]]:
    """Greedy word wrap to `width` pixels; a word longer than a line is cut to fit."""
    font = _font(size)
    lines, current = [], ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if current and font.getlength(candidate) > width:
            lines.append(current)
            candidate = word
        current = candidate
    lines.append(current)
    return [(_fit(line, width, font), colour) for line in lines]


def _fit(text: str, width: float, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> str:
    """`text`, cut with an ellipsis if it is wider than `width` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        text = text[:-1]
    return text + "..."


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's own scalable font (no system fonts needed)."""
    return ImageFont.load_default(size)
