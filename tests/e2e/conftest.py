"""Browser tests: headless Chromium (Selenium) against a live uvicorn server on loopback with real trained models.

Chromium and its driver come from the system (`apt-get install chromium chromium-driver`, or the paths in
`LABELWISE_CHROMIUM` and `LABELWISE_CHROMEDRIVER`); nothing is downloaded.
When they are missing the tests are skipped with the reason, or fail when `LABELWISE_REQUIRE_SERVICES` is set (CI).
Screenshots go to `test-artifacts/e2e/`; with `LABELWISE_DOCS_SCREENSHOTS=1` the README's are refreshed too.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from labelwise.api import create_app
from labelwise.domain import LabeledTexts, ModelVersion
from labelwise.services.training import ModelService, TrainRequest
from tests.api.serving_fakes import Fixture, make_settings, reset_keyword_engine, serving, trained
from tests.conftest import REPO
from tests.e2e.data import write_tickets
from tests.e2e.requirements import need_selenium, unavailable

if TYPE_CHECKING:
    from tests.e2e.browser import Browser

ARTIFACTS = REPO / "test-artifacts" / "e2e"
DOCS_SCREENSHOTS = REPO / "docs" / "screenshots"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
DRIVER_CANDIDATES = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
# A label that would run script if the UI ever put model data into HTML.
HOSTILE_LABEL = '<img src=x onerror="window.__xss=1">'


def _first(candidates: tuple[str, ...], name: str, variable: str) -> str | None:
    """`$variable` when set (and only it), else the first of `candidates` or `name` on PATH that is executable."""
    chosen = os.environ.get(variable)
    for path in (chosen,) if chosen else (*candidates, shutil.which(name)):
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    return None


@dataclass(frozen=True)
class Site:
    """The server under test and what lives in it."""

    base: str
    fx: Fixture
    classify_key: str
    admin_key: str
    versions: list[ModelVersion]


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A live server with `support` (linear, two versions with reports) and `edge` (a hostile label); it logs raw
    texts (for the review queue) and runs its embedded job worker."""
    reset_keyword_engine()
    root = tmp_path_factory.mktemp("e2e")
    # Raw texts are logged so the review queue fills; quick flushes and polls keep the tests' waits short.
    settings = make_settings(
        root / "data",
        f"sqlite:///{root / 'labelwise.db'}",
        log_json=False,
        log_raw_text=True,
        prediction_log_flush_seconds=0.2,
        worker_poll_seconds=0.1,
    )
    fx = Fixture(settings)
    service = ModelService(fx.store)
    versions = []
    for per_label, seed in ((50, 1), (90, 2)):
        data = write_tickets(root / f"tickets-{seed}.csv", per_label=per_label, seed=seed)
        record, _ = service.train(TrainRequest(name="support", train=data, engine="linear"))
        versions.append(record)
    hostile = LabeledTexts(["weather sunny rain", "goal match team"], [(HOSTILE_LABEL,), ("sports",)])
    fx.publish("edge", trained(train=hostile))
    classify_key = fx.key("classify")
    admin_key = fx.key("admin")
    try:
        with serving(create_app(settings)) as base:
            yield Site(base, fx, classify_key, admin_key, versions)
    finally:
        fx.close()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the whole run (a fresh profile); each test starts from a blank tab."""
    need_selenium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = _first(CHROMIUM_CANDIDATES, "chromium", "LABELWISE_CHROMIUM")
    driver_path = _first(DRIVER_CANDIDATES, "chromedriver", "LABELWISE_CHROMEDRIVER")
    if binary is None or driver_path is None:
        unavailable("chromium or chromedriver is not installed")
        raise AssertionError("unreachable: `unavailable` always raises")
    profile = tempfile.mkdtemp(prefix="labelwise-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--force-device-scale-factor=1", "--hide-scrollbars", "--lang=en-US",
        f"--user-data-dir={profile}", "--window-size=1280,860",
    ):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(chromium: Any, site: Site, request: pytest.FixtureRequest) -> Iterator[Browser]:
    """The shared Chromium, signed out, at the UI; fails the test on any script error or CSP violation."""
    from tests.e2e.browser import Browser

    page = Browser(
        chromium, site.base, ARTIFACTS, DOCS_SCREENSHOTS if os.environ.get("LABELWISE_DOCS_SCREENSHOTS") else None
    )
    page.reset()
    yield page
    problems = page.console_errors()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        page.screenshot(f"failed-{request.node.name}")
    assert not problems, f"browser console errors: {problems}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item, so a fixture can save a screenshot when the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
