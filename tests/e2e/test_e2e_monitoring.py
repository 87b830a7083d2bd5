"""Monitoring in the UI: the review queue records feedback, and the model page shows drift once there is traffic."""

from __future__ import annotations

from functools import partial

import httpx

from labelwise.storage.monitoring import FeedbackRepository
from tests.e2e.requirements import need_selenium

need_selenium()

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

from tests.e2e.browser import Browser  # noqa: E402
from tests.e2e.conftest import Site  # noqa: E402

TEXTS = (
    "hello my parcel is late and I was charged twice",
    "I cannot log in and the app crashes",
    "thanks the delivery address needs to change on my account",
    "the page shows an error on my invoice",
)


def classify(site: Site, key: str, texts: tuple[str, ...]) -> list[str]:
    """Classify each text with `support` through the API; their request ids."""
    with httpx.Client(base_url=site.base, headers={"x-api-key": key}, timeout=10) as client:
        answers = [client.post("/v1/classify", json={"text": text, "model": "support"}) for text in texts]
    assert all(answer.status_code == 200 for answer in answers)
    return [answer.json()["request_id"] for answer in answers]


def current_item(browser: Browser) -> tuple[str, str]:
    article = browser.wait_for("article.review-item")
    return str(article.get_attribute("data-request-id")), str(article.get_attribute("data-index"))


def moved_on(browser: Browser, shown: tuple[str, str], _driver: object) -> bool:
    """True once the queue shows another item than `shown`, or none."""
    return not browser.find_all("article.review-item") or current_item(browser) != shown


def test_review_records_a_label_by_key_and_by_click_and_the_item_leaves_the_queue(browser: Browser, site: Site) -> None:
    sent = set(classify(site, site.classify_key, TEXTS))
    browser.sign_in(site.admin_key)
    browser.go("#/review")
    browser.wait_for("#review-model option[value='support']")
    Select(browser.find("#review-model")).select_by_value("support")
    browser.until(lambda _d: current_item(browser)[0] in sent or None, "one of the logged predictions in the queue")
    assert browser.unlabelled_controls() == []
    browser.screenshot("review", docs=True)
    repo = FeedbackRepository(site.fx.db)
    before = len(repo.for_model("support"))

    recorded: list[tuple[str, str]] = []
    for how in ("key", "click"):
        request_id, index = current_item(browser)
        buttons = browser.find_all(".label-choice")
        label = str(buttons[1].get_attribute("data-label"))
        if how == "key":
            ActionChains(browser.driver).send_keys("2").perform()
        else:
            buttons[1].click()
        browser.until(partial(moved_on, browser, (request_id, index)), f"the reviewed item to leave the queue ({how})")
        recorded.append((request_id, label))

    stored = repo.for_model("support")[before:]
    assert [(entry.request_id, entry.labels) for entry in stored] == [(rid, [label]) for rid, label in recorded]
    assert all(entry.raw_text for entry in stored), "the logged text was kept, so the correction can train"

    browser.driver.refresh()  # reviewed items stay out of the queue for the tab
    browser.wait_for("#review-model option[value='support']")
    Select(browser.find("#review-model")).select_by_value("support")
    browser.wait_for(".review-stage .card")
    if browser.find_all("article.review-item"):
        assert current_item(browser)[0] not in {rid for rid, _ in recorded}


def test_model_page_shows_drift_for_a_model_with_traffic(browser: Browser, site: Site) -> None:
    classify(site, site.classify_key, TEXTS * 3)
    with httpx.Client(base_url=site.base, headers={"x-api-key": site.classify_key}, timeout=10) as client:
        expected = client.get("/v1/models/support/drift").json()
    assert expected["predictions"] >= len(TEXTS) * 3
    browser.sign_in(site.classify_key)
    browser.go("#/models/support")
    status = browser.wait_for("#drift-status")
    assert status.get_attribute("data-status") == expected["status"] != "no_data"
    facts = browser.find("#drift-facts").text
    assert f"{expected['psi']:.3f}" in facts
    assert str(expected["predictions"]) in facts
    bars = browser.find_all("#drift-chart .drift-row")
    labels = {*expected["distribution"], *expected["baseline_distribution"]}
    assert sorted(bar.text for bar in bars) == sorted(labels)
    assert browser.unlabelled_controls() == []
    browser.js("document.getElementById('drift').scrollIntoView();")
    browser.screenshot("model-drift")

    since = browser.find("#drift-since").text
    Select(browser.find("#drift-window")).select_by_value("1h")
    browser.until(lambda _d: browser.find("#drift-since").text != since or None, "the 1 h window to load")
    assert "Stable" in browser.find("#drift-status").text or expected["status"] != "stable"


def test_review_shows_abstained_predictions_first_and_sends_them_to_label_studio(browser: Browser, site: Site) -> None:
    # Words the model never saw, and a rule that cannot be met: the model abstains on this text.
    with httpx.Client(base_url=site.base, headers={"x-api-key": site.classify_key}, timeout=10) as client:
        answer = client.post("/v1/classify", json={"text": "qzx vlorp wibble", "model": "support", "min_confidence": 1})
    assert answer.json()["abstained"] is True
    browser.sign_in(site.admin_key)
    browser.go("#/review")
    browser.wait_for("#review-model option[value='support']")
    Select(browser.find("#review-model")).select_by_value("support")
    article = browser.wait_for("article.review-item")
    assert article.get_attribute("data-abstained") == "true"
    assert "abstained" in article.text
    assert browser.unlabelled_controls() == []
    # One action sends the queue; this site has no Label Studio, so the answer names the setting to set.
    browser.find("#label-studio-project").send_keys("7")
    browser.find("#label-studio-export button[type='submit']").click()
    browser.wait_for_text("#label-studio-export .form-status", "LABELWISE_LABEL_STUDIO_URL")
