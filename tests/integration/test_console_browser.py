"""The console in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium): frames
through a real worker, sign in, live defects appear, a frame opens with its boxes, two frames are reviewed
with the keyboard, the ``labels`` documents are there and ``dataset export`` writes them.

Set ``LINEGUARD_CONSOLE_SCREENSHOTS=docs`` to save the screens as ``docs/console-{live,frame,review}.png``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from lineguard.stack.endpoints import Endpoints
from schemas.topics import TopicNames
from tests.integration.test_console_support import PASSWORD, RunningWorker, add_users, served_console
from tests.integration.test_workers_support import make_frames, produce_frames, wait_for

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 60


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="console-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _shot(driver: Any, name: str) -> None:
    folder = os.environ.get("LINEGUARD_CONSOLE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(Path(folder) / f"console-{name}.png"))


def test_sign_in_live_defects_frame_boxes_review_two_and_export(
    browser: Any,
    mongo_db: Database[dict[str, Any]],
    kafka_config: dict[str, Any],
    endpoints: Endpoints,
    topics: TopicNames,
    model_dir: Path,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from vision.export_dataset import ExportSources, run_export

    add_users(mongo_db)
    frames = make_frames(24, seed=3)
    wait = WebDriverWait(browser, WAIT_S)
    with served_console(mongo_db, kafka_config, topics) as served:
        browser.get(served.url + "/")
        assert browser.find_element(By.ID, "app").get_attribute("hidden") is not None
        browser.find_element(By.ID, "signin-name").send_keys("rita")
        browser.find_element(By.ID, "signin-password").send_keys("wrong-password")
        browser.find_element(By.ID, "signin-submit").click()
        wait.until(lambda d: "wrong user name" in d.find_element(By.ID, "signin-error").text)
        password = browser.find_element(By.ID, "signin-password")
        password.clear()
        password.send_keys(PASSWORD)
        browser.find_element(By.ID, "signin-submit").click()
        wait.until(lambda d: d.find_element(By.ID, "who").text == "rita (reviewer)")
        wait.until(lambda d: d.find_element(By.ID, "live-state").text == "live")

        worker = RunningWorker(topics, model_dir, endpoints, mongo_db.name)
        try:
            produce_frames(kafka_config, topics.frames, frames)
            collection = mongo_db["inspections"]
            wait_for(lambda: collection.count_documents({}) >= len(frames), WAIT_S, "the worker's documents")
        finally:
            worker.stop()
        flagged = collection.count_documents({"verdict": {"$in": ["DEFECT", "UNCERTAIN"]}})
        assert flagged >= 2, "the seeded frames hold defects"
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#live-list .defect-card")) == flagged)
        cards = browser.find_elements(By.CSS_SELECTOR, "#live-list .defect-card")
        shown = {card.get_attribute("data-event-id") for card in cards}
        assert shown == {d["_id"] for d in collection.find({"verdict": {"$in": ["DEFECT", "UNCERTAIN"]}})}
        assert "capture→verdict" in cards[0].text and "test-classifier t1" in cards[0].text
        wait.until(lambda d: "frames/min" in d.find_element(By.ID, "tiles").text)
        _shot(browser, "live")

        # A defect card opens its frame; the boxes are drawn on the canvas over the image.
        opened = cards[0].get_attribute("data-event-id")
        cards[0].click()
        wait.until(
            lambda d: (
                d.find_element(By.ID, "viewer-canvas").get_attribute("data-boxes") not in (None, "", "0")
            )
        )
        natural = browser.execute_script("return document.getElementById('viewer-image').naturalWidth")
        assert natural == frames[0].width
        camera, number, _ = str(opened).split(":")
        assert f"{camera} #{number}" in browser.find_element(By.ID, "viewer-meta").text
        _shot(browser, "frame")
        browser.find_element(By.ID, "viewer-overlays").click()  # overlays off: nothing drawn
        wait.until(lambda d: d.find_element(By.ID, "viewer-canvas").get_attribute("data-boxes") == "0")

        # Review queue: every score, then "g" (good) on the first frame and class 1 on the second.
        browser.find_element(By.ID, "nav-review").click()
        band_low = browser.find_element(By.NAME, "band_low")
        band_low.send_keys("0")
        browser.find_element(By.NAME, "band_high").send_keys("1")
        browser.find_element(By.ID, "rules-apply").click()
        wait.until(lambda d: d.find_element(By.ID, "review-left").text == f"{len(frames)} to review")
        wait.until(lambda d: d.find_element(By.ID, "review-image").get_attribute("src"))
        _shot(browser, "review")
        body = browser.find_element(By.TAG_NAME, "body")
        body.click()
        body.send_keys("g")
        wait.until(lambda d: d.find_element(By.ID, "review-left").text == f"{len(frames) - 1} to review")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#review-classes .class-button"))
        first_class = browser.find_element(By.CSS_SELECTOR, "#review-classes .class-button").text.split(
            " ", 1
        )[1]
        body.send_keys("1")
        wait.until(lambda d: d.find_element(By.ID, "review-left").text == f"{len(frames) - 2} to review")

    labels = list(mongo_db["labels"].find({}))
    assert len(labels) == 2
    assert sorted(d["label"] for d in labels) == sorted(["good", first_class])
    assert {d["labelled_by"] for d in labels} == {"rita"} and {d["model_version"] for d in labels} == {"t1"}

    out = tmp_path / "train"
    summary = run_export(
        ExportSources(
            kafka_config=kafka_config,
            frames_topic=topics.frames,
            results_topic=topics.results,
            mongodb_uri=endpoints.mongodb_uri,
            database=mongo_db.name,
        ),
        out,
        "mongodb",
    )
    assert summary.sources["correction"] == 2
    for doc in labels:
        assert (out / doc["label"] / f"{doc['camera_id']}_{doc['frame_number']:010d}.jpg").is_file()
