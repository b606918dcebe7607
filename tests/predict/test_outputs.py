"""The output folder: settings, the lock, the table as commit record, resume after a cut-off write,
failed writes, and refused runs that leave nothing behind."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from onepass.predict.inputs import InputImage
from onepass.predict.outputs import OutputError, OutputFolder, OutputLayout, WriteError, table_columns, write_atomic

SETTINGS = {"model": {"name": "m", "version": "1"}, "tasks": ["semseg", "attributes"], "output_format": "png"}
COLUMNS = table_columns({"people": "string", "people_probability": "float64"})


def folder(root, settings=SETTINGS) -> OutputFolder:
    return OutputFolder(OutputLayout(root, ("semseg",), "png", False), settings, COLUMNS)


def row(key: str) -> dict:
    return {"image": key, "source": f"/in/{key}", "height": 4, "width": 5, "people": "1", "people_probability": "0.9"}


def finish(out, key: str) -> None:
    write_atomic(out / "semseg" / key.replace(".jpg", ".png"), b"png", out)


def test_an_image_is_done_with_its_row_and_all_its_files(tmp_path):
    images = [InputImage(k, f"/in/{k}") for k in ("a.jpg", "b.jpg", "c.jpg")]
    with folder(tmp_path) as out:
        finish(tmp_path, "a.jpg")
        finish(tmp_path, "b.jpg")
        out.add_rows([row("a.jpg")])
        out.add_rows([row("a.jpg")])  # a second report of a finished image adds nothing
        assert [i.key for i in out.pending(images)] == ["b.jpg", "c.jpg"]  # b has files but no row
    with folder(tmp_path) as out:
        assert out.finished == {"a.jpg"}
        (tmp_path / "semseg" / "a.png").unlink()
        assert [i.key for i in out.pending(images)] == ["a.jpg", "b.jpg", "c.jpg"]
        out.add_rows([row("a.jpg"), row("b.jpg")])  # a redone image does not get a second row
    lines = (tmp_path / "predictions.csv").read_text().splitlines()
    assert lines == [",".join(COLUMNS), "a.jpg,/in/a.jpg,4,5,1,0.9", "b.jpg,/in/b.jpg,4,5,1,0.9"]


def test_a_cut_off_last_line_is_dropped_on_resume(tmp_path):
    with folder(tmp_path) as out:
        out.add_rows([row("a.jpg")])
    with open(tmp_path / "predictions.csv", "a") as table:
        table.write("b.jpg,/in/b.jpg,4,")  # what a power cut mid-append could leave
    with folder(tmp_path) as out:
        assert out.finished == {"a.jpg"}
        out.add_rows([row("b.jpg")])
    assert (tmp_path / "predictions.csv").read_text().splitlines()[1:] == [
        "a.jpg,/in/a.jpg,4,5,1,0.9",
        "b.jpg,/in/b.jpg,4,5,1,0.9",
    ]


def test_other_settings_or_a_second_run_are_refused(tmp_path):
    with folder(tmp_path):
        (tmp_path / ".tmp" / "a.png.x1y2").write_bytes(b"being writ")  # the running run's temporary file
        with pytest.raises(OutputError, match="another onepass predict is writing here"):
            folder(tmp_path).__enter__()
        assert (tmp_path / ".tmp" / "a.png.x1y2").exists() and (tmp_path / ".lock").exists()  # left alone
    with pytest.raises(OutputError, match=r"tasks \['semseg', 'attributes'\], this run asks for \['semseg'\]"):
        folder(tmp_path, {**SETTINGS, "tasks": ["semseg"]}).__enter__()
    with folder(tmp_path):  # the refused attempts released the lock
        pass


def test_temporary_files_of_a_killed_run_are_removed(tmp_path):
    with folder(tmp_path):
        pass
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "a.png.x1y2").write_bytes(b"half a fi")
    with folder(tmp_path):
        assert list((tmp_path / ".tmp").iterdir()) == []
    assert not (tmp_path / ".tmp").exists()


def test_errors_list_only_this_runs_failures(tmp_path):
    with folder(tmp_path) as out:
        out.add_errors([{"image": "x.jpg", "source": "/in/x.jpg", "error": "not a readable image"}])
    assert (tmp_path / "errors.jsonl").read_text().count("\n") == 1
    with folder(tmp_path):
        pass
    assert (tmp_path / "errors.jsonl").read_text() == ""


def snapshot(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_run_refused_before_its_first_result_leaves_no_trace(tmp_path):
    new = tmp_path / "a" / "b" / "out"
    with pytest.raises(RuntimeError), folder(new):
        raise RuntimeError("the backend refused --precision")  # what run_job meets after entering
    assert not (tmp_path / "a").exists()  # nor the folders created above DIR

    out = tmp_path / "out"
    with folder(out) as run:
        run.add_rows([row("a.jpg")])
        run.add_errors([{"image": "x.jpg", "source": "/in/x.jpg", "error": "not a readable image"}])
    before = snapshot(out)
    assert set(before) == {"predict.json", "predictions.csv", "errors.jsonl"}  # the lock went with the run
    with pytest.raises(RuntimeError), folder(out):
        raise RuntimeError("refused")
    with pytest.raises(OutputError, match="this run asks for"):
        folder(out, {**SETTINGS, "output_format": "npz"}).__enter__()
    assert snapshot(out) == before  # errors.jsonl of the last real run is still there


def test_a_failed_write_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "semseg" / "a.png"
    with pytest.raises(WriteError, match=f"{target}: cannot write \\(No such file or directory\\)"):
        write_atomic(target, b"png", tmp_path / "removed")  # DIR (and its .tmp) removed under the run

    def disk_full(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(WriteError, match=f"{target}: cannot write \\(No space left on device\\)"):
        write_atomic(target, b"png", tmp_path)
    assert not target.exists() and [p.name for p in tmp_path.iterdir()] == ["semseg"]  # no half file anywhere


def test_records_keep_one_line_per_finished_image(tmp_path):
    """A task's JSONL line goes just before its image's row; a resumed run drops the lines of images
    it must redo (no row yet) and keeps the last line of each finished one."""
    import json

    layout = OutputLayout(tmp_path, ("semseg",), "png", False, record_tasks=("people",))
    images = [InputImage(k, f"/in/{k}") for k in ("a.jpg", "b.jpg")]
    with OutputFolder(layout, SETTINGS, COLUMNS) as out:
        finish(tmp_path, "a.jpg")
        out.add_rows([{**row("a.jpg"), "records": {"people": [{"box": [1, 2, 3, 4]}]}}])
    with open(tmp_path / "people.jsonl", "a") as handle:  # a killed run: b's line written, its row not
        handle.write(json.dumps({"image": "b.jpg", "people": []}) + "\n" + '{"image": "a.j')
    with OutputFolder(layout, SETTINGS, COLUMNS) as out:
        assert [i.key for i in out.pending(images)] == ["b.jpg"]
        finish(tmp_path, "b.jpg")
        out.add_rows([{**row("b.jpg"), "records": {"people": []}}])
    lines = [json.loads(line) for line in (tmp_path / "people.jsonl").read_text().splitlines()]
    assert lines == [{"image": "a.jpg", "people": [{"box": [1, 2, 3, 4]}]}, {"image": "b.jpg", "people": []}]
