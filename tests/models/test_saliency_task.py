"""The saliency task against hand-computed KL divergence, correlation and NSS, and its file codec."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from onepass.data.codecs import DensityPngCodec, LabelFileError
from onepass.models.tasks import SaliencyTask


def test_postprocess_is_a_distribution_and_the_loss_is_kl():
    task = SaliencyTask()
    raw = torch.tensor([[[[0.0, math.log(3.0)]]]])  # (1, 1, 1, 2): probabilities 1/4, 3/4
    np.testing.assert_allclose(task.postprocess(raw)["saliency"].numpy(), [[[0.25, 0.75]]], rtol=1e-6)
    target = torch.tensor([[[2.0, 2.0]]])  # any scale: the shape (1/2, 1/2) is what counts
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert float(task.loss(raw, target)) == pytest.approx(expected, rel=1e-6)
    assert task.loss(raw, torch.zeros(1, 1, 2)) is None  # unlabelled


def test_metrics_by_hand():
    task = SaliencyTask()
    true = torch.tensor([[[0.0, 1.0, 3.0, 0.0]]])  # fixations: the pixel of 3 (>= half the maximum)
    perfect = {"saliency": true / true.sum()}
    metric = task.new_metric()
    metric.update(perfect, true)
    values = metric.compute()
    assert values["kld"] == pytest.approx(0.0, abs=1e-9) and values["cc"] == pytest.approx(1.0)
    p = (true / true.sum()).flatten().double()
    assert values["nss"] == pytest.approx(float((p[2] - p.mean()) / p.std()))
    uniform = task.new_metric()
    uniform.update({"saliency": torch.full((1, 1, 4), 0.25)}, true)
    values = uniform.compute()
    assert values["kld"] == pytest.approx(0.75 * math.log(3.0))  # 1/4 log(1/4 / 1/4) + 3/4 log(3/4 / 1/4)
    assert values["cc"] == pytest.approx(0.0) and values["nss"] == pytest.approx(0.0)


def test_to_result_keeps_a_distribution_and_agreement_is_relative():
    task = SaliencyTask()
    outputs = task.postprocess(torch.randn(2, 1, 8, 12))
    result = task.to_result({"saliency": outputs["saliency"][0].numpy()}, (16, 24))
    assert result.shape == (16, 24) and result.sum() == pytest.approx(1.0, rel=1e-5)
    reference = {"saliency": outputs["saliency"].numpy()}
    assert all(c.passed for c in task.agreement(reference, reference))


def test_density_codec_round_trip_and_refusals():
    codec = DensityPngCodec()
    density = np.array([[0.0, 0.1], [0.3, 0.6]], np.float32)
    decoded = codec.decode(codec.encode(density), "x.png")
    np.testing.assert_allclose(decoded, density / density.sum(), atol=1e-4)
    assert codec.decode(codec.encode(np.zeros((2, 2))), "x.png").sum() == 0  # all zero: unlabelled
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, format="PNG")
    with pytest.raises(LabelFileError, match="y.png: a density map must be a greyscale PNG"):
        codec.decode(buffer.getvalue(), "y.png")
