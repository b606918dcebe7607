"""Pretrained encoder weights from a local file (models/encoder.py). No real ImageNet checkpoint can be
had here as a plain file (none found among PyPI's packages), so the files are saved from timm and
torchvision models with random weights: what is checked is that the loaded encoder computes exactly
the source model's features, whatever the weights."""

from __future__ import annotations

import argparse

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file

from onepass.data.files import file_sha256
from onepass.models.encoder import TORCHVISION_RENAMES, Encoder, PretrainedFileError

X = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))


def save_safetensors(state: dict, path) -> str:
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    return str(path)


def randomised(model: torch.nn.Module) -> torch.nn.Module:
    """BatchNorm statistics away from (0, 1), so a BN layer left unloaded would show in the features."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("name", ["test_efficientnet", "resnet18"])  # the EfficientNet/MobileNet family, ResNets
def test_a_timm_checkpoint_gives_the_source_models_features(tmp_path, name):
    torch.manual_seed(1)
    source = randomised(timm.create_model(name))
    path = save_safetensors(source.state_dict(), tmp_path / "model.safetensors")
    encoder = Encoder(name).eval()
    loaded = encoder.load_pretrained_file(path)
    with torch.no_grad():
        expected = source.forward_intermediates(X, intermediates_only=True)[-len(encoder.channels) :]
        features = encoder(X)
    for feature, reference in zip(features, expected, strict=True):
        torch.testing.assert_close(feature, reference, rtol=0, atol=0)
    assert (loaded.layout, loaded.sha256) == ("timm", file_sha256(tmp_path / "model.safetensors"))
    assert loaded.tensors == len(encoder.backbone.state_dict())


def torchvision_features(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The stride 4, 8, 16 and 32 maps of a torchvision ResNet or MobileNetV2, from its own modules."""
    if isinstance(model, torchvision.models.ResNet):
        y = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        maps = []
        for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
            y = layer(y)
            maps.append(y)
        return maps
    outputs = []
    for block in model.features:
        x = block(x)
        outputs.append(x)
    return [outputs[i] for i in (3, 6, 13, 17)]  # the last block of each stride (features.18 is the head)


@pytest.mark.parametrize(("timm_name", "build"), [("resnet18", "resnet18"), ("mobilenetv2_100", "mobilenet_v2")])
def test_a_torchvision_state_dict_is_renamed_to_timms(tmp_path, timm_name, build):
    torch.manual_seed(2)
    source = randomised(getattr(torchvision.models, build)())
    path = tmp_path / f"{build}.pth"
    torch.save({"model": source.state_dict(), "epoch": 90}, path)  # torchvision's reference scripts' checkpoint
    encoder = Encoder(timm_name).eval()
    loaded = encoder.load_pretrained_file(path)
    with torch.no_grad():
        for feature, reference in zip(encoder(X), torchvision_features(source, X), strict=True):
            torch.testing.assert_close(feature, reference, rtol=0, atol=0)
    assert loaded.layout == ("timm" if timm_name == "resnet18" else "torchvision")  # ResNets share timm's names


def test_torchvisions_resnet50_has_timms_names_and_shapes():
    """The NYUv2 preset's encoder: torchvision's ResNet-50 needs no renaming."""
    ours = {k: tuple(v.shape) for k, v in timm.create_model("resnet50").state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in torchvision.models.resnet50().state_dict().items()}
    assert ours == theirs and "resnet50" in TORCHVISION_RENAMES


def test_features_only_and_package_layouts(tmp_path):
    torch.manual_seed(3)
    source = Encoder("test_efficientnet")
    features = save_safetensors(source.backbone.state_dict(), tmp_path / "features.safetensors")
    package = {f"encoder.backbone.{k}": v for k, v in source.backbone.state_dict().items()}
    package["heads.dense_heads.depth.0.weight"] = torch.zeros(3)  # a package's other tensors stay behind
    package_file = save_safetensors(package, tmp_path / "weights.safetensors")
    torch.save({f"module.{k}": v for k, v in source.backbone.state_dict().items()}, tmp_path / "ddp.pt")
    for path, layout in (
        (features, "timm-features"),
        (package_file, "onepass-package"),
        (tmp_path / "ddp.pt", "timm-features"),
    ):
        encoder = Encoder("test_efficientnet")
        assert encoder.load_pretrained_file(path).layout == layout
        for mine, theirs in zip(
            encoder.backbone.state_dict().values(), source.backbone.state_dict().values(), strict=True
        ):
            assert torch.equal(mine, theirs)


def test_loading_replaces_the_parameters_in_place(tmp_path):
    source = timm.create_model("test_efficientnet")
    path = save_safetensors(source.state_dict(), tmp_path / "m.safetensors")
    encoder = Encoder("test_efficientnet")
    before = [id(p) for p in encoder.parameters()]
    encoder.load_pretrained_file(path)
    assert [id(p) for p in encoder.parameters()] == before  # an optimiser built earlier still trains them


def test_a_file_for_another_architecture_lists_missing_and_unexpected(tmp_path):
    path = save_safetensors(timm.create_model("resnet18").state_dict(), tmp_path / "resnet18.safetensors")
    with pytest.raises(PretrainedFileError) as caught:
        Encoder("test_efficientnet").load_pretrained_file(path)
    message = str(caught.value)
    assert "does not fit encoder 'test_efficientnet'" in message
    assert "missing" in message and "conv_stem.weight" in message
    assert "unexpected 117: conv1.weight" in message


def test_a_file_lacking_what_the_backbone_uses_is_refused_by_name(tmp_path):
    state = timm.create_model("test_efficientnet").state_dict()
    del state["blocks.0.0.conv.weight"]
    path = save_safetensors(state, tmp_path / "partial.safetensors")
    with pytest.raises(
        PretrainedFileError, match=r"the encoder uses 1 of the missing ones: blocks\.0\.0\.conv\.weight"
    ):
        Encoder("test_efficientnet").load_pretrained_file(path)


@pytest.mark.parametrize(
    ("dropped", "layout"),
    [
        (("classifier",), "timm"),
        (("conv_head", "classifier"), "timm"),
        (("conv_head", "bn2", "classifier"), "timm-features"),
    ],
)
def test_the_head_the_backbone_does_not_use_may_be_absent(tmp_path, dropped, layout):
    source = timm.create_model("test_efficientnet").eval()
    state = {k: v for k, v in source.state_dict().items() if not k.startswith(dropped)}
    encoder = Encoder("test_efficientnet").eval()
    assert encoder.load_pretrained_file(save_safetensors(state, tmp_path / "no-head.safetensors")).layout == layout
    with torch.no_grad():
        torch.testing.assert_close(encoder(X)[-1], source.forward_intermediates(X, intermediates_only=True)[-1])


def test_a_wider_model_is_refused_by_shape(tmp_path):
    state = timm.create_model("resnet18").state_dict()
    state["layer1.0.conv1.weight"] = torch.zeros(32, 64, 3, 3)
    with pytest.raises(
        PretrainedFileError, match=r"layer1\.0\.conv1\.weight \[32, 64, 3, 3\] \(encoder: \[64, 64, 3, 3\]\)"
    ):
        Encoder("resnet18").load_pretrained_file(save_safetensors(state, tmp_path / "wide.safetensors"))


def test_an_arbitrary_pickle_is_never_loaded(tmp_path):
    """timm's train.py checkpoints carry an argparse.Namespace: refused, with how to save just the weights."""
    state = timm.create_model("test_efficientnet").state_dict()
    torch.save({"state_dict": state, "args": argparse.Namespace(lr=0.1)}, tmp_path / "train.pth.tar")
    with pytest.raises(PretrainedFileError, match=r"weights_only=True .*torch\.save\(model\.state_dict\(\)"):
        Encoder("test_efficientnet").load_pretrained_file(tmp_path / "train.pth.tar")


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "not a safetensors file, nor a torch file"), (b"\x00" * 64, "not a safetensors file, nor a torch file")],
)
def test_unreadable_files_are_named(tmp_path, content, message):
    path = tmp_path / "weights.bin"
    path.write_bytes(content)
    with pytest.raises(PretrainedFileError, match=message):
        Encoder("test_efficientnet").load_pretrained_file(path)
    with pytest.raises(PretrainedFileError, match="not found"):
        Encoder("test_efficientnet").load_pretrained_file(tmp_path / "absent.safetensors")


def test_a_file_of_something_else_says_what_it_holds(tmp_path):
    torch.save({"epoch": 3, "metrics": {"top1": 0.7}}, tmp_path / "log.pt")
    with pytest.raises(PretrainedFileError, match=r"holds a dict with keys \['epoch', 'metrics'\], not a state dict"):
        Encoder("test_efficientnet").load_pretrained_file(tmp_path / "log.pt")
