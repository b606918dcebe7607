"""Optional dependencies (the ray, bench and dev extras, Debian's Chromium): the one way tests need them.

Locally, a test or module whose optional package or program is missing is skipped, and the reason
shows in pytest's summary (`-ra` in pyproject.toml), with a section listing everything missing. In
CI (`CI=true`, which .ci/run exports) every optional dependency must be installed: a missing one
fails the run instead of quietly leaving tests out.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

MISSING: dict[str, str] = {}  # what is missing -> why it matters; tests/conftest.py reports them


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _missing(what: str, reason: str) -> NoReturn:
    MISSING[what] = reason
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require(module: str, install: str) -> ModuleType:
    """Import `module` (at module level or in a fixture), or skip — in CI fail — saying how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        _missing(module, f"{module} is not installed ({install}): {error}")


def require_files(*paths: str | os.PathLike, install: str) -> None:
    """Programs the tests drive (e.g. /usr/bin/chromium): skip — in CI fail — when one is absent."""
    absent = [str(p) for p in paths if not Path(p).exists()]
    if absent:
        _missing(", ".join(absent), f"{', '.join(absent)} not found ({install})")


def has(module: str, install: str, unchecked: str) -> bool:
    """For tests that check less without `module` (`unchecked` says what then goes untested): False,
    listed in the summary; in CI the run then fails (tests/conftest.py)."""
    try:
        importlib.import_module(module)
    except ImportError:
        MISSING[module] = f"{module} is not installed ({install}): {unchecked} not checked"
        return False
    return True
