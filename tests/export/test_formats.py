"""The export format registry (export/formats.py): each format's options are one frozen dataclass,
`onepass export` builds its flags from them and refuses an option the chosen format does not take,
and the README's table of formats is generated from the registry. Parametrised over the registry."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from onepass.cli import build_parser
from onepass.export.formats import (
    EXPORT_FORMATS,
    ExportError,
    ExportFormat,
    command_line_options,
    flag,
    flat_options,
    formats_table,
    option,
    register_format,
)
from onepass.export.onnx_format import OnnxOptions
from onepass.export.tensorrt_format import TensorRTOptions

README = Path(__file__).resolve().parents[2] / "README.md"


def _export_parser():
    commands = next(a for a in build_parser()._actions if a.dest == "command")
    return commands.choices["export"]


def test_the_readme_table_of_formats_is_the_registrys():
    assert formats_table() in README.read_text(), (
        "regenerate it: python -c 'from onepass.export.formats import formats_table; print(formats_table())'"
    )


@pytest.mark.parametrize("name", list(EXPORT_FORMATS))
def test_every_option_is_a_flag_that_says_its_format(name):
    actions = {a.dest: a for a in _export_parser()._actions}
    for entry in flat_options(EXPORT_FORMATS[name].options):  # a group's fields too (--int8-format)
        action = actions[entry.name]
        assert action.option_strings == [flag(entry.name)] and action.default is None  # None: not given
        assert re.search(rf"(^|; )[\w, ]*\b{name}\b[\w, ]*: ", action.help)
        assert entry.field.metadata["help"] in action.help


@pytest.mark.parametrize("name", list(EXPORT_FORMATS))
def test_an_option_of_another_format_is_refused_with_this_ones(name):
    chosen = EXPORT_FORMATS[name]
    others = [o for o in command_line_options() if o.name not in chosen.option_names()]
    assert others, "every format here lacks some other format's option"
    listed = ", ".join(flag(n) for n in chosen.option_names())
    for other in others:
        with pytest.raises(
            ExportError, match=rf"^{flag(other.name)} does not apply to --format {name} \(its options: {listed}\)$"
        ):
            chosen.make_options({other.name: True})


def test_options_not_given_keep_the_dataclass_defaults():
    assert EXPORT_FORMATS["tensorrt"].make_options({}) == TensorRTOptions(
        half=False, eval_data=None, max_batch=32, workspace=4.0, device=0
    )
    assert EXPORT_FORMATS["onnx"].make_options({"half": True}) == OnnxOptions(half=True)
    with pytest.raises(ExportError, match="--int8 needs --calib DIR"):
        EXPORT_FORMATS["onnx"].make_options({"int8": True})


def test_a_shared_flag_shows_each_formats_help_or_one_for_both():
    shown = {o.name: o.help for o in command_line_options()}
    assert (
        shown["half"]
        == "onnx: also model.fp16.onnx; tensorrt: an fp16 engine (built from model.fp16.onnx, exported first if missing)"
    )
    assert shown["eval_data"].startswith("onnx, tensorrt: labelled folder dataset")
    assert shown["max_batch"] == "tensorrt: largest batch (default 32)"


def test_a_format_declares_frozen_options_of_types_the_command_line_can_give(monkeypatch):
    @dataclasses.dataclass
    class Loose:
        half: bool = False

    with pytest.raises(TypeError, match="must be a frozen dataclass"):
        register_format("loose", "x", Loose)

    @dataclasses.dataclass(frozen=True)
    class Clashing:
        half: int = option(0, "a count where onnx has a switch")

    monkeypatch.setitem(EXPORT_FORMATS, "clashing", ExportFormat("clashing", "x", Clashing, lambda *a: None))
    with pytest.raises(TypeError, match="export option 'half' has different types in different formats"):
        command_line_options()
