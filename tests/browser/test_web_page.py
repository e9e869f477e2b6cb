"""The dashboard in a real Chromium, served by the real WebServer: it shows the device and follows it live.

The device is a `FakeDeviceView` the test changes while the page is open; every assertion waits
(Playwright's `expect`, bounded) for the page's once-a-second poll instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from system.edge.web.app import create_app
from system.edge.web.server import WebServer
from tests.browser.conftest import NO_PLAYWRIGHT, PageFactory
from tests.web_fakes import FakeDeviceView, job_dict, make_result, png_bytes, serving_models

sync_api = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT)
expect = sync_api.expect

if TYPE_CHECKING:
    from playwright.sync_api import Page

IMAGE_SIZE = (240, 90)
WAIT_MS = 8_000  # the page polls every second; this leaves room for a slow machine


@pytest.fixture
def device() -> FakeDeviceView:
    fake = FakeDeviceView()
    fake.push_result(make_result(1, label="normal", p_anomalous=0.012345678, image_size=IMAGE_SIZE))
    fake.jobs_value = [job_dict("ota-unet-1", "unet", "1", "SUCCEEDED")]
    return fake


@pytest.fixture
def server(device: FakeDeviceView) -> Iterator[WebServer]:
    web = WebServer(create_app(device), port=0).start()
    try:
        yield web
    finally:
        web.stop()


def expect_versions(page: Page, classification: str, segmentation: str) -> None:
    for name, version in (("img-classification", classification), ("unet", segmentation)):
        row = page.locator(f"#models tbody tr[data-model-name='{name}']")
        expect(row.locator("td.version")).to_have_text(version, timeout=WAIT_MS)
        expect(row).to_have_attribute("data-version", version, timeout=WAIT_MS)


def test_page_follows_a_model_swap_and_a_new_verdict_without_reloading(
    server: WebServer,
    device: FakeDeviceView,
    browser_page: PageFactory,
    save_screenshot: Callable[[Page, str], Path],
) -> None:
    page = browser_page(server.url)
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    expect(page.locator("#thing")).to_have_text("edge-device-1", timeout=WAIT_MS)
    expect_versions(page, "1", "1")
    expect(page.locator("#models tbody tr[data-model-name='unet'] td.app")).to_have_text("image-segmentation-app")
    expect(page.locator("#models tbody tr[data-model-name='unet'] td.identifier")).to_have_text("unet-1")
    expect(page.locator("#verdict")).to_have_text("Normal", timeout=WAIT_MS)
    expect(page.locator("#verdict-box")).to_have_class("verdict-box normal")
    expect(page.locator("#probabilities")).to_have_text("normal=0.987654 / anomalous=0.012346")
    expect(page.locator("#mask-overlay")).to_have_attribute(
        "src", device.results[0].to_dict()["segmentation"]["overlay"]
    )
    expect(page.locator("#mask-overlay")).to_be_visible()
    expect(page.locator("#current-image")).to_be_visible()
    expect(page.locator("#image-name")).to_have_text("test/normal/0001.png")
    expect(page.locator("#defect-fraction")).to_have_text("0.062500")
    expect(page.locator("#no-classification")).to_be_hidden()
    expect(page.locator("#badge-connection")).to_have_text("connected", timeout=WAIT_MS)
    expect(page.locator("body")).to_have_attribute("data-generation", "1")
    expect(page.locator("#last-updated")).not_to_have_text("never")
    save_screenshot(page, "before-swap")

    page.evaluate("window.__edgesimMarker = 1")
    device.set_models(serving_models("2", "2"))
    device.push_result(
        make_result(
            2,
            label="anomalous",
            p_anomalous=0.93,
            version="2",
            image_name="test/anomalous/0042.png",
            image_size=IMAGE_SIZE,
        )
    )

    expect_versions(page, "2", "2")
    expect(page.locator("#models tbody tr[data-model-name='img-classification'] td.identifier")).to_have_text(
        "img-classification-2"
    )
    expect(page.locator("body")).to_have_attribute("data-generation", "2", timeout=WAIT_MS)
    expect(page.locator("#verdict")).to_have_text("Anomalous", timeout=WAIT_MS)
    expect(page.locator("#verdict-box")).to_have_class("verdict-box anomalous")
    expect(page.locator("#probabilities")).to_have_text("normal=0.070000 / anomalous=0.930000")
    expect(page.locator("#image-name")).to_have_text("test/anomalous/0042.png")
    expect(page.locator("#classification-model")).to_contain_text("img-classification-2")
    assert page.evaluate("window.__edgesimMarker") == 1, "the page reloaded"
    assert navigations == [], f"the page navigated: {navigations}"
    assert browser_page.errors == []
    save_screenshot(page, "after-swap")


def test_page_says_when_there_is_no_result_then_shows_the_first(
    server: WebServer, device: FakeDeviceView, browser_page: PageFactory
) -> None:
    device.results.clear()
    page = browser_page(server.url)
    expect(page.locator("#no-classification")).to_have_text("No image classification result available")
    expect(page.locator("#no-segmentation")).to_have_text("No segmentation mask available")
    expect(page.locator("#badge-connection")).to_have_text("connected", timeout=WAIT_MS)
    expect(page.locator("#verdict")).to_be_hidden()
    expect(page.locator("#mask-overlay")).to_be_hidden()

    device.push_result(make_result(1, segmentation=False, errors=("unet-1: predict failed: timeout",)))
    expect(page.locator("#verdict")).to_have_text("Normal", timeout=WAIT_MS)
    expect(page.locator("#no-segmentation")).to_be_visible()
    expect(page.locator("#result-errors li")).to_have_text(["unet-1: predict failed: timeout"])
    assert browser_page.errors == []


def test_jobs_table_lists_the_history_and_the_job_in_progress(
    server: WebServer, device: FakeDeviceView, browser_page: PageFactory
) -> None:
    page = browser_page(server.url)
    expect(page.locator("#jobs tbody tr[data-job-id]")).to_have_count(1, timeout=WAIT_MS)
    running = job_dict("ota-clf-2", "img-classification", "2", "IN_PROGRESS")
    failed = job_dict("ota-unet-3", "unet", "3", "FAILED", "sha256 mismatch")
    device.jobs_value = [running, failed, *device.jobs_value]
    device.status_value = {**device.status_value, "ota": {"current_job": running}}

    expect(page.locator("#jobs tbody tr[data-job-id]")).to_have_count(3, timeout=WAIT_MS)
    failed_row = page.locator("#jobs tbody tr[data-job-id='ota-unet-3']")
    expect(failed_row).to_have_attribute("data-status", "FAILED")
    expect(failed_row.locator("td.reason")).to_have_text("sha256 mismatch")
    expect(failed_row.locator("td.status .badge")).to_have_class("badge bad")
    expect(page.locator("#jobs tbody tr[data-job-id]").first).to_have_attribute("data-job-id", "ota-clf-2")
    expect(page.locator("#ota-current")).to_contain_text("ota-clf-2", timeout=WAIT_MS)


def test_upload_form_shows_the_prediction(server: WebServer, device: FakeDeviceView, browser_page: PageFactory) -> None:
    page = browser_page(server.url)
    image = png_bytes(size=(16, 16))
    page.locator("#upload-file").set_input_files({"name": "part-7.png", "mimeType": "image/png", "buffer": image})
    page.locator("#upload-submit").click()
    expect(page.locator("#upload-verdict")).to_have_text("Anomalous", timeout=WAIT_MS)
    expect(page.locator("#upload-overlay")).to_be_visible()
    assert ("predict_image", (image, "part-7.png")) in device.calls

    page.locator("#upload-file").set_input_files({"name": "bad.png", "mimeType": "image/png", "buffer": b"nope"})
    page.locator("#upload-submit").click()
    expect(page.locator("#upload-error")).to_contain_text("cannot decode", timeout=WAIT_MS)
    expect(page.locator("#upload-result")).to_be_hidden()


def test_connection_badge_reports_api_errors_and_a_lost_device(
    server: WebServer, device: FakeDeviceView, browser_page: PageFactory
) -> None:
    page = browser_page(server.url)
    expect(page.locator("#badge-connection")).to_have_text("connected", timeout=WAIT_MS)
    page.evaluate("window.__edgesimMarker = 1")

    device.failure = RuntimeError("view broke")
    expect(page.locator("#badge-connection")).to_have_text("API error", timeout=WAIT_MS)
    device.failure = None
    expect(page.locator("#badge-connection")).to_have_text("connected", timeout=WAIT_MS)

    server.stop()
    expect(page.locator("#badge-connection")).to_have_text("offline", timeout=WAIT_MS)
    expect(page.locator("body")).to_have_attribute("data-connection", "offline")
    expect(page.locator("#verdict")).to_have_text("Normal")  # the last state stays on screen
    assert page.evaluate("window.__edgesimMarker") == 1
    assert browser_page.errors == []
