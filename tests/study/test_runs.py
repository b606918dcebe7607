"""Running a study: finished runs are skipped, a crashed run resumes from its checkpoint (or restarts
when it has none), a finished run of another config is refused; the report comes from the runs."""

from __future__ import annotations

import json

import pytest

from onepass.models import MultiTaskModel, save_package
from onepass.models.model import ModelConfig
from onepass.models.package import METRICS_FILE, WEIGHTS_FILE, open_package, save_metrics
from onepass.study.config import RunSpec, parse_study
from onepass.study.errors import StudyError
from onepass.study.pipeline import run_study, write_interim_report
from onepass.study.runs import RunOutcome, is_finished, run_one
from onepass.train.loop import train
from tests.study.conftest import study_values
from tests.tiny import all_tasks

# What the fake run "measures": each configuration's semseg mIoU and depth RMSE, per seed.
FAKE = {"single-semseg": (0.5, None), "single-depth": (None, 1.0), "shared-fpn": (0.55, 0.9), "hps": (0.45, 0.8)}


class FakeRun:
    """Writes what a finished `onepass train` leaves (a tiny random package, metrics.json, a log of
    weights) without training, and records which runs it was asked for."""

    def __init__(self):
        self.calls: list[tuple[str, int]] = []

    def __call__(self, spec: RunSpec) -> RunOutcome:
        self.calls.append((spec.configuration, spec.seed))
        config = spec.config
        tasks = tuple(t for t in all_tasks() if t.name in config.model.tasks)
        model = config.model
        model_config = ModelConfig(
            tasks=tasks,
            encoder=model.encoder,
            architecture=model.architecture,
            decoder_channels=model.decoder_channels,
            input_size=model.input_size,
        )
        training = {"config": config.to_json(), "steps": config.run.steps, "seconds": 1.5}
        save_package(spec.out, MultiTaskModel(model_config).eval(), config.run.name, training=training)
        miou, rmse = FAKE[spec.configuration]
        metrics = {}
        if miou is not None:
            metrics["semseg"] = {"miou": miou + 0.01 * spec.seed}
        if rmse is not None:
            metrics["depth"] = {"rmse": rmse}
        (spec.out / "train").mkdir(exist_ok=True)
        moves = spec.configuration == "shared-fpn"  # the others' weights stay put (and are not plotted)
        lines = [{"epoch": e, "step": 2 * e + 2, "weights": {t.name: 1.0 + e * moves for t in tasks}} for e in (0, 1)]
        (spec.out / "train" / "log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        save_metrics(spec.out, metrics, {"path": config.data.val_path, "images": 4})
        return RunOutcome(spec.configuration, spec.seed, "trained", 0.0)


def test_a_study_skips_finished_runs_and_reports_from_them(tiny_data, tmp_path):
    values = study_values(
        tiny_data, tmp_path / "study", configurations=[{"name": "shared-fpn"}, {"name": "hps", "architecture": "hps"}]
    )
    study = parse_study(values)
    fake, lines = FakeRun(), []
    report = run_study(study, run=fake, log=lines.append)
    everything = [(c.name, s) for s in (0, 1, 2) for c in study.all_configurations()]
    assert fake.calls == everything and report == tmp_path / "study" / "report.md"
    document = json.loads((tmp_path / "study" / "report.json").read_text())
    assert (document["runs_trained"], document["runs_skipped"]) == (12, 0)
    shared = next(e for e in document["configurations"] if e["name"] == "shared-fpn")
    # B_miou = mean(0.50, 0.51, 0.52) = 0.51, B_rmse = 1.0: seed s has Δ = ((0.55 + 0.01 s)/0.51 − 1 + 0.1) / 2
    expected = [((0.55 + 0.01 * s) / 0.51 - 1 + 0.1) / 2 * 100 for s in (0, 1, 2)]
    assert shared["delta_mtl"]["per_seed"] == pytest.approx({str(s): d for s, d in enumerate(expected)})
    assert shared["weights"]["steps"] == [2, 4] and shared["weights"]["tasks"]["depth"]["mean"] == [1.0, 2.0]
    assert shared["parameters"] == open_package(tmp_path / "study" / "runs" / "shared-fpn" / "seed0").parameter_count()
    assert shared["latency_ms"] > 0 and document["latency_budget"]["model"] == "shared-fpn"
    assert (tmp_path / "study" / "plots" / "delta_mtl.png").is_file()

    fake.calls.clear()
    run_study(study, run=fake, log=lines.append)
    assert fake.calls == []  # every run finished: nothing trained again
    document = json.loads((tmp_path / "study" / "report.json").read_text())
    assert (document["runs_trained"], document["runs_skipped"]) == (0, 12)
    assert "12 runs: 12 finished, 0 to train" in "\n".join(lines)

    (tmp_path / "study" / "runs" / "hps" / "seed1" / METRICS_FILE).unlink()  # as if it died before finishing
    fake.calls.clear()
    run_study(study, run=fake, log=lines.append)
    assert fake.calls == [("hps", 1)]
    document = json.loads((tmp_path / "study" / "report.json").read_text())
    assert [i["runs_trained"] for i in document["invocations"]] == [12, 0, 1]  # the study's history so far
    assert "3 invocations wrote reports into this study folder, 2 of them training runs" in report.read_text()


def test_a_study_reports_from_run_records_without_their_weights(tiny_data, tmp_path):
    """A study carried between machines keeps each run's record (onepass.json, metrics.json, the log),
    not its weights: the report is the same, each network timed as a model built from its config."""
    study = parse_study(study_values(tiny_data, tmp_path / "study", configurations=[{"name": "shared-fpn"}]))
    run_study(study, run=FakeRun(), log=lambda line: None)
    complete = json.loads((tmp_path / "study" / "report.json").read_text())
    weights = sorted((tmp_path / "study" / "runs").glob("*/seed*/" + WEIGHTS_FILE))
    assert len(weights) == 9
    for path in weights:
        path.unlink()
    run_study(study, train_runs=False, log=lambda line: None)  # --report-only: nothing to train, nothing loaded
    light = json.loads((tmp_path / "study" / "report.json").read_text())
    for before, after in zip(complete["configurations"], light["configurations"], strict=True):
        assert after["delta_mtl"] == before["delta_mtl"] and after["metrics"] == before["metrics"]
        assert (after["parameters"], after["flops_per_image"]) == (before["parameters"], before["flops_per_image"])
        assert after["latency_ms"] > 0
    assert not any((tmp_path / "study" / "runs").glob("*/seed*/" + WEIGHTS_FILE))  # none written back


class CalibratingFakeRun(FakeRun):
    """As FakeRun, but each run's package config also holds something the run chose after training
    (as the people task's calibrated score threshold): the same network, another package config."""

    def __call__(self, spec: RunSpec) -> RunOutcome:
        outcome = super().__call__(spec)
        document = json.loads((spec.out / "onepass.json").read_text())
        document["model"]["mean"] = [0.4 + 0.01 * len(self.calls), 0.456, 0.406]
        (spec.out / "onepass.json").write_text(json.dumps(document))
        return outcome


def test_runs_of_one_network_are_timed_once_and_the_base_is_the_base_configuration(tiny_data, tmp_path):
    values = study_values(
        tiny_data, tmp_path / "study", configurations=[{"name": "shared-fpn"}, {"name": "hps", "architecture": "hps"}]
    )
    values["configurations"].append({"name": "shared-fpn-lr", "lr": 0.01})
    study = parse_study(values)
    FAKE["shared-fpn-lr"] = FAKE["shared-fpn"]
    try:
        run_study(study, run=CalibratingFakeRun(), log=lambda line: None)
    finally:
        del FAKE["shared-fpn-lr"]
    document = json.loads((tmp_path / "study" / "report.json").read_text())
    assert document["latency_budget"]["model"] == "shared-fpn"
    assert document["latency_options"]["timed_as"]["shared-fpn-lr"] == "shared-fpn"


def test_an_interim_report_covers_the_runs_finished_so_far_and_says_what_it_leaves_out(tiny_data, tmp_path):
    values = study_values(
        tiny_data, tmp_path / "study", configurations=[{"name": "shared-fpn"}, {"name": "hps", "architecture": "hps"}]
    )
    study = parse_study(values)
    fake = FakeRun()
    specs = study.runs()  # seed by seed: single-semseg, single-depth, shared-fpn, hps, then seed 1...
    with pytest.raises(StudyError, match="--interim: single-depth has no finished run"):
        fake(specs[0])
        write_interim_report(study, log=lambda line: None)
    for spec in specs[1:3] + specs[4:8]:  # hps of seed 0 is missing, and every run of seed 2
        fake(spec)
    report = write_interim_report(study, command="onepass study --interim", log=lambda line: None)
    assert report == tmp_path / "study" / "interim" / "report.md"
    document = json.loads(report.with_suffix(".json").read_text())
    assert document["interim"] == {"runs_finished": 7, "runs": 12, "left_out": []}
    entries = {e["name"]: e for e in document["configurations"]}
    assert entries["shared-fpn"]["seeds"] == [0, 1] and entries["hps"]["seeds"] == [1]
    # the baselines' means are over the seeds finished: B_miou = mean(0.50, 0.51); seed s of shared-fpn
    expected = {str(s): ((0.55 + 0.01 * s) / 0.505 - 1 + 0.1) / 2 * 100 for s in (0, 1)}
    assert entries["shared-fpn"]["delta_mtl"]["per_seed"] == pytest.approx(expected)
    assert entries["hps"]["latency_ms"] > 0 and (report.parent / "plots" / "delta_mtl.png").is_file()
    text = report.read_text()
    assert "**Interim report: 7 of 12 runs finished.**" in text and "left out" not in text
    assert not (tmp_path / "study" / "report.md").exists()  # the study's own report is not written

    (tmp_path / "study" / "runs" / "hps" / "seed1" / METRICS_FILE).unlink()
    write_interim_report(study, log=lambda line: None)
    text = report.read_text()
    assert "6 of 12 runs finished" in text and "left out, with no finished run yet: hps" in text
    assert "hps" not in {e["name"] for e in json.loads(report.with_suffix(".json").read_text())["configurations"]}


def test_report_only_refuses_while_runs_are_unfinished(tiny_data, tmp_path):
    study = parse_study(study_values(tiny_data, tmp_path / "study"))
    with pytest.raises(
        StudyError, match=r"--report-only: 9 of 9 runs are not finished \(the first: .*single-semseg/seed0\)"
    ):
        run_study(study, train_runs=False, run=FakeRun(), log=lambda line: None)


def test_a_crashed_run_resumes_from_its_checkpoint_and_a_changed_config_is_refused(tiny_data, tmp_path):
    study = parse_study(study_values(tiny_data, tmp_path / "study"))
    spec = next(r for r in study.runs() if r.configuration == "shared-fpn")
    assert train(spec.config, progress=False, stop_after=1) is None  # "killed" after its first step
    assert not is_finished(spec)
    outcome = run_one(spec)
    assert outcome.status == "resumed" and is_finished(spec)
    assert open_package(spec.out).training["steps"] == 2
    assert run_one(spec).status == "skipped"

    changed = parse_study(study_values(tiny_data, tmp_path / "study", base={**study.base, "lr": 0.01}))
    spec_changed = next(r for r in changed.runs() if r.configuration == "shared-fpn")
    with pytest.raises(
        StudyError, match=r"seed0: finished with lr 0.002 \(the study now says 0.01\); delete that run folder"
    ):
        is_finished(spec_changed)


def test_a_finished_run_from_before_a_new_training_option_still_counts_as_finished(tiny_data, tmp_path):
    study = parse_study(study_values(tiny_data, tmp_path / "study"))
    spec = study.runs()[0]
    FakeRun()(spec)
    config_file = spec.out / "onepass.json"
    document = json.loads(config_file.read_text())
    del document["training"]["config"]["val_every"]  # as a run trained before the option was added
    config_file.write_text(json.dumps(document))
    assert is_finished(spec)
    document["training"]["config"]["val_every"] = 3  # trained with another value: not this study's run
    config_file.write_text(json.dumps(document))
    with pytest.raises(StudyError, match=r"finished with val_every 3 \(the study now says 1\)"):
        is_finished(spec)
    document["training"]["config"].update(val_every=1, retired_option=True)  # an option onepass no longer has
    config_file.write_text(json.dumps(document))
    assert is_finished(spec)  # the options it still has are the study's
    document["training"]["config"]["lr"] = 0.5
    config_file.write_text(json.dumps(document))
    with pytest.raises(StudyError, match=r"finished with lr 0.5"):
        is_finished(spec)


def test_a_run_that_died_before_its_first_checkpoint_starts_again(tiny_data, tmp_path):
    study = parse_study(study_values(tiny_data, tmp_path / "study"))
    spec = next(r for r in study.runs() if r.configuration == "single-depth")
    (spec.out / "train").mkdir(parents=True)
    (spec.out / "train" / "log.jsonl").write_text('{"epoch": 0, "step": 99, "weights": {}}\n')  # a stale log
    assert run_one(spec).status == "trained"
    assert [json.loads(line)["step"] for line in (spec.out / "train" / "log.jsonl").read_text().splitlines()] == [2]
