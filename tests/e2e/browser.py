"""A thin page helper over Selenium: waits with deadlines (never fixed sleeps), sign-in, screenshots, console."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.webdriver import WebDriver as Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

T = TypeVar("T")
DEADLINE_SECONDS = 10.0
DESKTOP = (1280, 860)
# Failed fetches (401 on a wrong key, 404 from an API not built yet) are expected; the UI handles them.
_EXPECTED_CONSOLE = ("Failed to load resource",)


class Browser:
    """The UI in one tab of a shared Chromium."""

    def __init__(self, driver: Chrome, base: str, artifacts: Path, docs: Path | None) -> None:
        self.driver = driver
        self.base = base
        self.artifacts = artifacts
        self.docs = docs

    # Navigation -------------------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Signed out, desktop size, at the UI, with the console drained of earlier tests' messages."""
        self.driver.set_window_size(*DESKTOP)
        self.driver.get(self.base + "/")
        self.driver.execute_script("sessionStorage.clear(); location.hash = '#/playground';")
        self.driver.refresh()
        self.wait_for("#api-key")
        self.driver.get_log("browser")

    def go(self, route: str) -> None:
        self.driver.execute_script("location.hash = arguments[0];", route)

    def sign_in(self, key: str) -> None:
        field = self.wait_for("#api-key")
        field.clear()
        field.send_keys(key)
        self.find("form button[type=submit]").click()
        self.wait_for("#nav:not([hidden])")

    # Finding and waiting ----------------------------------------------------------------------------------------

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def until(self, condition: Callable[[WebDriver], T | None], what: str, timeout: float = DEADLINE_SECONDS) -> T:
        """Poll `condition` until it returns something truthy; fail naming `what` after the deadline."""
        wait = WebDriverWait(
            self.driver, timeout, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
        )
        try:
            return cast(T, wait.until(condition))
        except TimeoutException:
            self.screenshot("timeout")
            raise AssertionError(f"waited {timeout} s for {what}") from None

    def wait_for(self, css: str, timeout: float = DEADLINE_SECONDS) -> WebElement:
        """The first element matching `css` once it is displayed."""

        def shown(driver: WebDriver) -> WebElement | None:
            for element in driver.find_elements(By.CSS_SELECTOR, css):
                if element.is_displayed():
                    return element
            return None

        return self.until(shown, f"{css!r} to be shown", timeout)

    def wait_for_text(self, css: str, text: str, timeout: float = DEADLINE_SECONDS) -> WebElement:
        """The first displayed element matching `css` whose text contains `text`."""

        def has_text(driver: WebDriver) -> WebElement | None:
            for element in driver.find_elements(By.CSS_SELECTOR, css):
                if element.is_displayed() and text in element.text:
                    return element
            return None

        return self.until(has_text, f"{css!r} to show {text!r}", timeout)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    # Evidence ---------------------------------------------------------------------------------------------------

    def screenshot(self, name: str, *, docs: bool = False, full_page: bool = False) -> Path:
        """Save the viewport (or the whole page) as `test-artifacts/e2e/<name>.png` (and in docs/ when asked)."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        path = self.artifacts / f"{name}.png"
        size = self.driver.get_window_size()
        if full_page:
            # The window's height includes the browser's own bars: add them so the whole document fits.
            height = int(
                self.js("return document.documentElement.scrollHeight + window.outerHeight - window.innerHeight;")
            )
            self.driver.set_window_size(size["width"], height)
        try:
            self.driver.save_screenshot(str(path))
        finally:
            if full_page:
                self.driver.set_window_size(size["width"], size["height"])
        if docs and self.docs is not None:
            self.docs.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, self.docs / f"{name}.png")
        return path

    def console_errors(self) -> list[str]:
        """Severe console messages (script errors, CSP violations) other than expected failed fetches."""
        entries = self.driver.get_log("browser")
        return [
            e["message"]
            for e in entries
            if e.get("level") == "SEVERE" and not any(known in e["message"] for known in _EXPECTED_CONSOLE)
        ]

    def too_wide(self) -> list[str]:
        """The innermost elements that reach past the right edge of the viewport (to explain sideways scrolling)."""
        return list(
            self.js(
                """
                const wide = [...document.querySelectorAll('body *')]
                  .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1);
                return wide.filter((el) => !wide.some((other) => other !== el && el.contains(other)))
                  .slice(0, 5).map((el) => `${el.tagName.toLowerCase()}.${el.className}`);
                """
            )
        )

    def unlabelled_controls(self) -> list[str]:
        """Form controls on the page without an accessible name (no label, aria-label or aria-labelledby)."""
        return list(
            self.js(
                """
                return [...document.querySelectorAll('input, select, textarea, button')]
                  .filter((el) => el.offsetParent !== null || el.type === 'radio')
                  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                    && !el.getAttribute('aria-labelledby') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
                  .map((el) => el.outerHTML.slice(0, 120));
                """
            )
        )
