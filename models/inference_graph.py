"""The inference graph: uint8 NHWC image in, post-processed named outputs out.

This is the module `torch.onnx.export` traces and the torch backend runs, so every backend shares
one definition of normalisation and post-processing (each task's own `postprocess`).
"""

from __future__ import annotations

from torch import Tensor, nn

from onepass.models.model import MultiTaskModel, normalise


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
