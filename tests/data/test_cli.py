"""`onepass data`: synth, and the data commands other modules register."""

from __future__ import annotations

import sys
import types

import onepass.data.cli
from onepass.cli import main


def test_the_data_group_takes_registered_commands(monkeypatch, capsys):
    module = types.ModuleType("fake_convert")

    def add_parser(data_commands):
        convert = data_commands.add_parser("convert", help="a registered data command")
        convert.add_argument("--source", required=True)
        convert.set_defaults(run=lambda args: print(f"converted {args.source}") or 0)

    module.add_parser = add_parser
    monkeypatch.setitem(sys.modules, "fake_convert", module)
    monkeypatch.setattr(onepass.data.cli, "DATA_COMMANDS", ("fake_convert",))
    assert main(["data", "convert", "--source", "coco"]) == 0
    assert capsys.readouterr().out == "converted coco\n"
    assert main(["data", "--help"]) == 0
    out = capsys.readouterr().out
    assert "synth" in out and "convert" in out
    assert main(["data", "convret"]) == 2
    assert "did you mean 'convert'?" in capsys.readouterr().err
