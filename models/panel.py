"""Pictures of predictions: each task's own `visualize`, laid out side by side with titles.

Used by `onepass eval --visualize` now, and by the serve page and `predict --visualize` later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from onepass.models.tasks.base import Task

TITLE_HEIGHT = 14
CAPTION_LINE = 12


def tiles_for(
    image: np.ndarray, result: Mapping[str, Any], tasks: Sequence[Task], label: str
) -> list[tuple[str, np.ndarray]]:
    """(title, picture) per task in `result` that draws one."""
    tiles = []
    for task in tasks:
        picture = task.visualize(result[task.name], image) if task.name in result else None
        if picture is not None:
            tiles.append((f"{task.name} {label}".strip(), picture))
    return tiles


def attribute_caption(result: Mapping[str, Any]) -> str:
    """'people 2 (0.91)  facing yes (0.77)': each group's label and its probability."""
    return "  ".join(
        f"{group} {value['label']} ({value['probabilities'][value['label']]:.2f})"
        for group, value in result.get("attributes", {}).items()
    )


def compose(rows: Sequence[Sequence[tuple[str, np.ndarray]]], captions: Sequence[str] | None = None) -> Image.Image:
    """A grid: one row per image, one titled tile per column, an optional caption under each row."""
    tile_h = max(t.shape[0] for row in rows for _, t in row)
    tile_w = max(t.shape[1] for row in rows for _, t in row)
    columns = max(len(row) for row in rows)
    caption_h = CAPTION_LINE + 4 if captions else 0
    row_h = TITLE_HEIGHT + tile_h + caption_h
    canvas = Image.new("RGB", (columns * tile_w, len(rows) * row_h), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        top = r * row_h
        for c, (title, tile) in enumerate(row):
            canvas.paste(Image.fromarray(tile), (c * tile_w, top + TITLE_HEIGHT))
            draw.text((c * tile_w + 3, top + 1), title, fill=(230, 230, 230))
        if captions:
            draw.text((3, top + TITLE_HEIGHT + tile_h + 2), captions[r], fill=(255, 220, 120))
    return canvas
