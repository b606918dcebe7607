"""Every architecture with every task set: output contract, parameter partition, single-task models."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from onepass.errors import ConfigError
from onepass.models import ARCHITECTURES, InferenceGraph, ModelConfig, MultiTaskModel
from onepass.models.architectures import HEAD_CONVOLUTIONS, architecture_class
from onepass.models.tasks import DepthTask
from tests.tiny import TINY_ENCODER, all_tasks, every_task_type, tiny_config


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
@pytest.mark.parametrize("encoder", [TINY_ENCODER, "test_convnext"])
def test_forward_returns_a_dict_at_input_resolution(architecture, encoder):
    model = MultiTaskModel(tiny_config(architecture, tasks=every_task_type(), encoder=encoder)).eval()
    outputs = model(torch.randn(2, 3, 64, 96))
    assert set(outputs) == {t.name for t in every_task_type()}
    for task in model.config.tasks:
        expected = {"map": (2, task.out_channels, 64, 96), "image": (2, task.out_channels)}.get(
            task.kind,
            (2, task.out_channels, 16, 24),  # instance maps stay at the decoder's stride 4
        )
        assert tuple(outputs[task.name].shape) == expected


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_single_task_model_is_the_same_code(architecture):
    model = MultiTaskModel(tiny_config(architecture, tasks=(DepthTask(),))).eval()  # training adds padnet's initial
    outputs = model(torch.randn(1, 3, 64, 96))
    assert list(outputs) == ["depth"]


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_parameters_split_into_shared_and_per_task(architecture):
    model = MultiTaskModel(tiny_config(architecture))
    groups = [model.shared_parameters()] + [model.task_parameters(t.name) for t in model.config.tasks]
    ids = [id(p) for group in groups for p in group]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert all(groups), "every group has parameters"
    last = model.last_shared_parameters()
    assert last and all(any(p is q for q in model.shared_parameters()) for p in last)


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_every_task_gradient_reaches_the_last_shared_layer(architecture):
    model = MultiTaskModel(tiny_config(architecture))
    outputs = model(torch.randn(2, 3, 64, 96))
    (weight,) = model.last_shared_parameters()
    for name, value in outputs.items():
        (grad,) = torch.autograd.grad(value.sum(), weight, retain_graph=True)
        assert grad.abs().sum() > 0, name


def test_inference_graph_normalises_and_postprocesses():
    model = MultiTaskModel(tiny_config()).eval()
    graph = InferenceGraph(model).eval()
    image = torch.randint(0, 256, (2, 64, 96, 3), dtype=torch.uint8)
    outputs = graph(image)
    assert outputs["semseg"].dtype == torch.uint8 and outputs["semseg"].shape == (2, 64, 96)
    assert (outputs["depth"] > 0).all()
    torch.testing.assert_close(outputs["normals"].norm(dim=-1), torch.ones(2, 64, 96))
    torch.testing.assert_close(outputs["attr_people"].sum(dim=1), torch.ones(2))
    mean = torch.tensor(model.config.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.config.std).view(1, 3, 1, 1)
    raw = model((image.permute(0, 3, 1, 2).float() / 255 - mean) / std)
    torch.testing.assert_close(outputs["depth"], torch.nn.functional.softplus(raw["depth"])[:, 0])


def test_config_json_round_trip_and_validation():
    config = tiny_config("hps")
    assert ModelConfig.from_json(config.to_json()) == config
    with pytest.raises(ConfigError, match="did you mean 'hps'"):
        tiny_config("hsp")
    with pytest.raises(ConfigError, match="multiples of 32"):
        ModelConfig(tasks=all_tasks(), input_size=(100, 96))
    with pytest.raises(ConfigError, match="unknown timm encoder"):
        MultiTaskModel(tiny_config(encoder="resnet_does_not_exist"))


def test_padnet_supervises_initial_predictions_only_in_training():
    from onepass.models.architectures import initial_prediction_key

    model = MultiTaskModel(tiny_config("padnet", tasks=every_task_type()))
    decoder_fed = [t.name for t in model.config.tasks if t.head_input == "decoder"]
    training = model.train()(torch.randn(2, 3, 64, 96))
    assert {initial_prediction_key(n) for n in decoder_fed} <= set(training)
    for name in decoder_fed:  # the initial prediction is the task's own output, resized the same way
        assert training[initial_prediction_key(name)].shape == training[name].shape
    evaluation = model.eval()(torch.randn(2, 3, 64, 96))
    assert set(evaluation) == {t.name for t in model.config.tasks}
    # each task's final head reads messages from every other decoder-fed task's features
    messages = model.heads.decoders["semseg"]["messages"]
    assert set(messages) == set(decoder_fed) - {"semseg"}


def test_mtinet_distils_at_every_scale_and_supervises_each():
    from onepass.models.architectures import initial_prediction_key, initial_predictions

    model = MultiTaskModel(tiny_config("mtinet", tasks=every_task_type()))
    scales = len(model.encoder.channels) - 1  # distilled at strides 8, 16, 32; aggregated at 4
    maps = [t.name for t in model.config.tasks if t.kind == "map"]
    instances = [t.name for t in model.config.tasks if t.kind == "instances"]
    training = model.train()(torch.randn(2, 3, 64, 96))
    for name in maps:  # one initial prediction per scale, each resized to the input like the final one
        keys = {initial_prediction_key(name, s) for s in range(scales)}
        assert keys <= set(training) and len(initial_predictions(training, name)) == scales
        assert all(training[key].shape == training[name].shape for key in keys)
    for name in instances:  # centres and offsets are in the decoder's cells: supervised once, there
        assert [v.shape for v in initial_predictions(training, name)] == [training[name].shape]
    assert set(model.eval()(torch.randn(2, 3, 64, 96))) == {t.name for t in model.config.tasks}
    decoder_fed = {t.name for t in model.config.tasks if t.head_input == "decoder"}
    semseg = model.heads.decoders["semseg"]
    assert len(semseg["messages"]) == scales and all(set(m) == decoder_fed - {"semseg"} for m in semseg["messages"])
    assert len(model.heads.propagation) == len(semseg["propagation"]) == scales - 1  # coarse to fine
    with pytest.raises(ConfigError, match="at least two feature levels"):
        architecture_class("mtinet")([24], every_task_type(), 16)


def _full_convolutions(module: nn.Module) -> list[str]:
    return [
        name
        for name, m in module.named_modules()
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.groups == 1 and m.in_channels > 1
    ]


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_separable_heads_factorise_every_head_convolution_and_nothing_else(architecture):
    torch.manual_seed(0)
    full = MultiTaskModel(tiny_config(architecture, tasks=every_task_type()))
    config = dataclasses.replace(full.config, head_convolution="separable")
    separable = MultiTaskModel(config).eval()
    heads = [separable.heads.dense_heads, separable.heads.image_heads]
    assert _full_convolutions(full.heads.dense_heads) and not any(_full_convolutions(h) for h in heads)
    for head in heads:  # each 3x3 became depthwise 3x3 -> pointwise 1x1, as wide as before
        for block in (m for m in head.modules() if isinstance(m, nn.Sequential) and len(m) == 2):
            depthwise, pointwise = block
            if isinstance(depthwise, nn.Conv2d) and depthwise.groups > 1:
                assert depthwise.groups == depthwise.in_channels == depthwise.out_channels == pointwise.in_channels
                assert depthwise.kernel_size == (3, 3) and pointwise.kernel_size == (1, 1)
    shared = [n for n, _ in full.named_parameters() if not n.startswith(("heads.dense_heads", "heads.image_heads"))]
    assert shared == [
        n for n, _ in separable.named_parameters() if not n.startswith(("heads.dense_heads", "heads.image_heads"))
    ]
    assert sum(p.numel() for p in separable.parameters()) < sum(p.numel() for p in full.parameters())
    full_outputs, outputs = full.eval()(torch.randn(2, 3, 64, 96)), separable(torch.randn(2, 3, 64, 96))
    assert {k: v.shape for k, v in outputs.items()} == {k: v.shape for k, v in full_outputs.items()}


def test_head_convolution_is_saved_checked_and_full_for_older_packages():
    config = dataclasses.replace(tiny_config(), head_convolution="separable")
    assert ModelConfig.from_json(config.to_json()) == config
    older = tiny_config().to_json()
    del older["head_convolution"]  # packages saved before the option
    assert ModelConfig.from_json(older).head_convolution == "full"
    with pytest.raises(ConfigError, match="unknown head_convolution 'seperable'; did you mean 'separable'"):
        dataclasses.replace(tiny_config(), head_convolution="seperable")


def _head_strides(model: MultiTaskModel) -> dict[str, tuple[int, int]]:
    """Each final head's first 3x3 convolution's stride."""
    strides = {}
    for name, head in model.heads.dense_heads.items():
        first = next(m for m in head.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
        strides[name] = first.stride
    return strides


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
@pytest.mark.parametrize("head_convolution", HEAD_CONVOLUTIONS)
def test_head_stride_2_runs_the_map_heads_at_half_the_decoders_resolution(architecture, head_convolution):
    torch.manual_seed(0)
    config = tiny_config(architecture, tasks=every_task_type())
    config = dataclasses.replace(config, head_convolution=head_convolution)
    at_decoder = MultiTaskModel(config).eval()
    strided = MultiTaskModel(dataclasses.replace(config, head_stride=2)).eval()
    tasks = {t.name: t for t in config.tasks}
    assert _head_strides(strided) == {
        n: (2, 2) if tasks[n].head_may_stride else (1, 1) for n in strided.heads.dense_heads
    }
    assert set(_head_strides(at_decoder).values()) == {(1, 1)}
    assert any(tasks[n].head_may_stride for n in strided.heads.dense_heads)
    assert any(not tasks[n].head_may_stride for n in strided.heads.dense_heads)  # the people head
    # the same weights, by name and shape: only the convolution's stride differs
    strided.load_state_dict(at_decoder.state_dict())
    seen: dict[str, tuple[int, ...]] = {}
    hooks = [
        head.register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, tuple(out.shape[-2:])))
        for name, head in strided.heads.dense_heads.items()
    ]
    x = torch.randn(2, 3, 64, 96)
    outputs, reference = strided(x), at_decoder(x)
    for hook in hooks:
        hook.remove()
    decoder_cells = (64 // 4, 96 // 4)
    assert seen == {n: (8, 12) if tasks[n].head_may_stride else decoder_cells for n in seen}
    assert {k: v.shape for k, v in outputs.items()} == {k: v.shape for k, v in reference.items()}
    for name, value in outputs.items():  # heads that keep the decoder's stride answer as before
        if not tasks[name].head_may_stride:
            torch.testing.assert_close(value, reference[name])


def test_head_stride_is_saved_checked_and_1_for_older_packages():
    config = dataclasses.replace(tiny_config(), head_stride=2)
    assert ModelConfig.from_json(config.to_json()) == config
    older = tiny_config().to_json()
    del older["head_stride"]  # packages saved before the option
    assert ModelConfig.from_json(older).head_stride == 1
    with pytest.raises(ConfigError, match=r"head_stride must be one of \[1, 2\], got 4"):
        dataclasses.replace(tiny_config(), head_stride=4)
