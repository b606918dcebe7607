"""A tiny model that speaks the synthetic scenes' labels, so the metric cost can be measured on it."""

from __future__ import annotations

import pytest
import torch

from onepass.data.synth import ATTRIBUTE_GROUPS, CLASS_NAMES
from onepass.models import MultiTaskModel, save_package
from onepass.models.tasks import AttributesTask, DepthTask, NormalsTask, SemsegTask
from tests.optional import has
from tests.tiny import tiny_config


def synthetic_tasks() -> tuple:
    return (SemsegTask(CLASS_NAMES), DepthTask(), NormalsTask(), AttributesTask(ATTRIBUTE_GROUPS))


@pytest.fixture(scope="package")
def tiny_package(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "tiny"
    torch.manual_seed(0)
    save_package(path, MultiTaskModel(tiny_config(tasks=synthetic_tasks())).eval(), "tiny")
    return path


# few, short timed runs: the smoke tests check structure and arithmetic, not speed
FAST = [
    "--batch-sizes",
    "1,2",
    "--warmup",
    "1",
    "--iters",
    "2",
    "--seconds",
    "0",
    "--source-size",
    "96x128",
    "--roofline-seconds",
    "0",
]

# --plot needs the `bench` extra; without it the plot checks are skipped (and --plot's error is tested)
HAVE_MATPLOTLIB = has("matplotlib", "the bench extra: pip install 'onepass[bench]'", "onepass bench --plot")


def plot_args(folder) -> list[str]:
    return ["--plot", str(folder)] if HAVE_MATPLOTLIB else []


needs_matplotlib = pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="matplotlib (the bench extra) is not installed")
