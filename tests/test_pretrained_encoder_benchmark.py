"""benchmarks/pretrained_encoder.py's comparison of a scratch and a pretrained run, on hand-written
logs (the script itself trains twice: see its docstring for the run)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pretrained_encoder.py"


def load_script():
    spec = importlib.util.spec_from_file_location("pretrained_encoder", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(step: int, miou: float, abs_err: float, acc: float) -> dict:
    return {"step": step, "val": {"semseg": {"miou": miou}, "depth": {"abs_err": abs_err}, "attributes": {"acc": acc}}}


DIRECTIONS = {"semseg": {"miou": True}, "depth": {"abs_err": False}, "attributes": {"acc": True}}


def test_steps_to_reach_scratch_follow_each_metrics_direction():
    script = load_script()
    logs = {
        "scratch": [record(10, 0.2, 1.0, 50.0), record(20, 0.5, 0.6, 70.0)],
        # mIoU reaches 0.5 at 10 (higher is better), abs err 0.6 at 20 (lower is better), acc never
        "pretrained": [record(10, 0.55, 0.7, 60.0), record(20, 0.6, 0.6, 65.0)],
    }
    report = script.compare(logs, DIRECTIONS)
    assert report["steps_to_scratch_final"] == {
        "semseg.miou": 10,
        "depth.abs_err": 20,
        "attributes.acc": None,
        "all": None,
    }
    assert report["total_steps"] == 20 and report["final"]["pretrained"]["semseg"]["miou"] == 0.6
    text = script.markdown(report)
    assert "| semseg | miou | 0.5 | 0.6 |" in text and "| attributes.acc | - |" in text


def test_all_headlines_at_once_is_the_first_step_where_every_one_is_reached():
    script = load_script()
    logs = {
        "scratch": [record(30, 0.5, 0.6, 70.0)],
        "pretrained": [record(10, 0.6, 0.7, 80.0), record(20, 0.4, 0.5, 80.0), record(30, 0.5, 0.6, 70.0)],
    }
    assert script.compare(logs, DIRECTIONS)["steps_to_scratch_final"] == {
        "semseg.miou": 10, "depth.abs_err": 20, "attributes.acc": 10, "all": 30,
    }  # fmt: skip
