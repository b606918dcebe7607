"""Shared fixtures (helpers live in tests/tiny.py)."""

from __future__ import annotations

import pytest
import torch

from tests.tiny import write_random_dataset


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    torch.set_num_threads(2)


@pytest.fixture
def random_dataset(tmp_path):
    return write_random_dataset(tmp_path / "data")
