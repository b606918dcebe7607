"""Keys to a task's pictures: what each colour of `Task.visualize` means.

A task's `legend(result)` returns one of these; the panels (models/panel.py) draw it under the
picture, the web page draws it from its JSON (`to_json`, sent with /predict's previews). Three
kinds cover the built-in tasks, and a new task picks the one that fits (or draws a `KeyPicture`):

- `Swatches`: a colour per label (segmentation classes);
- `ColourBar`: a continuous scale with ticks (metric depth);
- `KeyPicture`: a small picture and a note (a shaded sphere for surface normals).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

Colour = tuple[int, int, int]


def hex_colour(colour: Colour) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in colour))


@dataclass(frozen=True)
class Swatches:
    """A colour per label, in the picture's own colours."""

    title: str
    items: tuple[tuple[str, Colour], ...]  # (label, RGB)
    note: str = ""

    def to_json(self) -> dict:
        return {
            "kind": "swatches",
            "title": self.title,
            "items": [{"label": label, "colour": hex_colour(colour)} for label, colour in self.items],
            "note": self.note,
        }


@dataclass(frozen=True)
class ColourBar:
    """A continuous scale: `colours` evenly spaced from the low end (left) to the high end (right)."""

    title: str
    colours: tuple[Colour, ...]
    ticks: tuple[tuple[float, str], ...]  # (position along the bar in [0, 1], label)
    note: str = ""

    def to_json(self) -> dict:
        return {
            "kind": "colour_bar",
            "title": self.title,
            "colours": [hex_colour(c) for c in self.colours],
            "ticks": [{"at": at, "label": label} for at, label in self.ticks],
            "note": self.note,
        }


@dataclass(frozen=True, eq=False)
class KeyPicture:
    """A small picture that shows what the colours mean, and a note in words."""

    title: str
    picture: np.ndarray  # (h, w, 3) RGB or (h, w, 4) RGBA, uint8
    note: str = ""

    def to_json(self) -> dict:
        buffer = io.BytesIO()
        Image.fromarray(self.picture).save(buffer, format="PNG")
        return {
            "kind": "picture",
            "title": self.title,
            "png": base64.b64encode(buffer.getvalue()).decode("ascii"),
            "note": self.note,
        }


Legend = Swatches | ColourBar | KeyPicture
