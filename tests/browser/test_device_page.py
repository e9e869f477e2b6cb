"""The web UI of a real device in headless Chromium: OTA deployments show up live, without a reload."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.edge_world import EdgeWorld


def test_page_shows_deployed_models_verdict_and_mask_and_follows_an_upgrade(
    world: EdgeWorld, browser_page: Callable[[str], Any], save_screenshot: Callable[[Any, str], Path]
) -> None:
    device = world.start_device(web_enabled=True, web_port=0, rate_hz=5.0)
    assert device.web_url is not None
    page = browser_page(device.web_url)
    page.wait_for_selector("#badge-connection", timeout=10_000)
    page.evaluate("window.__edgesimMarker = 'no reload'")

    for model in ("img-classification", "unet"):
        assert world.wait_job(world.deploy(world.document(model, "1")))["status"] == "SUCCEEDED"
    page.wait_for_selector('#models tbody tr[data-model-name="img-classification"][data-version="1"]', timeout=15_000)
    page.wait_for_selector('#models tbody tr[data-model-name="unet"][data-version="1"]', timeout=15_000)
    page.wait_for_function(
        "() => ['normal', 'anomalous'].includes(document.querySelector('#verdict')?.dataset.label)", timeout=15_000
    )
    page.wait_for_function(
        "() => (document.querySelector('#mask-overlay')?.getAttribute('src') || '').startsWith('data:image/png')",
        timeout=15_000,
    )
    assert "anomalous=" in page.inner_text("#probabilities") or "anomalous" in page.inner_text("#probabilities")
    save_screenshot(page, "deployed-v1")

    upgrade = world.deploy(world.document("img-classification", "2"))
    assert world.wait_job(upgrade)["status"] == "SUCCEEDED"
    page.wait_for_selector('#models tbody tr[data-model-name="img-classification"][data-version="2"]', timeout=15_000)
    page.wait_for_selector(f'#jobs tbody tr[data-job-id="{upgrade}"][data-status="SUCCEEDED"]', timeout=15_000)
    assert page.locator('#models tbody tr[data-model-name="img-classification"]').count() == 1
    assert page.evaluate("window.__edgesimMarker") == "no reload"
    save_screenshot(page, "upgraded-v2")
    assert not browser_page.errors  # type: ignore[attr-defined]
