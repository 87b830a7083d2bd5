"""Rate limits as written in settings and key records (`20/second; 1000/minute`, or `unlimited`).

Parsing is kept apart from the limiter (services/limits.py) because settings validate these strings too, and
settings sit below every service: a pure function of the string, with the `limits` library's grammar.
"""

from __future__ import annotations

from limits import RateLimitItem, parse_many

from labelwise.errors import InvalidRequest

UNLIMITED = "unlimited"


def parse_rate_limit(value: str, *, param: str = "rate_limit") -> list[RateLimitItem]:
    """`20/second; 1000/minute` as limits items; `unlimited` as none. `InvalidRequest` naming `param` otherwise."""
    text = value.strip()
    if text.lower() == UNLIMITED:
        return []
    try:
        items = parse_many(text)
    except ValueError:
        raise InvalidRequest(
            f"{param}: {value[:80]!r} is not a rate limit; write e.g. '20/second; 1000/minute' or 'unlimited'",
            param=param,
        ) from None
    if any(item.amount < 1 for item in items):
        raise InvalidRequest(f"{param}: each limit must allow at least 1 request ({value[:80]!r})", param=param)
    if len({item.get_expiry() for item in items}) != len(items):
        raise InvalidRequest(f"{param}: two limits share one window length ({value[:80]!r})", param=param)
    return items


def canonical_rate_limit(value: str, *, param: str = "rate_limit") -> str:
    """The stored form of a valid rate limit: `20/1 second; 1000/1 minute` style, or `unlimited`."""
    items = parse_rate_limit(value, param=param)
    return "; ".join(_describe(item) for item in items) if items else UNLIMITED


def _describe(item: RateLimitItem) -> str:
    unit = item.GRANULARITY.name
    return f"{item.amount}/{unit}" if item.multiples == 1 else f"{item.amount}/{item.multiples} {unit}s"
