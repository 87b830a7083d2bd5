"""What the browser tests need besides Labelwise: the selenium package (Chromium itself is checked in conftest)."""

from __future__ import annotations

import os

import pytest

INSTALL_HINT = "apt-get install chromium chromium-driver; pip install selenium"


def unavailable(reason: str) -> None:
    """Skip with the reason, or fail when `LABELWISE_REQUIRE_SERVICES` says these tests must run (CI)."""
    if os.environ.get("LABELWISE_REQUIRE_SERVICES"):
        pytest.fail(f"browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason} ({INSTALL_HINT})", allow_module_level=True)


def need_selenium() -> None:
    """Called by each browser test module before it imports selenium."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        unavailable("the selenium package is not installed")
