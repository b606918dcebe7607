"""The web page in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium):
upload an image, wait for the maps, check they are displayed, save a screenshot as an artifact."""

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
        "--window-size=1400,1000",
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


def test_upload_shows_maps_attributes_and_latency(server, browser, tmp_path):
    upload = tmp_path / "room.png"
    upload.write_bytes(encode(scene(77, 180, 240)))
    browser.get(server.url + "/")
    browser.find_element("id", "file").send_keys(str(upload))
    assert wait_for_result(browser) == "done", browser.find_element("id", "status").text
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 20).until(lambda d: len(displayed_maps(d)) == 4)
    assert displayed_maps(browser) == {task: (240, 180) for task in ("input", "semseg", "depth", "normals")}
    groups = [
        row.get_attribute("data-group") for row in browser.find_elements("css selector", "#attributes tr[data-group]")
    ]
    assert groups == ["people", "facing", "age_group"]
    assert "ms round trip" in browser.find_element("id", "latency").text
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "serve-page.png"))


def test_sample_scene_and_error_message(server, browser, tmp_path):
    browser.get(server.url + "/")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(lambda d: len(d.find_elements("css selector", "img.sample")) == 4)
    browser.find_elements("css selector", "img.sample")[1].click()
    assert wait_for_result(browser) == "done"
    WebDriverWait(browser, 20).until(lambda d: len(displayed_maps(d)) == 4)
    assert displayed_maps(browser)["depth"] == (320, 256)
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"not really a png")
    browser.find_element("id", "file").send_keys(str(bad))
    assert wait_for_result(browser) == "error"
    assert (
        "400" in browser.find_element("id", "status").text
        and "not an image" in browser.find_element("id", "status").text
    )
