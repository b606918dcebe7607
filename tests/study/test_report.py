"""The report builder on hand-made results: mean ± std, Δ_MTL per seed against the baselines' mean,
latency ratios, the Pareto front and the best configuration within the budget, against values
computed by hand; and the plots drawn from it."""

from __future__ import annotations

import math

import pytest

from onepass.study.config import parse_study
from onepass.study.plots import plot_study
from onepass.study.report import SINGLE_TASK_MODELS, build_document, format_spread, render_report
from onepass.study.results import RunResult, read_weights
from onepass.study.summary import best_within, pareto_front, spread, weights_over_training
from tests.study.conftest import study_values
from tests.tiny import all_tasks

TASKS = {t.name: t for t in all_tasks() if t.name in ("semseg", "depth")}  # miou ↑ ... ; rmse ↓ ...

# One metric per task, so Δ_MTL is easy to compute by hand (metrics absent from a result are skipped).
METRICS = {
    ("single-semseg", 0): {"semseg": {"miou": 0.50}},
    ("single-semseg", 1): {"semseg": {"miou": 0.60}},
    ("single-semseg", 2): {"semseg": {"miou": 0.70}},  # baseline B_miou = 0.60
    ("single-depth", 0): {"depth": {"rmse": 1.0}},
    ("single-depth", 1): {"depth": {"rmse": 1.2}},
    ("single-depth", 2): {"depth": {"rmse": 1.4}},  # baseline B_rmse = 1.2
    # Δ = ((M_miou − 0.6)/0.6 − (M_rmse − 1.2)/1.2) / 2 × 100: +10, −10, +10
    ("shared", 0): {"semseg": {"miou": 0.66}, "depth": {"rmse": 1.08}},
    ("shared", 1): {"semseg": {"miou": 0.54}, "depth": {"rmse": 1.32}},
    ("shared", 2): {"semseg": {"miou": 0.72}, "depth": {"rmse": 1.20}},
    # +50, +50, +50: better, and slower
    ("big", 0): {"semseg": {"miou": 0.90}, "depth": {"rmse": 0.6}},
    ("big", 1): {"semseg": {"miou": 0.90}, "depth": {"rmse": 0.6}},
    ("big", 2): {"semseg": {"miou": 0.90}, "depth": {"rmse": 0.6}},
}
LATENCY_MS = {"single-semseg": 10.0, "single-depth": 10.0, "shared": 12.0, "big": 30.0}


def _document(tiny_data, tmp_path, latency_budget=1.3):
    values = study_values(
        tiny_data, tmp_path / "study", configurations=[{"name": "shared"}, {"name": "big", "architecture": "hps"}]
    )
    study = parse_study(values)
    configurations = [(c, study.train_config(c, 0)) for c in study.all_configurations()]
    weights = ((3, {"semseg": 1.0, "depth": 1.0}), (6, {"semseg": 1.5, "depth": 0.5}))
    results = [
        RunResult(name, seed, metrics, steps=2, batch_size=4, seconds=1.0 + seed, weights=weights)
        for (name, seed), metrics in METRICS.items()
    ]
    costs = {
        name: {"parameters": 1_000_000 * (i + 1), "flops_per_image": 2e9, "latency": {"p50": ms, "n": 2}}
        for i, (name, ms) in enumerate(LATENCY_MS.items())
    }
    base = {"model": "shared", "latency_ms": 12.0}
    return build_document(configurations, results, TASKS, costs, base, latency_budget, {"command": "onepass study"})


def _entry(document, name):
    return next(e for e in document["configurations"] if e["name"] == name)


def test_metrics_and_delta_mtl_are_mean_and_sample_std_over_seeds(tiny_data, tmp_path):
    document = _document(tiny_data, tmp_path)
    assert document["baselines"] == {"semseg": pytest.approx({"miou": 0.6}), "depth": pytest.approx({"rmse": 1.2})}
    shared = _entry(document, "shared")
    miou = shared["metrics"]["semseg"]["miou"]
    assert miou["mean"] == pytest.approx(0.64) and miou["n"] == 3
    assert miou["std"] == pytest.approx(math.sqrt((0.02**2 + 0.10**2 + 0.08**2) / 2))  # ddof 1
    delta = shared["delta_mtl"]
    assert delta["per_seed"] == pytest.approx({"0": 10.0, "1": -10.0, "2": 10.0})
    assert delta["mean"] == pytest.approx(10 / 3) and delta["std"] == pytest.approx(math.sqrt(800 / 3 / 2))
    assert shared["delta_per_task"]["semseg"]["mean"] == pytest.approx((10 - 10 + 20) / 3)
    assert shared["delta_per_task"]["depth"]["mean"] == pytest.approx((10 - 10 + 0) / 3)
    assert _entry(document, "big")["delta_mtl"]["mean"] == pytest.approx(50.0)
    assert _entry(document, "big")["delta_mtl"]["std"] == pytest.approx(0.0, abs=1e-9)
    single = _entry(document, "single-semseg")  # each seed against its own baseline's mean: the seed noise
    assert single["delta_mtl"]["per_seed"] == pytest.approx({"0": -100 / 6, "1": 0.0, "2": 100 / 6})
    assert format_spread(shared["delta_mtl"], percent=True) == "+3.33 ± 11.55 %"
    assert format_spread(miou) == "0.64 ± 0.0917"
    one_seed = {"mean": -8.04, "std": 0.0, "n": 1}
    assert format_spread(one_seed, percent=True) == "-8.04 % (1 seed)" and format_spread(one_seed) == "-8.04 (1 seed)"
    assert shared["train_seconds"]["mean"] == pytest.approx(2.0)
    assert document["budget"] == {"steps": [2], "batch_size": [4], "same_for_every_run": True}


def test_latency_ratio_pareto_front_and_best_within_budget(tiny_data, tmp_path):
    document = _document(tiny_data, tmp_path)
    assert document["single_task_models"] == {
        "tasks": ["semseg", "depth"],
        "parameters": 3_000_000,
        "flops_per_image": 4e9,
        "latency_ms": 20.0,
    }
    assert _entry(document, "shared")["latency_ratio"] == pytest.approx(0.6)
    assert _entry(document, "big")["latency_ratio"] == pytest.approx(1.5)
    # shared (12 ms, +3.3) beats the single-task models (20 ms, 0); big (30 ms, +50) is the best Δ
    assert [e["name"] for e in document["configurations"] if e["pareto"]] == ["shared", "big"]
    assert not document["single_task_models_on_front"]
    budget = document["latency_budget"]
    assert budget["budget_ms"] == pytest.approx(15.6) and budget["best"] == "shared"
    assert _document(tiny_data, tmp_path, latency_budget=3.0)["latency_budget"]["best"] == "big"
    assert _document(tiny_data, tmp_path, latency_budget=0.5)["latency_budget"]["best"] is None


def test_pareto_front_and_best_within_on_their_own():
    points = {"a": (10.0, 1.0), "b": (12.0, 1.0), "c": (20.0, 5.0), "d": (5.0, -3.0), "e": (20.0, 4.0)}
    assert pareto_front(points) == ["d", "a", "c"]  # b: as good as a but slower; e: as fast as c but worse
    assert best_within(points, 12.0) == "a" and best_within(points, 4.0) is None


def test_spread_ignores_missing_values_and_counts_them_out():
    assert spread([1.0, None, float("nan"), 3.0]) == spread([1.0, 3.0])
    assert spread([2.0]).std == 0.0 and spread([]).n == 0


def test_weights_over_training_average_the_seeds(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(
        '{"epoch": 0, "step": 3, "weights": {"a": 9.0}}\n'
        '{"epoch": 0, "step": 3, "weights": {"a": 1.0}}\n'  # a resumed run logged epoch 0 again: the last wins
        '{"epoch": 1, "step": 6, "weights": {"a": 2.0}}\n'
    )
    first = read_weights(log)
    assert first == ((3, {"a": 1.0}), (6, {"a": 2.0}))
    second = ((3, {"a": 3.0}), (6, {"a": 2.0}))
    results = [RunResult("x", s, {}, 6, 4, 1.0, w) for s, w in ((0, first), (1, second))]
    summary = weights_over_training(results)
    assert summary["steps"] == [3, 6] and summary["varies"]
    assert summary["tasks"]["a"]["mean"] == pytest.approx([2.0, 2.0])
    assert summary["tasks"]["a"]["std"] == pytest.approx([math.sqrt(2.0), 0.0])
    flat = [RunResult("x", 0, {}, 6, 4, 1.0, ((3, {"a": 1.0}), (6, {"a": 1.0})))]
    assert not weights_over_training(flat)["varies"]


def test_markdown_and_plots_are_drawn_from_the_document(tiny_data, tmp_path):
    document = _document(tiny_data, tmp_path)
    plots = plot_study(document, tmp_path / "plots")
    assert len(plots) == 3 and all(p.stat().st_size > 10_000 for p in plots.values())
    text = render_report(document, TASKS, {caption: p.name for caption, p in plots.items()})
    assert "took 2 optimiser steps of batch 4" in text
    assert "| shared ★ | semseg, depth | shared-fpn | fixed | +3.33 ± 11.55 % | 3.00 M | 2 | 12.0 | 0.60x |" in text
    assert f"| {SINGLE_TASK_MODELS} (one per task) | semseg, depth | — | — | 0 (by definition) | 3.00 M |" in text
    assert "**Best within it: `shared`**" in text and "1.3x the base architecture's latency (shared, 12.0 ms)" in text
    assert "| single-semseg (baseline) | 0.6 ± 0.1 | — |" in text  # the semseg table: miou, no pixel_acc given
    assert "| shared | +6.67 ± 15.28 % | +0.00 ± 10.00 % |" in text  # Δ per task
    assert all(f"]({p.name})" in text for p in plots.values())
