"""INPUT arguments -> images and their keys (the output names), which never leave DIR."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from onepass.predict.inputs import InputError, collect_inputs, safe_key
from onepass.predict.outputs import OutputLayout
from tests.predict.conftest import BAD, GOOD


def keys(images) -> list[str]:
    return [i.key for i in images]


def test_a_folder_is_walked_for_image_extensions_only(input_folder):
    assert keys(collect_inputs([str(input_folder)])) == sorted(GOOD + BAD)  # notes.md skipped


def test_the_output_folder_and_hidden_files_are_not_inputs(input_folder):
    (input_folder / "preds" / "semseg").mkdir(parents=True)
    (input_folder / "preds" / "semseg" / "x.png").write_bytes(b"")
    (input_folder / ".cache").mkdir()
    (input_folder / ".cache" / "y.png").write_bytes(b"")
    (input_folder / ".z.png").write_bytes(b"")
    assert keys(collect_inputs([str(input_folder)], exclude=input_folder / "preds")) == sorted(GOOD + BAD)


def test_a_glob_keys_paths_below_its_fixed_folders(input_folder):
    images = collect_inputs([str(input_folder / "a" / "**" / "*.png")])
    assert keys(images) == ["b/deep.png", "frame0.png", "frame1.png"]


def test_files_keep_their_relative_path_or_their_name(input_folder, monkeypatch):
    monkeypatch.chdir(input_folder)
    images = collect_inputs(["a/frame0.png", str(input_folder / "gray.png"), "notimage.jpg"])
    assert keys(images) == ["a/frame0.png", "gray.png", "notimage.jpg"]  # named files are tried, whatever they are


def test_list_entries_cannot_name_outputs_outside_the_output_folder(tmp_path, input_folder):
    lists = tmp_path / "lists"
    lists.mkdir()
    listing = lists / "frames.txt"
    listing.write_text(
        f"../frames/a/frame0.png\n{input_folder}/a/b/deep.png\n../frames/a/../../frames/gray.png\n/etc/hostname\n"
    )
    images = collect_inputs([str(listing)])
    layout = OutputLayout(tmp_path / "out", ("semseg",), "png", True)
    root = os.path.abspath(layout.root)
    for image in images:
        assert not Path(image.key).is_absolute() and ".." not in Path(image.key).parts
        for path in layout.files(image.key):
            assert os.path.commonpath([root, os.path.abspath(path)]) == root
    # below the deepest folder all entries share (here /), so nothing collides
    assert {i.source for i in images} == {
        str(input_folder / "a/frame0.png"),
        str(input_folder / "a/b/deep.png"),
        str(input_folder / "gray.png"),
        "/etc/hostname",
    }


@pytest.mark.parametrize(
    ("path", "base", "key"),
    [
        ("/data/x/y.png", "/data", "x/y.png"),
        ("/data/../etc/passwd", "/data", "passwd"),  # not below its base: just the name
        ("/elsewhere/y.png", "/data", "y.png"),
        ("/data/./x//y.png", "/data", "x/y.png"),
    ],
)
def test_safe_key(path, base, key):
    assert safe_key(Path(path), Path(base)) == key


def test_two_files_with_one_output_name_are_refused(input_folder, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "gray.png").write_bytes((input_folder / "gray.png").read_bytes())
    with pytest.raises(InputError, match="would both write outputs named 'gray.png'"):
        collect_inputs([str(input_folder), str(other)])
    (input_folder / "a" / "frame0.jpg").write_bytes(b"")
    with pytest.raises(InputError, match=r"would both write outputs named 'a/frame0'\.\*"):
        collect_inputs([str(input_folder)])


def test_the_same_file_twice_is_one_image(input_folder):
    images = collect_inputs([str(input_folder), str(input_folder / "gray.png"), str(input_folder / "g*.png")])
    assert keys(images).count("gray.png") == 1


def test_an_input_that_matches_nothing_is_a_user_error(tmp_path):
    with pytest.raises(InputError, match="nothing.png: matches no file"):
        collect_inputs([str(tmp_path / "nothing.png")])
    with pytest.raises(InputError, match=r"\*.png: matches no file"):
        collect_inputs([str(tmp_path / "*.png")])
