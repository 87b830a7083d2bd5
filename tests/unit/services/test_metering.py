"""Limits, credits and usage as services: parsing and validation, the atomic debit on SQLite and PostgreSQL, the
usage ledger's upsert and flush, and the limiter's fallback when Redis cannot be reached."""

from __future__ import annotations

import asyncio
import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from labelwise.errors import Forbidden, InsufficientBalance, InvalidRequest, StorageUnavailable
from labelwise.rate_limit import canonical_rate_limit, parse_rate_limit
from labelwise.services.credits import Billing, CreditService, Payer, PriceList
from labelwise.services.keys import KeyChanges, KeyService, Principal
from labelwise.services.limits import (
    LimiterBackend,
    RateDecision,
    RequestLimiter,
    WindowState,
)
from labelwise.services.usage import UsageMeter, report_window, visible_key
from labelwise.storage.db import Database
from labelwise.storage.repositories import KeyRepository, UsageEntry, UsageRepository
from labelwise.storage.tables import ApiKeyRow

DAY = date(2026, 11, 28)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("20/second; 1000/minute", "20/second; 1000/minute"),
        ("20 per second, 1000 per minute", "20/second; 1000/minute"),
        ("10/5 minutes", "10/5 minutes"),
        ("Unlimited", "unlimited"),
    ],
)
def test_rate_limits_parse_to_one_canonical_form(text: str, canonical: str) -> None:
    assert canonical_rate_limit(text) == canonical
    assert canonical_rate_limit(canonical) == canonical


@pytest.mark.parametrize("bad", ["", "fast", "20/fortnight", "0/second", "5/second; 6/second", "20/second;"])
def test_bad_rate_limits_name_the_field(bad: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_rate_limit(bad, param="default_rate_limit")
    assert info.value.param == "default_rate_limit"
    assert info.value.message.startswith("default_rate_limit: ")


def test_retry_after_comes_from_the_refusing_window() -> None:
    window = WindowState(amount=10, window=60, remaining=0, reset=17)
    assert RateDecision((window,), window).retry_after == 17
    assert RateDecision((WindowState(10, 60, 0, 0),), WindowState(10, 60, 0, 0)).retry_after == 1
    assert RateDecision((window,)).allowed


def test_prices_by_engine_with_a_default() -> None:
    prices = PriceList({"linear": 1, "embedding": 5}, default=2)
    assert (prices.cost("linear", 3), prices.cost("embedding", 3), prices.cost("custom", 3)) == (3, 15, 6)


@pytest.fixture
def keys(database: Database) -> KeyService:
    return KeyService(KeyRepository(database))


def test_debit_is_atomic_under_concurrent_threads(keys: KeyService) -> None:
    _, info = keys.create("k", settings=KeyChanges(credits=50))
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: keys.repo.debit(info.prefix, 1), range(100)))
    assert sum(1 for r in results if r is not None) == 50
    assert sorted(r for r in results if r is not None) == list(range(50))
    assert keys.get(info.prefix).credits == 0


def test_the_database_refuses_a_negative_balance(keys: KeyService, database: Database) -> None:
    _, info = keys.create("k", settings=KeyChanges(credits=1))
    with pytest.raises(IntegrityError), database.session() as session:
        session.execute(update(ApiKeyRow).where(ApiKeyRow.prefix == info.prefix).values(credits=-1))
    assert keys.update(info.prefix, KeyChanges(add_credits=-1)).credits == 0
    with pytest.raises(InvalidRequest, match="negative balance"):
        keys.update(info.prefix, KeyChanges(add_credits=-1))


@pytest.mark.anyio
async def test_billing_refunds_failed_work_and_records_only_success(keys: KeyService, database: Database) -> None:
    _, info = keys.create("k", settings=KeyChanges(credits=10))
    meter = UsageMeter(UsageRepository(database), today=lambda: DAY)
    billing = Billing(CreditService(keys.repo, PriceList({"linear": 3})), meter)
    payer = Payer(info.prefix, "/v1/batch", metered=True)
    seen = []

    async def failing_work() -> None:
        async with billing.billed(payer, "linear", ["a", "b"]) as charge:
            seen.append(charge.remaining)
            raise RuntimeError("inference failed")

    with pytest.raises(RuntimeError):
        await failing_work()
    assert seen == [4]
    assert keys.get(info.prefix).credits == 10
    async with billing.billed(payer, "linear", ["abc", "de"]) as charge:
        pass
    assert (charge.cost, charge.remaining) == (6, 4)
    with pytest.raises(InsufficientBalance):
        async with billing.billed(payer, "linear", ["a", "b"]):
            pytest.fail("work ran without being paid for")
    await meter.flush()
    assert meter.read(DAY, DAY).rows == [UsageEntry(info.prefix, DAY, "/v1/batch", 1, 2, 5, 6)]


class RefundsLost(KeyRepository):
    """Debits work; the database is gone by the time a refund is written."""

    def refund(self, prefix: str, amount: int) -> None:
        raise StorageUnavailable("storage unavailable: the database cannot be reached; retry later")


@pytest.mark.anyio
async def test_a_refund_the_database_cannot_take_is_logged_and_the_work_error_goes_on(
    keys: KeyService, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    _, info = keys.create("k", settings=KeyChanges(credits=10))
    meter = UsageMeter(UsageRepository(database), today=lambda: DAY)
    billing = Billing(CreditService(RefundsLost(database), PriceList({"linear": 3})), meter)
    with pytest.raises(RuntimeError, match="inference failed"):
        async with billing.billed(Payer(info.prefix, "/v1/batch", metered=True), "linear", ["a"]):
            raise RuntimeError("inference failed")
    lost = [r for r in caplog.records if r.getMessage().startswith("refund not written")]
    assert [(r.levelname, r.key, r.credits) for r in lost] == [("ERROR", info.prefix, 3)]  # type: ignore[attr-defined]
    assert meter.pending == 0  # failed work is not usage


@pytest.mark.anyio
async def test_usage_upsert_adds_to_existing_rows(database: Database) -> None:
    meter = UsageMeter(UsageRepository(database), today=lambda: DAY)
    for _ in range(3):
        meter.record("aaaa1111", "/v1/classify", texts=1, characters=10, credits=1)
    meter.record("bbbb2222", "/v1/batch", texts=4, characters=40, credits=4)
    await meter.flush()
    meter.record("aaaa1111", "/v1/classify", texts=1, characters=5, credits=1)
    await meter.flush()
    rows = meter.read(DAY - timedelta(days=1), DAY).rows
    assert rows == [
        UsageEntry("aaaa1111", DAY, "/v1/classify", 4, 4, 35, 4),
        UsageEntry("bbbb2222", DAY, "/v1/batch", 1, 4, 40, 4),
    ]
    assert meter.read(DAY, DAY, "bbbb2222").totals.texts == 4


class FlakyRepo(UsageRepository):
    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.fail = True

    def add(self, entries: object) -> None:  # type: ignore[override]
        if self.fail:
            self.fail = False
            raise ConnectionError("database away")
        super().add(entries)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_a_failed_flush_keeps_its_counts(database: Database) -> None:
    repo = FlakyRepo(database)
    meter = UsageMeter(repo, today=lambda: DAY)
    meter.record("aaaa1111", "/v1/classify", texts=2, characters=2, credits=2)
    with pytest.raises(ConnectionError):
        await meter.flush()
    meter.record("aaaa1111", "/v1/classify", texts=1, characters=1, credits=1)
    assert meter.pending == 1
    await meter.stop()  # the shutdown flush writes what is left
    assert meter.read(DAY, DAY).totals.texts == 3


def test_report_window_and_who_may_read_whose_usage() -> None:
    today = date(2026, 3, 31)
    assert report_window(None, None, days=7, today=today) == (date(2026, 3, 25), today)
    with pytest.raises(InvalidRequest, match="after"):
        report_window(date(2026, 4, 1), today)
    user = Principal("aaaa1111", "u", frozenset({"classify"}))
    admin = Principal("bbbb2222", "a", frozenset({"admin"}))
    assert visible_key(user, None) == "aaaa1111"
    assert visible_key(user, "aaaa1111") == "aaaa1111"
    with pytest.raises(Forbidden):
        visible_key(user, "bbbb2222")
    assert visible_key(admin, None) is None
    assert visible_key(admin, "lw_aaaa1111_secret") == "aaaa1111"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.anyio
async def test_unreachable_redis_falls_back_to_exact_per_process_limits(caplog: pytest.LogCaptureFixture) -> None:
    backend = LimiterBackend(f"redis://127.0.0.1:{closed_port()}/0", probe_seconds=60)
    limiter = RequestLimiter(backend, default_limit="5/minute")
    caplog.set_level(logging.WARNING, logger="labelwise.services.limits")
    try:
        decisions = await asyncio.gather(*[limiter.check_key("aaaa1111", None) for _ in range(12)])
    finally:
        await limiter.close()
    assert [d.allowed for d in decisions if d is not None].count(True) == 5
    assert not backend.shared
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1
