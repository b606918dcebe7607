"""Opt-in pytest plugin: run the suite as if torch saw one CUDA GPU, without one.

    ONEPASS_TEST_FAKE_CUDA=1 python -m pytest -p tests.fake_cuda tests/runtime ...

(or, once tests/conftest.py has the line `pytest_plugins = ["tests.fake_cuda"]`, just the variable).
It finds the tests and the code that silently assume a CPU machine: with it, `device="auto"` means
CUDA, every `torch.cuda.is_available()` is true and one device is listed, as on the project's
first GPU machine. It fakes no kernels: whatever really runs on the GPU still fails (those tests
carry the `cuda` marker; `-m "not cuda"` leaves them out). Subprocesses that tests start see the
real machine. Without the variable this module does nothing.
"""

from __future__ import annotations

import os

import pytest

ENV = "ONEPASS_TEST_FAKE_CUDA"
FAKE_GPU_NAME = "Fake CUDA GPU (ONEPASS_TEST_FAKE_CUDA)"


def enabled() -> bool:
    return os.environ.get(ENV) == "1"


def pytest_configure(config: pytest.Config) -> None:
    if not enabled():
        return
    import torch

    # Patched before any test module is imported, so module-level `torch.cuda.is_available()` checks
    # (skip conditions, device lists) see the fake too; never undone, the process is the test run.
    torch.cuda.is_available = lambda: True
    torch.cuda.device_count = lambda: 1
    torch.cuda.get_device_name = lambda device=None: FAKE_GPU_NAME


def pytest_report_header(config: pytest.Config) -> str | None:
    if enabled():
        return f"{ENV}=1: torch.cuda.is_available() is faked to be true (one device, no kernels)"
    return None
