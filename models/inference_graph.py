"""The inference graphs: uint8 NHWC image in, post-processed named outputs out.

These are the modules `torch.onnx.export` traces and the torch backend runs, so every backend shares
one definition of normalisation, resizing and post-processing (each task's own hooks):

- `InferenceGraph` takes images already resized to the model's input and returns the outputs at
  that resolution (`postprocess`): the fixed-size graph, `model.onnx`;
- `FrameGraph` takes the camera frame at any size, resizes it to the model's input inside the graph
  as training does (data/image.py's `resize_to_input`), and returns the outputs at the frame's size
  (`postprocess_at`): `model.frame.onnx`. On a GPU both resizes run there; the caller only slices.
"""

from __future__ import annotations

from torch import Tensor, nn

from onepass.models.model import MultiTaskModel, normalise
from onepass.models.tasks.base import resize_map


class InferenceGraph(nn.Module):
    def __init__(self, model: MultiTaskModel):
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        config = self.model.config
        x = normalise(image.permute(0, 3, 1, 2), config.mean, config.std)  # (N, H, W, 3) uint8 -> (N, 3, H, W)
        raw = self.model(x)
        outputs: dict[str, Tensor] = {}
        for task in self.model.config.tasks:
            outputs.update(task.postprocess(raw[task.name]))
        return outputs


def frame_to_input(image: Tensor, size: tuple[int, int]) -> Tensor:
    """(N, H, W, 3) uint8 frames -> (N, 3, h, w) uint8-valued floats at the model's input `size`.

    Pillow's bilinear resize (antialiased when shrinking), then rounded to whole grey levels as
    Pillow's uint8 result is: measured against `resize_to_input`, at most 1 grey level apart (its
    fixed-point arithmetic), on 5 to 25 % of the values (docs/performance.md)."""
    x = image.permute(0, 3, 1, 2)  # (N, 3, H, W)
    return resize_map(x, size).round().clamp(0.0, 255.0)


class FrameGraph(nn.Module):
    """The frame-size graph: (N, H, W, 3) uint8 at any H, W -> every output at (H, W)."""

    def __init__(self, model: MultiTaskModel):
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        size = (image.shape[1], image.shape[2])  # the frame's (H, W); symbolic in the exported graph
        return self.from_input(frame_to_input(image, self.model.config.input_size), size)

    def from_input(self, x: Tensor, size: tuple[int, int]) -> dict[str, Tensor]:
        """The graph after its input resize: `x` (N, 3, h, w) grey levels at the model's input size ->
        every output at the frame's `size` (export parity feeds it another graph's resize)."""
        config = self.model.config
        raw = self.model(normalise(x, config.mean, config.std))
        outputs: dict[str, Tensor] = {}
        for task in config.tasks:
            outputs.update(task.postprocess_at(raw[task.name], size))
        return outputs
