"""The inference graph: uint8 NHWC image in, post-processed named outputs out.

This is the module `torch.onnx.export` traces and the torch backend runs, so every backend shares
one definition of normalisation and post-processing (each task's own `postprocess`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from onepass.models.model import MultiTaskModel


class InferenceGraph(nn.Module):
    def __init__(self, model: MultiTaskModel):
        super().__init__()
        self.model = model
        config = model.config
        # (1, 3, 1, 1) so they broadcast over NCHW; mean/std in 0..255 units saves one multiply
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("inv_std", 1.0 / (torch.tensor(config.std).view(1, 3, 1, 1) * 255.0), persistent=False)

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        # image (N, H, W, 3) uint8 -> (N, 3, H, W) float, normalised
        x = (image.permute(0, 3, 1, 2).float() - self.mean) * self.inv_std
        raw = self.model(x)
        outputs: dict[str, Tensor] = {}
        for task in self.model.config.tasks:
            outputs.update(task.postprocess(raw[task.name]))
        return outputs
