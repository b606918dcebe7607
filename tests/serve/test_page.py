"""The web page in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium) in a
1280x800 window: upload an image, wait for the pictures, check that they, their keys, the people in
words and the model card are displayed without scrolling, save a screenshot as an artifact."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.optional import require, require_files
from tests.serve.samples import encode, scene

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"  # ignored by git; CI keeps it
WINDOW = (1280, 800)  # a small laptop screen: the whole answer must fit in it


@pytest.fixture(scope="module")
def browser():
    webdriver = require("selenium.webdriver", "the dev extra: pip install 'onepass[dev]'")
    require_files(CHROMIUM, CHROMEDRIVER, install="Debian's chromium and chromium-driver; .ci/run installs them")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="onepass-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for_result(driver, seconds: float = 60) -> str:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, seconds).until(
        lambda d: d.find_element("tag name", "body").get_attribute("data-state") in ("done", "error")
    )
    return driver.find_element("tag name", "body").get_attribute("data-state")


def displayed_maps(driver) -> dict[str, tuple[int, int]]:
    """task -> natural size of each decoded, visible picture on the page."""
    maps = {}
    for img in driver.find_elements("css selector", "img.map"):
        width, height, complete = driver.execute_script(
            "const i = arguments[0]; return [i.naturalWidth, i.naturalHeight, i.complete];", img
        )
        if complete and width > 0 and img.is_displayed():
            maps[img.get_attribute("data-task")] = (width, height)
    return maps


def test_upload_shows_maps_keys_people_and_card_in_view(server, browser, predictor, tmp_path):
    upload = tmp_path / "room.png"
    upload.write_bytes(encode(scene(77, 180, 240)))
    people = predictor.predict(scene(77, 180, 240))[0]["people"]
    assert people  # the scene shows people
    browser.get(server.url + "/")
    browser.find_element("id", "file").send_keys(str(upload))
    assert wait_for_result(browser) == "done", browser.find_element("id", "status").text
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 20).until(lambda d: len(displayed_maps(d)) == 5)
    pictures = ("input", "semseg", "depth", "normals", "people")  # the people: their boxes over the input
    assert displayed_maps(browser) == {task: (240, 180) for task in pictures}
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "serve-page.png"))  # the README's docs/serve-page.png
    # the words come as each task's section of `text` (its `describe`): only the people say anything here
    assert [e.text for e in browser.find_elements("css selector", "#text th.task")] == ["people"]
    words = browser.find_element("id", "text").text
    looking = sum(1 for person in people if person["looking"]["label"] == "yes")
    assert f"{len(people)} people, {looking} looking" in words  # the audience, then a numbered row per person
    rows = browser.find_elements("css selector", "#text tr[data-group]")
    assert [row.get_attribute("data-group") for row in rows] == [str(i + 1) for i in range(len(people))]
    for row, person in zip(rows, people, strict=True):
        label = row.find_element("css selector", "td.label").text
        assert person["age_group"]["label"] in label and f"({person['score']:.2f})" in label, (label, person)
    assert "ms round trip" in browser.find_element("id", "latency").text
    # a key under each picture: the classes it shows, the depth scale in metres, the normals' sphere, and
    # what the people's box colours mean, with how many each marks
    legends = {e.get_attribute("data-task"): e for e in browser.find_elements("css selector", ".legend")}
    assert set(legends) == {"semseg", "depth", "normals", "people"} and all(e.is_displayed() for e in legends.values())
    swatches = [e.text for e in legends["people"].find_elements("tag name", "li")]
    assert swatches == [f"looking ({looking})", f"not looking ({len(people) - looking})"]
    classes = [e.text for e in legends["semseg"].find_elements("tag name", "li")]
    assert classes and set(classes) <= {"floor", "wall", "ceiling", "furniture", "object", "person"}
    assert "depth (m)" in legends["depth"].text and "0.5" in legends["depth"].text and "10" in legends["depth"].text
    sphere = legends["normals"].find_element("tag name", "img")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", sphere) > 0
    # the model card: what it was trained on and what it is not good for
    card = browser.find_element("id", "card").text
    assert "Trained on 4,440 synthetic scenes" in card and "not meaningful" in card and "onepass train" in card
    # everything in view at 1280x800, the words beside the pictures
    viewport = browser.execute_script("return [window.innerWidth, window.innerHeight]")
    assert viewport[0] == WINDOW[0] and viewport[1] <= WINDOW[1]
    boxes = {
        name: rect(browser, selector)
        for name, selector in {
            "words": "#text-box",
            "maps": "#maps",
            "semseg key": ".legend[data-task=semseg]",
            "card": "#card",
        }.items()
    }
    for name, (left, top, right, bottom) in boxes.items():
        assert 0 <= left and right <= viewport[0] and 0 <= top and bottom <= viewport[1], (name, boxes[name], viewport)
    assert boxes["words"][0] >= boxes["maps"][2] and boxes["words"][1] < boxes["maps"][3]  # beside


def rect(driver, selector: str) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of an element in the viewport, in CSS pixels."""
    box = driver.execute_script(
        "const r = document.querySelector(arguments[0]).getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom];",
        selector,
    )
    return tuple(box)


def test_sample_scene_and_error_message(server, browser, tmp_path):
    browser.get(server.url + "/")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(lambda d: len(d.find_elements("css selector", "img.sample")) == 4)
    browser.find_elements("css selector", "img.sample")[1].click()
    assert wait_for_result(browser) == "done"
    WebDriverWait(browser, 20).until(lambda d: len(displayed_maps(d)) == 5)
    assert displayed_maps(browser)["depth"] == displayed_maps(browser)["people"] == (320, 256)
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"not really a png")
    browser.find_element("id", "file").send_keys(str(bad))
    assert wait_for_result(browser) == "error"
    assert (
        "400" in browser.find_element("id", "status").text
        and "not an image" in browser.find_element("id", "status").text
    )
