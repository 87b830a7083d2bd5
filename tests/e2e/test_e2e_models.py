"""The models list, a model page with its training report, and alias promotion with an admin key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.requirements import need_selenium

need_selenium()

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402

from tests.e2e.browser import Browser  # noqa: E402
from tests.e2e.conftest import Site  # noqa: E402

PLOTS = ("confusion_matrix", "reliability", "per_label_f1")
DECODED = "return arguments[0].complete && arguments[0].naturalWidth > 100"


def aliases(site: Site) -> dict[str, str]:
    with httpx.Client(base_url=site.base, headers={"x-api-key": site.classify_key}, timeout=10) as client:
        body: dict[str, str] = client.get("/v1/models/support").json()["aliases"]
        return body


@pytest.fixture
def restore_aliases(site: Site) -> Iterator[None]:
    """Tests that move aliases put them back, so the shared server looks the same to every test."""
    before = aliases(site)
    yield
    for alias in set(aliases(site)) - set(before) | {"production"}:
        if alias != "latest":
            site.fx.models.remove_alias("support", alias)


def wait_for_plots(browser: Browser) -> list[WebElement]:
    """The three report plots, once each has loaded and decoded into a real image."""
    images = []
    for plot in PLOTS:
        image = browser.wait_for(f"figure[data-plot={plot}] img")

        def decoded(_driver: object, img: WebElement = image) -> bool:
            return bool(browser.js(DECODED, img))

        browser.until(decoded, f"the {plot} plot to load")
        images.append(image)
    return images


def test_models_list_shows_versions_aliases_and_metrics(browser: Browser, site: Site) -> None:
    browser.sign_in(site.classify_key)
    browser.go("#/models")
    card = browser.wait_for_text(".model-card", "support")
    assert "2 versions" in card.text
    chips = [chip.text for chip in card.find_elements(By.CSS_SELECTOR, ".chips .chip")]
    newest = site.versions[-1].version
    assert f"production → {newest}" in chips
    assert "ACCURACY" in card.text.upper()
    accuracy = site.versions[-1].metrics["headline"]["accuracy"]
    assert f"{accuracy * 100:.1f}%" in card.text
    browser.screenshot("models")
    card.find_element(By.CSS_SELECTOR, "a.model-link").click()
    browser.wait_for_text("h1", "support")


def test_model_page_shows_the_report_with_its_plots_and_no_drift_yet(browser: Browser, site: Site) -> None:
    browser.sign_in(site.classify_key)
    browser.go("#/models/support")
    browser.wait_for_text("#report-title", site.versions[-1].version)
    for image in wait_for_plots(browser):
        assert (image.get_attribute("src") or "").startswith("blob:"), "plots are fetched with the key, not by URL"
        assert image.get_attribute("alt")
    metrics = browser.find(".metrics-table").text
    assert "Accuracy" in metrics
    assert "Macro F1" in metrics
    per_label = browser.find(".per-label-table").text
    for label in ("account", "billing", "shipping", "technical"):
        assert label in per_label
    browser.wait_for_text("#drift-empty", "No drift data")
    assert browser.unlabelled_controls() == []

    older = site.versions[0].version
    browser.find(f"a[href='#/models/support/{older}']").click()
    browser.wait_for_text("#report-title", older)
    browser.wait_for("figure[data-plot=confusion_matrix] img")


def test_admin_promotes_an_older_version_and_removes_the_alias(
    browser: Browser, site: Site, restore_aliases: None
) -> None:
    older, newer = (v.version for v in site.versions)
    browser.sign_in(site.admin_key)
    browser.go("#/models/support")
    wait_for_plots(browser)
    browser.wait_for("#drift-empty")
    assert browser.unlabelled_controls() == []
    browser.js("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0);")
    browser.screenshot("model", docs=True, full_page=True)
    browser.wait_for(f"button[data-promote='{older}']").click()
    browser.wait_for_text("[role=status]", f"production now points to {older}")
    assert aliases(site)["production"] == older
    audit = [row for row in site.fx.keys.repo.audit_log() if row.action == "model.alias.set"]
    assert audit[0].target == "support@production"
    assert audit[0].details["version"] == older
    assert browser.find(f"button[data-promote='{newer}']").is_displayed()

    remove = browser.wait_for_text(".alias-list li", "production")
    remove.find_element(By.CSS_SELECTOR, "button").click()
    browser.wait_for_text("[role=status]", "Alias production removed")
    assert aliases(site)["production"] == newer


def test_a_classify_key_sees_the_model_read_only(browser: Browser, site: Site) -> None:
    browser.sign_in(site.classify_key)
    browser.go("#/models/support")
    note = browser.wait_for("#alias-readonly")
    assert "admin scope" in note.text
    assert browser.find_all("button[data-promote]") == []
    assert browser.find_all("#set-alias") == []


def status_of(site: Site, method: str, url: str) -> int:
    """What the server itself answers, so each page is checked against the API as it is today."""
    with httpx.Client(base_url=site.base, headers={"x-api-key": site.admin_key}, timeout=10) as client:
        return client.request(method, url).status_code


def test_usage_shows_the_ledger_or_says_it_is_not_offered(browser: Browser, site: Site) -> None:
    browser.sign_in(site.classify_key)
    browser.go("#/usage")
    if status_of(site, "GET", "/v1/usage") == 404:
        browser.wait_for_text("[role=status]", "not available on this server")
        return
    with httpx.Client(base_url=site.base, headers={"x-api-key": site.classify_key}, timeout=10) as client:
        total = client.get("/v1/usage").json()["total"]
    tiles = browser.wait_for("#usage-totals").text
    assert f"REQUESTS\n{total['requests']:,}" in tiles.upper()
    browser.screenshot("usage")


def test_jobs_and_review_say_plainly_when_this_server_does_not_offer_them(
    browser: Browser, site: Site, tmp_path: Path
) -> None:
    browser.sign_in(site.classify_key)
    if status_of(site, "GET", "/v1/review?model=support") == 404:
        browser.go("#/review")
        browser.wait_for_text("[role=status]", "not available on this server")
    upload = tmp_path / "texts.csv"
    upload.write_text("text\nmy parcel is late\n")
    browser.go("#/jobs")
    if status_of(site, "POST", "/v1/jobs") in (404, 405):
        browser.wait_for("#job-file").send_keys(str(upload))
        browser.find("#classify-job button[type=submit]").click()
        browser.wait_for_text("#classify-job [role=status]", "not available on this server")
    if status_of(site, "POST", "/v1/models") in (404, 405):
        browser.wait_for("#train-file").send_keys(str(upload))
        browser.find("#train-name").send_keys("tickets")
        browser.find("#train-job button[type=submit]").click()
        browser.wait_for_text("#train-job [role=status]", "not available on this server")
    assert browser.unlabelled_controls() == []
    browser.screenshot("jobs")
