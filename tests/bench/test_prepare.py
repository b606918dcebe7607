"""What the bench counts once per model: FLOPs and parameters per module (summing to the totals), and
the model without one task's head (the same weights less that head: its cost, in FLOPs exactly)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import onepass
from onepass.bench.plan import BenchError
from onepass.bench.prepare import GRAPH_REST, count_model, model_parts, without_task_package
from onepass.errors import ConfigError
from onepass.models import MultiTaskModel, save_package
from onepass.models.package import open_package
from tests.tiny import all_tasks, every_task_type, tiny_config


@pytest.fixture(scope="module")
def people_package(tmp_path_factory):
    """A tiny model with every task type, the people head among them."""
    path = tmp_path_factory.mktemp("people") / "tiny"
    torch.manual_seed(0)
    save_package(path, MultiTaskModel(tiny_config(tasks=every_task_type())).eval(), "tiny")
    return open_package(path)


@pytest.mark.parametrize("architecture", ["shared-fpn", "hps", "padnet", "mtinet"])
def test_modules_sum_to_the_model(tmp_path, architecture):
    torch.manual_seed(0)
    package = save_package(tmp_path / "m", MultiTaskModel(tiny_config(architecture, all_tasks())).eval(), "m")
    counts = count_model(open_package(package.path))
    modules = {m.module: m for m in counts.modules}
    assert sum(m.flops_per_image for m in counts.modules) == counts.flops_per_image > 0
    assert sum(m.parameters for m in counts.modules) == counts.parameters
    assert modules["encoder"].flops_per_image > 0 and "heads.image_heads.attributes" in modules
    for task in ("semseg", "depth", "normals"):
        assert modules[f"heads.dense_heads.{task}"].flops_per_image > 0
    assert [name for name, _ in model_parts(package.load_model())] == [m for m in modules if m != GRAPH_REST]


def test_without_a_head_is_the_same_model_less_that_head(people_package, tmp_path):
    without = without_task_package(people_package, "people", (64, 96), tmp_path)
    assert [t.name for t in without.config.tasks] == [t.name for t in people_package.config.tasks if t.name != "people"]
    full, less = count_model(people_package), count_model(without)
    head = {m.module: m for m in full.modules}["heads.dense_heads.people"]
    assert less.flops_per_image == full.flops_per_image - head.flops_per_image  # the head's FLOPs, exactly
    assert less.parameters == full.parameters - head.parameters
    image = np.random.default_rng(0).integers(0, 256, (1, 64, 96, 3), dtype=np.uint8)
    ours = onepass.load(people_package.path, backend="torch", device="cpu").run(image)
    theirs = onepass.load(without.path, backend="torch", device="cpu").run(image)
    assert "people_count" in ours and "people_count" not in theirs
    for name, value in theirs.items():  # every other output is unchanged: the same weights
        np.testing.assert_array_equal(value, ours[name])
    again = without_task_package(people_package, "people", (64, 96), tmp_path)
    assert again.path == without.path and (without.path / ".bench-weights.sha256").is_file()


def test_head_cost_refusals(people_package, tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'people'"):
        without_task_package(people_package, "peple", (64, 96), tmp_path)
    torch.manual_seed(0)
    single = save_package(tmp_path / "one", MultiTaskModel(tiny_config(tasks=all_tasks()[1:2])).eval(), "one")
    with pytest.raises(BenchError, match="the model's only task"):
        without_task_package(open_package(single.path), "depth", (64, 96), tmp_path)
