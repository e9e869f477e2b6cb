"""Browser fixtures: the system's Chromium driven by Playwright, screenshots kept as test artifacts.

Never `playwright install` (the machines have no internet): these fixtures launch Debian's Chromium
(`make deps-system` installs it; `EDGESIM_CHROMIUM` names another binary) and skip, saying why,
when it or the playwright package is missing. Fixtures, for any test under tests/browser:

- `browser_page(url) -> Page`: a fresh browser context and page at `url`, closed after the test.
  Uncaught JavaScript errors land in `browser_page.errors`, console lines in `browser_page.console`;
  when the test fails, every page it opened is screenshotted into the artifacts folder.
- `save_screenshot(page, name) -> Path`: a full-page PNG in the artifacts folder, named after the test.
- `artifacts_dir`: `EDGESIM_TEST_ARTIFACTS`, default `<repo>/build/test-artifacts` (created).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")
DEFAULT_CHROMIUM = "/usr/bin/chromium"
# Headless in a container: no sandbox (root, no user namespaces), no GPU, and nothing that phones home.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
NO_CHROMIUM = "Chromium is not installed (`make deps-system` installs the Debian package; or set EDGESIM_CHROMIUM)"
NO_PLAYWRIGHT = "the playwright package is missing (pip install -e '.[dev]')"
PAGE_TIMEOUT_MS = 10_000
CALL_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep the call phase's report on the item, so fixtures can tell in teardown that the test failed."""
    report: pytest.TestReport = yield
    if report.when == "call":
        item.stash[CALL_REPORT] = report
    return report


def find_chromium() -> str | None:
    """`EDGESIM_CHROMIUM` when set, else `chromium` on PATH, else /usr/bin/chromium; None when none exists."""
    configured = os.environ.get("EDGESIM_CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return DEFAULT_CHROMIUM if os.access(DEFAULT_CHROMIUM, os.X_OK) else None


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    executable = find_chromium()
    if executable is None:
        configured = os.environ.get("EDGESIM_CHROMIUM")
        pytest.skip(f"EDGESIM_CHROMIUM={configured} is not an executable" if configured else NO_CHROMIUM)
    return executable


@pytest.fixture(scope="package")
def browser(chromium_executable: str) -> Iterator[Browser]:
    """One headless Chromium for the package's tests (package scope: Playwright's event loop ends with them)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT)
    playwright = sync_api.sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=chromium_executable, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    folder = Path(os.environ.get("EDGESIM_TEST_ARTIFACTS") or ROOT / "build" / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def artifact_stem(node: pytest.Item) -> str:
    """A file-name-safe, unique-per-test stem: `test_web_page-test_x-param`."""
    module = Path(str(node.fspath)).stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{module}-{node.name}").strip("-")


@pytest.fixture
def save_screenshot(request: pytest.FixtureRequest, artifacts_dir: Path) -> Callable[[Page, str], Path]:
    def save(page: Page, name: str) -> Path:
        path = artifacts_dir / f"{artifact_stem(request.node)}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


class PageFactory:
    """Opens pages, each in its own context (no shared cookies or cache); remembers them to close."""

    def __init__(self, browser: Browser) -> None:
        self._browser = browser
        self.contexts: list[BrowserContext] = []
        self.pages: list[Page] = []
        self.errors: list[str] = []  # uncaught exceptions in any page's JavaScript
        self.console: list[str] = []

    def __call__(self, url: str, *, width: int = 1280, height: int = 900) -> Page:
        context = self._browser.new_context(viewport={"width": width, "height": height}, service_workers="block")
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        self.pages.append(page)
        page.goto(url)
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()
        self.pages.clear()


@pytest.fixture
def browser_page(request: pytest.FixtureRequest, browser: Browser, artifacts_dir: Path) -> Iterator[PageFactory]:
    factory = PageFactory(browser)
    try:
        yield factory
    finally:
        try:
            report = request.node.stash.get(CALL_REPORT, None)
            if report is not None and report.failed:
                _keep_evidence(factory, artifacts_dir / artifact_stem(request.node))
        finally:
            factory.close()


def _keep_evidence(factory: PageFactory, stem: Path) -> None:
    """Screenshots of every open page and the console lines, for a failed test."""
    for index, page in enumerate(factory.pages):
        if not page.is_closed():
            page.screenshot(path=f"{stem}-failed-{index}.png", full_page=True)
    lines: list[Any] = [*factory.console, *(f"pageerror: {e}" for e in factory.errors)]
    Path(f"{stem}-console.log").write_text("\n".join(map(str, lines)) + "\n")


# The end-to-end page test runs a real device on a simulated cloud (tests/edge_world.py).
from tests.edge_world import packages, world  # noqa: E402
from tests.moto_fixtures import unique_name  # noqa: E402
from tests.mqtt_fixtures import start_mosquitto  # noqa: E402

__all__ = ["packages", "start_mosquitto", "unique_name", "world"]
