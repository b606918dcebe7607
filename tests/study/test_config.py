"""The study config: every mistake refused before any run, naming the file, the configuration and the
field; the grid (configurations x seeds, the derived single-task baselines, the balancer registry)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from onepass.study.config import MIN_SEEDS, load_study, parse_study
from onepass.study.errors import StudyError
from onepass.train.balancing import BALANCERS
from tests.study.conftest import study_values

REPOSITORY = Path(__file__).resolve().parents[2]


def _configuration(**fields):
    return {"configurations": [{"name": "mine", **fields}]}


def _base(**fields):
    def change(values):
        values["base"].update(fields)

    return change


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "onepass-studdy"}, "must start with format: onepass-study and version: 1"),
        ({"configuration": []}, "unknown key 'configuration'; did you mean 'configurations'?"),
        ({"seeds": [0, 1]}, f"seeds: needs at least {MIN_SEEDS} seeds for a mean ± std, got 2"),
        ({"seeds": [0, 0, 1]}, "seeds: must be a list of distinct integers"),
        ({"data": {"synth": {"train": 8}}}, "data.synth.val: missing"),
        ({"data": {"synth": {"train": 8, "val": 4, "size": [8, 8]}}}, "data.synth.size: must be [H, W], each >= 16"),
        ({"report": {"latency_budget": 0}}, "report.latency_budget: must be a factor > 0"),
        ({"latency": {"repeats": 0}}, "latency.repeats: must be an integer >= 1"),
        (
            _base(lr="2e-3"),
            "base.lr: must be float, got '2e-3' (YAML reads 2e-3 as text: write it with a dot, e.g. 0.002)",
        ),
        (_base(out="elsewhere"), "base.out: set by the study for each run"),
        (_base(ecnoder="resnet18"), "base: unknown training option 'ecnoder'; did you mean 'encoder'?"),
        (
            _configuration(steps=10),
            "configuration 'mine'.steps: the training budget is the same for every run: set steps in base",
        ),
        (_configuration(batch_size=2), "configuration 'mine'.batch_size: the training budget is the same"),
        (_configuration(seed=3), "configuration 'mine'.seed: set by the study"),
        (
            _configuration(balancr="dwa"),
            "configuration 'mine': unknown training option 'balancr'; did you mean 'balancer'?",
        ),
        (
            _configuration(balancer="gradnrom"),
            "configuration 'mine': unknown balancer 'gradnrom'; did you mean 'gradnorm'?",
        ),
        (
            _configuration(balancer="gradnorm", balancer_options={"alfa": 0.5}),
            "configuration 'mine': balancer_options: balancer 'gradnorm' has no option(s) ['alfa']",
        ),
        (
            _configuration(balancer="gradnorm", balancer_options={"alpha": -1}),
            "configuration 'mine'.balancer_options: gradnorm balancer: alpha must be >= 0",
        ),
        (_configuration(lr_tasks={"normals": 0.01}), "configuration 'mine': lr_tasks names ['normals']"),
        (_configuration(lr_tasks={"depth": "fast"}), "configuration 'mine'.lr_tasks: must be dict[str, float]"),
        (_configuration(tasks=["semseg", "normals"]), "configuration 'mine'.tasks: must be some of the base tasks"),
        (_configuration(architecture="hsp"), "configuration 'mine': unknown architecture 'hsp'; did you mean 'hps'?"),
        ({"configurations": [{"name": "single-depth"}]}, "names starting 'single-' are the baselines'"),
        ({"configurations": [{"name": "a b"}]}, "configurations[0].name: must be a folder name"),
        ({"configurations": [{"name": "a"}, {"name": "a"}]}, "names must be unique; ['a'] appear more than once"),
        ({"single_task": {"steps": 5}}, "single_task.steps: the training budget is the same for every run"),
        ({"single_task": {"tasks": ["depth"]}}, "single_task.tasks: a single-task baseline's task is its own"),
        ({"single_task": {"balancer": "nope"}}, "configuration 'single-semseg': unknown balancer 'nope'"),
        (
            {"configurations": [{"other_balancers": {"balancer": "dwa"}}]},
            "configurations[0].other_balancers: sets the balancer itself",
        ),
    ],
)
def test_a_wrong_config_is_refused_naming_the_file_configuration_and_field(tiny_data, tmp_path, changes, message):
    values = study_values(tiny_data, tmp_path / "study")
    if callable(changes):
        changes(values)
    else:
        values.update(copy.deepcopy(changes))
    with pytest.raises(StudyError) as caught:
        parse_study(values, "my-study.yaml")
    text = str(caught.value)
    assert text.startswith("my-study.yaml: ") and message in text, text


def test_the_grid_is_configurations_x_seeds_with_one_single_task_baseline_per_task(tiny_data, tmp_path):
    values = study_values(
        tiny_data,
        tmp_path / "study",
        configurations=[
            {"name": "shared-fpn"},
            {"name": "hps-gradnorm", "architecture": "hps", "balancer": "gradnorm", "balancer_options": {"alpha": 0.5}},
            {"name": "fast-depth", "lr_tasks": {"depth": 0.01}},
        ],
        single_task={"balancer": "fixed", "lr": 0.001},
    )
    study = parse_study(values)
    names = ["single-semseg", "single-depth", "shared-fpn", "hps-gradnorm", "fast-depth"]
    assert [c.name for c in study.all_configurations()] == names
    runs = study.runs()
    assert [(r.configuration, r.seed) for r in runs] == [(n, s) for s in (0, 1, 2) for n in names]  # seed by seed
    for run in runs:
        config = run.config
        assert run.out == tmp_path / "study" / "runs" / run.configuration / f"seed{run.seed}"
        assert (config.run.out, config.run.seed, config.run.name) == (
            str(run.out),
            run.seed,
            f"{run.configuration}-seed{run.seed}",
        )
        assert (config.data.path, config.data.val_path) == tuple(str(p) for p in tiny_data)
        assert (config.run.steps, config.optimizer.batch_size, config.model.encoder) == (
            2,
            4,
            "test_efficientnet",
        )  # one budget
    by_name = {r.configuration: r.config for r in runs if r.seed == 0}
    assert by_name["single-semseg"].model.tasks == ("semseg",) and by_name["single-depth"].model.tasks == ("depth",)
    assert (
        by_name["single-depth"].optimizer.lr == 0.001 and by_name["shared-fpn"].optimizer.lr == 0.002
    )  # single_task overrides only
    assert by_name["hps-gradnorm"].model.architecture == "hps" and by_name["hps-gradnorm"].balancer.options == {
        "alpha": 0.5
    }
    assert by_name["fast-depth"].optimizer.lr_tasks == {"depth": 0.01} and by_name["fast-depth"].model.tasks == (
        "semseg",
        "depth",
    )


def test_task_options_reach_every_run_that_has_the_task(tiny_data, tmp_path):
    """A task written as a mapping in base (or in a configuration's tasks), and base's task_options:
    each run gets the options of its own tasks, a configuration's over base's, per option."""
    base = {**study_values(tiny_data, tmp_path)["base"], "task_options": {"people": {"score_threshold": 0.4}}}
    base["tasks"] = ["semseg", "depth", {"type": "people", "nms_iou": 0.5}]
    values = study_values(
        tiny_data,
        tmp_path / "study",
        base=base,
        configurations=[
            {"name": "shared-fpn"},
            {"name": "loose-nms", "tasks": ["depth", {"type": "people", "nms_iou": 0.7}]},
        ],
    )
    study = parse_study(values)
    assert study.tasks == ("semseg", "depth", "people")
    by_name = {r.configuration: r.config.model for r in study.runs() if r.seed == 0}
    assert set(by_name) == {"single-semseg", "single-depth", "single-people", "shared-fpn", "loose-nms"}
    assert by_name["single-people"].task_options == {"people": {"score_threshold": 0.4, "nms_iou": 0.5}}
    assert by_name["shared-fpn"].task_options == by_name["single-people"].task_options
    assert by_name["single-semseg"].task_options == {} == by_name["single-depth"].task_options
    assert by_name["loose-nms"].tasks == ("depth", "people")
    assert by_name["loose-nms"].task_options == {"people": {"score_threshold": 0.4, "nms_iou": 0.7}}
    values["base"]["task_options"]["people"]["nms_iou"] = 0.6  # given both ways in base
    with pytest.raises(StudyError, match="base: tasks: .*nms_iou"):
        parse_study(values)


def test_other_balancers_expands_over_the_registry(tiny_data, tmp_path):
    """One configuration per registered balancer that no configuration names (the base's balancer counts
    for a configuration that sets none), in the entry's place, named after the balancer."""
    values = study_values(
        tiny_data,
        tmp_path / "study",
        configurations=[
            {"name": "equal"},  # the base's balancer: fixed
            {"other_balancers": {"architecture": "hps"}},
            {"name": "gn", "balancer": "gradnorm"},
        ],
    )
    study = parse_study(values)
    others = [b for b in BALANCERS if b not in ("fixed", "gradnorm")]
    assert [c.name for c in study.configurations] == ["equal", *others, "gn"]
    for name in others:
        config = study.train_config(next(c for c in study.configurations if c.name == name), 0)
        assert (config.balancer.name, config.model.architecture, config.balancer.options) == (name, "hps", {})


def test_the_repository_configs_validate_and_study_every_registered_balancer():
    full = load_study(REPOSITORY / "configs" / "study.yaml")
    quick = load_study(REPOSITORY / "configs" / "study-quick.yaml")
    for study in (full, quick):
        assert len(study.seeds) >= MIN_SEEDS
        assert [c.single_task for c in study.baselines()] == list(study.tasks)
    configs = [full.train_config(c, 0) for c in full.configurations]
    assert {c.balancer.name for c in configs} == set(BALANCERS)  # the new balancers join through the registry
    assert {c.model.architecture for c in configs} >= {"shared-fpn", "hps", "padnet", "mtinet"}
    gradnorm = sorted(c.balancer.options.get("alpha") for c in configs if c.balancer.name == "gradnorm")
    assert gradnorm == [0.5, 1.5] and any(c.optimizer.lr_tasks for c in configs)


def test_the_deeper_studies_change_one_thing_from_the_quick_preset():
    """docs/study.md, "One level deeper": study-quick-deeper.yaml shares the quick study's folder, data,
    seeds and base, so its baselines are the quick study's own runs (the same training configs);
    study-quick-lr.yaml changes only the learning rate, of every run, the baselines included."""
    quick = load_study(REPOSITORY / "configs" / "study-quick.yaml")
    deeper = load_study(REPOSITORY / "configs" / "study-quick-deeper.yaml")
    with_lr = load_study(REPOSITORY / "configs" / "study-quick-lr.yaml")
    assert (deeper.out, deeper.data, deeper.seeds, deeper.base) == (quick.out, quick.data, quick.seeds, quick.base)
    baselines = [quick.train_config(c, 0) for c in quick.baselines()]
    assert [deeper.train_config(c, 0) for c in deeper.baselines()] == baselines
    assert with_lr.out != quick.out and {**with_lr.base, "lr": quick.base["lr"]} == quick.base
    assert {c.optimizer.lr for c in (with_lr.train_config(b, 0) for b in with_lr.baselines())} == {0.004}
    heads = load_study(REPOSITORY / "configs" / "study-quick-heads.yaml")  # docs/study.md, "Lighter heads"
    assert (heads.out, heads.data, heads.seeds, heads.base) == (quick.out, quick.data, quick.seeds, quick.base)
    assert [heads.train_config(c, 0) for c in heads.baselines()] == baselines
    models = {c.name: heads.train_config(c, 0).model for c in heads.configurations}
    assert {name: (m.decoder_channels, m.head_convolution) for name, m in models.items()} == {
        "shared-fpn": (32, "full"),
        "separable-heads": (32, "separable"),
        "decoder-64": (64, "full"),
        "decoder-64-separable-heads": (64, "separable"),
    }
    stride = load_study(REPOSITORY / "configs" / "study-quick-stride.yaml")  # docs/study.md, "Lighter heads"
    assert (stride.out, stride.data, stride.seeds, stride.base) == (quick.out, quick.data, quick.seeds, quick.base)
    assert [stride.train_config(c, 0) for c in stride.baselines()] == baselines
    models = {c.name: stride.train_config(c, 0).model for c in stride.configurations}
    assert {name: (m.decoder_channels, m.head_convolution, m.head_stride) for name, m in models.items()} == {
        "shared-fpn": (32, "full", 1),
        "decoder-64": (64, "full", 1),
        "decoder-64-head-stride-2": (64, "full", 2),
        "decoder-64-separable-head-stride-2": (64, "separable", 2),
    }
    assert models["decoder-64"] == {c.name: heads.train_config(c, 0).model for c in heads.configurations}["decoder-64"]


def test_load_study_reads_yaml_and_out_overrides(tiny_data, tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study_values(tiny_data, tmp_path / "from-file")))
    assert load_study(path).out == tmp_path / "from-file"
    assert load_study(path, str(tmp_path / "given")).out == tmp_path / "given"
    path.write_text("format: [unclosed\n")
    with pytest.raises(StudyError, match="study.yaml: cannot parse"):
        load_study(path)
    with pytest.raises(StudyError, match="study config not found"):
        load_study(tmp_path / "missing.yaml")
