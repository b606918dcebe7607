"""The devices a test runs on: explicit, never whatever `device="auto"` finds.

`DEVICES` parametrises a test over the devices present (CUDA marked `cuda`); `strict_fp32()` turns
TF32 off, so CUDA fp32 is compared with CPU fp32 at fp32 tolerances (PyTorch runs cuDNN
convolutions in TF32 by default, products with a 10-bit mantissa)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch

DEVICES = ["cpu"] + ([pytest.param("cuda", marks=pytest.mark.cuda)] if torch.cuda.is_available() else [])


@contextlib.contextmanager
def strict_fp32() -> Iterator[None]:
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
