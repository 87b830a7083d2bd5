"""Sign-in, the playground (trained model and zero-shot), escaping of model data and the phone layout."""

from __future__ import annotations

import httpx

from tests.e2e.requirements import need_selenium

need_selenium()

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

from tests.e2e.browser import Browser  # noqa: E402
from tests.e2e.conftest import HOSTILE_LABEL, Site  # noqa: E402

TICKET = "I was charged twice this month, please refund the payment on my card"


def api(site: Site, key: str) -> httpx.Client:
    return httpx.Client(base_url=site.base, headers={"x-api-key": key}, timeout=10)


def test_sign_in_rejects_a_wrong_key_keeps_the_right_one_in_the_tab_and_signs_out(browser: Browser, site: Site) -> None:
    assert browser.unlabelled_controls() == []
    field = browser.wait_for("#api-key")
    field.send_keys("lw_deadbeef_not-a-real-secret")
    browser.find("form button[type=submit]").click()
    error = browser.wait_for_text("[role=alert]", "not accepted")
    assert "lw_" in error.text  # tells the user what a key looks like
    browser.screenshot("sign-in-wrong-key")
    assert not browser.find("#nav").is_displayed()
    assert not browser.find("#sign-out").is_displayed()
    assert browser.js("return sessionStorage.getItem('labelwise.key')") is None

    browser.sign_in(site.classify_key)
    prefix = site.classify_key.split("_")[1]
    assert browser.find("#key-chip").text == f"lw_{prefix}"
    assert browser.js("return sessionStorage.getItem('labelwise.key')") == site.classify_key
    assert site.classify_key not in browser.driver.current_url
    assert site.classify_key.split("_", 2)[2] not in browser.js("return document.body.innerText")

    browser.find("#sign-out").click()
    browser.wait_for_text("[role=status]", "signed out")
    browser.wait_for("#api-key")
    assert not browser.find("#sign-out").is_displayed()
    assert browser.js("return sessionStorage.getItem('labelwise.key')") is None


def test_classify_shows_ranked_labels_the_decision_and_latency(browser: Browser, site: Site) -> None:
    browser.sign_in(site.classify_key)
    browser.wait_for("#model option[value='support']")
    assert browser.unlabelled_controls() == []
    Select(browser.find("#model")).select_by_value("support")
    browser.find("#text").send_keys(TICKET)
    browser.find("#text").send_keys(Keys.CONTROL, Keys.ENTER)
    browser.wait_for("#result .bar-row")

    with api(site, site.classify_key) as client:
        expected = client.post("/v1/classify", json={"text": TICKET, "model": "support", "top_k": 5}).json()
    shown = [row.find_element(By.CSS_SELECTOR, ".bar-name").text for row in browser.find_all("#result .bar-row")]
    assert shown == [item["label"] for item in expected["labels"]]
    assert shown[0] == "billing"
    decision = [chip.text for chip in browser.find_all("#result .decision .chip")]
    assert decision == expected["predicted"] == ["billing"]
    assert browser.find("#result .bar-row.chosen .bar-name").text == "billing"
    first_score = browser.find("#result .bar-row .bar-score").text
    assert first_score == f"{expected['labels'][0]['score'] * 100:.1f}%"
    assert browser.find("#result .latency").text.endswith("ms")
    assert browser.find("#result-live").get_attribute("aria-live") == "polite"
    browser.js("document.activeElement.blur();")
    browser.screenshot("playground", docs=True)


def test_zero_shot_shows_the_servers_answer_or_its_error_cleanly(browser: Browser, site: Site) -> None:
    browser.sign_in(site.classify_key)
    browser.wait_for("label[for=mode-zeroshot]").click()
    keys = browser.find_all("#zeroshot-panel .cat-key")
    descriptions = browser.find_all("#zeroshot-panel .cat-desc")
    keys[0].send_keys("refund")
    descriptions[0].send_keys("money back for a purchase")
    keys[1].send_keys("delivery")
    browser.find("#add-label").click()
    browser.find_all("#zeroshot-panel .cat-key")[2].send_keys("login")
    browser.find("#text").send_keys("Where is my refund?")
    browser.find("#classify").click()

    categories = [
        {"key": "refund", "description": "money back for a purchase"},
        {"key": "delivery", "description": ""},
        {"key": "login", "description": ""},
    ]
    with api(site, site.classify_key) as client:
        truth = client.post(
            "/v1/classify", json={"text": "Where is my refund?", "top_k": 5, "threshold": 0.0, "categories": categories}
        )
    if truth.status_code == 400:  # zero-shot is not built yet: the server's message, cleanly, and no stale result
        error = browser.wait_for("#result [role=alert]")
        assert truth.json()["error"]["message"] in error.text
        assert "Zero-shot failed" in error.text
        assert browser.find_all("#result .bar-row") == []
    else:
        browser.wait_for("#result .bar-row")
        labels = [e.text for e in browser.find_all("#result .bar-name")]
        assert labels == [item["label"] for item in truth.json()["labels"]]
    browser.screenshot("zero-shot")


def test_model_data_is_shown_as_text_never_run_as_html(browser: Browser, site: Site) -> None:
    browser.sign_in(site.classify_key)
    browser.wait_for("#model option[value='edge']")
    Select(browser.find("#model")).select_by_value("edge")
    browser.find("#text").send_keys("sunny rain all week")
    browser.find("#classify").click()
    label = browser.wait_for_text("#result .bar-name", "onerror")
    assert label.text == HOSTILE_LABEL
    assert browser.find_all("#result img") == []
    assert browser.js("return window.__xss === undefined")


def test_phone_layout_has_no_horizontal_scroll(browser: Browser, site: Site) -> None:
    browser.driver.set_window_size(390, 844)
    browser.sign_in(site.classify_key)
    browser.wait_for("#model option[value='support']")
    for route, ready in (("#/playground", "#classify"), ("#/models", ".model-card"), ("#/models/support", ".plot img")):
        browser.go(route)
        browser.wait_for(ready)
        overflow = browser.js("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{route} scrolls sideways by {overflow}px on a phone: {browser.too_wide()}"
    browser.screenshot("model-phone", full_page=True)
    browser.go("#/playground")
    browser.wait_for("#classify")
    browser.screenshot("playground-phone")


def test_explanations_show_the_words_that_pushed_the_top_label(browser: Browser, site: Site) -> None:
    browser.sign_in(site.classify_key)
    browser.wait_for("#model option[value='support']")
    Select(browser.find("#model")).select_by_value("support")
    browser.find("details.options summary").click()
    browser.wait_for("#explain").click()
    browser.find("#text").send_keys(TICKET)
    browser.find("#classify").click()
    section = browser.wait_for("#explanation")

    with api(site, site.classify_key) as client:
        expected = client.post(
            "/v1/classify", json={"text": TICKET, "model": "support", "top_k": 5, "explain": True}
        ).json()
    top = expected["predicted"][0]
    assert section.get_attribute("data-label") == top == "billing"
    assert top in browser.find("#explain-title").text
    explanation = next(e for e in expected["explanations"] if e["label"] == top)
    assert explanation["method"] == "linear"
    shown = [chip.text for chip in browser.find_all("#explanation .chip .term")]
    best = sorted(explanation["terms"], key=lambda t: -t["weight"])
    assert shown == [t["term"] for t in best][: len(shown)]
    assert shown
    assert len(shown) == min(len(best), 12)
    assert any(word in term for term in shown for word in ("charged", "refund", "payment", "invoice"))
    browser.js("document.activeElement.blur();")
    browser.screenshot("playground-explanation")
