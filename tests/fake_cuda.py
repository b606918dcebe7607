"""Opt-in pytest plugin: run the suite as if there were one CUDA GPU, without one.

    ONEPASS_TEST_FAKE_CUDA=1 python -m pytest -p tests.fake_cuda tests/runtime ...

(or, once tests/conftest.py has the line `pytest_plugins = ["tests.fake_cuda"]`, just the variable).
It finds the tests and the code that silently assume a CPU machine: for onepass and its tests,
`torch.cuda.is_available()` is true and one device is listed, so `device="auto"` means CUDA, as on
the project's first GPU machine. torch and other libraries still see the real machine (their own
bookkeeping, e.g. saving CUDA RNG state during an ONNX export, would otherwise try to start a
driver that is not there). It fakes no kernels: whatever really runs on the GPU still fails
(those tests carry the `cuda` marker; `-m "not cuda"` leaves them out). Subprocesses that tests
start see the real machine. Without the variable this module does nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import pytest

ENV = "ONEPASS_TEST_FAKE_CUDA"
FAKE_GPU_NAME = "Fake CUDA GPU (ONEPASS_TEST_FAKE_CUDA)"
FAKED_FOR = ("onepass", "tests")  # the callers (module name prefixes) that see the fake GPU


def enabled() -> bool:
    return os.environ.get(ENV) == "1"


def _for_onepass(real: Callable[..., Any], fake: Callable[..., Any]) -> Callable[..., Any]:
    def patched(*args: Any, **kwargs: Any) -> Any:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        faked = caller.split(".")[0] in FAKED_FOR
        return fake(*args, **kwargs) if faked else real(*args, **kwargs)

    return patched


def pytest_configure(config: pytest.Config) -> None:
    if not enabled():
        return
    import torch

    # Patched before any test module is imported, so module-level `torch.cuda.is_available()` checks
    # (skip conditions, device lists) see the fake too; never undone: the process is the test run.
    cuda = torch.cuda
    cuda.is_available = _for_onepass(cuda.is_available, lambda: True)
    cuda.device_count = _for_onepass(cuda.device_count, lambda: 1)
    cuda.get_device_name = _for_onepass(cuda.get_device_name, lambda device=None: FAKE_GPU_NAME)


def pytest_report_header(config: pytest.Config) -> str | None:
    if enabled():
        return f"{ENV}=1: onepass and its tests see one fake CUDA GPU (no kernels)"
    return None
