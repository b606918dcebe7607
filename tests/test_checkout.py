"""What runs is what was tested: `onepass` and every stage subpackage import from this checkout
(the editable install of scripts/setup.sh --editable), not from a wheel built earlier."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]


@pytest.mark.parametrize("package", sorted(PACKAGE_DIRS))
def test_onepass_is_imported_from_this_checkout(package):
    module = importlib.import_module(package)
    where = Path(module.__file__).resolve().parent
    assert where == (CHECKOUT / PACKAGE_DIRS[package]).resolve(), (
        f"{package} is imported from {where}, not from this checkout ({CHECKOUT}); install it editable: "
        "bash scripts/setup.sh --editable '.[dev,ray,bench]' (scripts/test.sh does)"
    )
