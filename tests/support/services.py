"""Helpers for tests that run real processes: free loopback ports, and the rule for a missing service."""

from __future__ import annotations

import os
import socket

import pytest


def require_service(what: str) -> None:
    """A service a test needs is missing: a failure under LABELWISE_REQUIRE_SERVICES (CI), else a skip."""
    if os.environ.get("LABELWISE_REQUIRE_SERVICES"):
        pytest.fail(what)
    pytest.skip(what)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def checked_redis_url() -> str:
    """The Redis at LABELWISE_TEST_REDIS_URL, checked to answer (use a fresh key prefix with it)."""
    import redis

    url = os.environ.get("LABELWISE_TEST_REDIS_URL")
    if not url:
        require_service("LABELWISE_TEST_REDIS_URL is not set")
    assert url is not None
    try:
        redis.Redis.from_url(url, socket_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at LABELWISE_TEST_REDIS_URL is unreachable: {type(exc).__name__}")
    return url
