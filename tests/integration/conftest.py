"""Fixtures of the integration tests: the shared Redis of the test run."""

from __future__ import annotations

import pytest
from tests.support.services import checked_redis_url


@pytest.fixture
def redis_url() -> str:
    """The Redis at LABELWISE_TEST_REDIS_URL, checked to answer (use a fresh key prefix with it)."""
    return checked_redis_url()
