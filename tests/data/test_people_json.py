"""people.json (COCO): writing, reading with pycocotools, and validation errors that name the file,
the image or annotation id, and the fault."""

from __future__ import annotations

import copy
import json

import pytest
from pycocotools.coco import COCO

from onepass.data.folder import DatasetError
from onepass.data.people_json import (
    PeopleJsonError,
    load_people_json,
    parse_person_attributes,
    people_by_file_name,
    people_document,
    person_annotation,
    validate_people_json,
    write_people_json,
)

CLASSES = {"age_group": ("child", "adult"), "gender": ("female", "male")}


def _document() -> dict:
    images = [
        {"id": 0, "file_name": "000000.png", "width": 160, "height": 128},
        {"id": 1, "file_name": "sub/000001.png", "width": 160, "height": 128},
        {"id": 2, "file_name": "000002.png", "width": 160, "height": 128},  # nobody in it
    ]
    annotations = [
        person_annotation(
            1, 0, [10, 20, 30, 60], {"age_group": "adult", "gender": "female", "looking": True, "yaw": 5.5}
        ),
        person_annotation(2, 0, [130, 0, 30, 128], {"gender": "male", "yaw": -180.0}, area=900, truncated=True),
        person_annotation(3, 1, [0.5, 1.5, 20.25, 40.0], {}),
    ]
    return people_document(images, annotations)


def test_round_trip_through_pycocotools(tmp_path):
    document = _document()
    path = tmp_path / "people.json"
    write_people_json(path, document, CLASSES)
    coco = load_people_json(path, CLASSES, image_files={"000000.png", "sub/000001.png", "000002.png"})
    assert isinstance(coco, COCO)
    assert coco.dataset == document
    assert coco.getAnnIds(imgIds=[0]) == [1, 2]
    assert coco.loadAnns([2])[0]["attributes"] == {"gender": "male", "yaw": -180.0}
    assert coco.getCatIds(catNms=["person"]) == [1]
    by_file = people_by_file_name(coco)
    assert [a["id"] for a in by_file["000000.png"]] == [1, 2]
    assert [a["bbox"] for a in by_file["sub/000001.png"]] == [[0.5, 1.5, 20.25, 40.0]]
    assert by_file["000002.png"] == []


def test_a_plain_coco_file_from_another_tool_is_read(tmp_path):
    document = _document()
    document["info"] = {"description": "exported by a labelling tool", "version": "1.0"}  # COCO's own version
    for annotation in document["annotations"]:
        del annotation["area"], annotation["iscrowd"], annotation["attributes"]
    document["annotations"][0]["segmentation"] = [[10, 20, 40, 20, 40, 80]]  # extra COCO keys are kept
    path = tmp_path / "people.json"
    path.write_text(json.dumps(document))
    coco = load_people_json(path, {})
    assert len(coco.anns) == 3


def _set(*keys_and_value):
    """A mutation that sets document[k1][k2]... = value (the last argument)."""
    *keys, value = keys_and_value

    def mutate(document):
        target = document
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return mutate


def _delete(*keys):
    def mutate(document):
        target = document
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return mutate


def _append_copy(list_key, index, **changes):
    def mutate(document):
        item = copy.deepcopy(document[list_key][index])
        item.update(changes)
        document[list_key].append(item)

    return mutate


ERRORS = [
    # (mutation, where, what)
    (_set("annotations", 0, "bbox", [150, 20, 30, 60]), "annotation 1", "reaches outside its 160x128"),
    (_set("annotations", 1, "bbox", [10, 20, 30, 110]), "annotation 2", "reaches outside"),
    (_set("annotations", 0, "bbox", [-2, 20, 30, 60]), "annotation 1", "reaches outside"),
    (_set("annotations", 0, "bbox", [10, 20, -30, 60]), "annotation 1", "negative size"),
    (_set("annotations", 2, "bbox", [10, 20, 30, 0]), "annotation 3", "is empty"),
    (_set("annotations", 0, "bbox", [10, 20, 30]), "annotation 1", "'bbox' must be [x, y, width, height]"),
    (_set("annotations", 0, "bbox", [10, "20", 30, 60]), "annotation 1", "'bbox' must be"),
    (_delete("annotations", 0, "bbox"), "annotation 1", "'bbox' must be"),
    (_set("annotations", 0, "attributes", "gender", "other"), "annotation 1", "'other' is not a class of 'gender'"),
    (_set("annotations", 0, "attributes", "age_group", "teen"), "annotation 1", "'teen' is not a class of 'age_group'"),
    (_set("annotations", 1, "attributes", "looking", "yes"), "annotation 2", "'looking' must be true or false"),
    (_set("annotations", 1, "attributes", "yaw", 200), "annotation 2", "'yaw' must be degrees from -180 to 180"),
    (_set("annotations", 1, "attributes", "yaw", "left"), "annotation 2", "'yaw' must be degrees"),
    (_set("annotations", 2, "attributes", "mood", "happy"), "annotation 3", "unknown attribute 'mood'"),
    (_set("annotations", 2, "attributes", ["gender"]), "annotation 3", "'attributes' must be an object"),
    (_append_copy("annotations", 0), "annotation 1", "duplicate id"),
    (_set("annotations", 1, "image_id", 99), "annotation 2", "image_id 99 is not in 'images'"),
    (_set("annotations", 1, "category_id", 2), "annotation 2", "category_id 2 is not the 'person' category"),
    (_set("annotations", 0, "iscrowd", 1), "annotation 1", "crowd regions are not supported"),
    (_set("annotations", 0, "area", -1), "annotation 1", "'area' must be a number >= 0"),
    (_set("annotations", 1, "truncated", 1), "annotation 2", "'truncated' must be true or false"),
    (_delete("annotations", 0, "id"), "annotations[0]", "'id' must be an integer"),
    (_delete("images", 1, "file_name"), "image 1", "no 'file_name'"),
    (_set("images", 1, "file_name", "../escape.png"), "image 1", "must be a path relative to images/"),
    (_set("images", 2, "file_name", "000000.png"), "image 2", "file_name '000000.png' is already image 0"),
    (_append_copy("images", 1, file_name="other.png"), "image 1", "duplicate id"),
    (_set("images", 0, "width", 0), "image 0", "'width' must be a positive integer"),
    (_delete("images", 0, "height"), "image 0", "'height' must be a positive integer"),
    (_set("images", 0, "id", "a"), "images[0]", "'id' must be an integer"),
    (_set("categories", [{"id": 1, "name": "car"}]), "", "no category named 'person'"),
    (_delete("annotations"), "", "no 'annotations'"),
    (_set("images", {}), "", "'images' must be a list"),
    (_set("info", "format_version", 2), "", "unsupported format_version 2"),
    (_set("info", "format", "something-else"), "", "this reader reads 'onepass-people'"),
]


@pytest.mark.parametrize("mutate, where, what", ERRORS)
def test_every_validation_error_names_file_annotation_and_fault(tmp_path, mutate, where, what):
    document = _document()
    mutate(document)
    path = tmp_path / "people.json"
    path.write_text(json.dumps(document))
    with pytest.raises(PeopleJsonError) as error:
        load_people_json(path, CLASSES)
    message = str(error.value)
    assert message.startswith(f"{path}: {where}"), message
    assert what in message, message
    assert isinstance(error.value, DatasetError)  # the CLI prints dataset errors as one line


def test_non_finite_numbers_are_refused():
    document = _document()
    document["annotations"][0]["bbox"][0] = float("nan")
    with pytest.raises(PeopleJsonError, match=r"^people.json: annotation 1: 'bbox' must be"):
        validate_people_json(document, "people.json", CLASSES)
    document = _document()
    document["annotations"][1]["attributes"]["yaw"] = float("inf")
    with pytest.raises(PeopleJsonError, match="annotation 2: 'yaw' must be degrees"):
        validate_people_json(document, "people.json", CLASSES)


def test_a_categorical_attribute_needs_its_classes():
    with pytest.raises(PeopleJsonError, match="annotation 1: unknown attribute 'age_group'.*needs its classes in"):
        validate_people_json(_document(), "people.json", {"gender": ("female", "male")})


def test_file_names_must_be_images_of_the_folder(tmp_path):
    path = tmp_path / "people.json"
    write_people_json(path, _document(), CLASSES)
    with pytest.raises(PeopleJsonError, match=r"image 1: file_name 'sub/000001.png' is not in images/"):
        load_people_json(path, CLASSES, image_files={"000000.png", "000002.png"})


@pytest.mark.parametrize(
    ("content", "error"), [(None, "missing"), ("{not json", "not valid JSON"), ("[]", "must be a JSON object")]
)
def test_unreadable_files(tmp_path, content: str | None, error: str):
    path = tmp_path / "people.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(PeopleJsonError, match=f"^{path}: {error}"):
        load_people_json(path, CLASSES)


def test_writing_refuses_what_reading_would_refuse(tmp_path):
    document = _document()
    document["annotations"][0]["attributes"]["gender"] = "other"
    path = tmp_path / "people.json"
    with pytest.raises(PeopleJsonError, match="annotation 1: 'other' is not a class of 'gender'"):
        write_people_json(path, document, CLASSES)
    assert not path.exists()


def test_person_attribute_classes_of_dataset_json():
    section = {"age_group": ["child", "adult"], "gender": ["female", "male"]}
    assert parse_person_attributes(section, "dataset.json") == CLASSES
    with pytest.raises(
        DatasetError, match=r"dataset.json: 'person_attributes' has 'looking'; .*\(looking is a boolean"
    ):
        parse_person_attributes({"looking": ["no", "yes"]}, "dataset.json")
    with pytest.raises(DatasetError, match="'gender' must list at least two distinct class names"):
        parse_person_attributes({"gender": ["female", "female"]}, "dataset.json")
    with pytest.raises(DatasetError, match="must map attribute names to lists of classes"):
        parse_person_attributes(["gender"], "dataset.json")


def test_a_dataset_may_define_its_own_person_attributes():
    """Any categorical attribute a dataset lists (an age band with five bands, say) is read."""
    bands = ("0-12", "13-19", "20-39", "40-59", "60+")
    document = _document()
    for annotation in document["annotations"]:
        annotation["attributes"] = {"age_band": "20-39", "looking": True}
    validate_people_json(document, "people.json", {"age_band": bands})
    document["annotations"][0]["attributes"]["age_band"] = "30s"
    with pytest.raises(PeopleJsonError, match="annotation 1: '30s' is not a class of 'age_band'"):
        validate_people_json(document, "people.json", {"age_band": bands})
