"""The prediction log's buffer: sampling, raw text opt-in, and a failed flush losing nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import pytest

from labelwise.domain import LabelScore, Prediction
from labelwise.monitoring.predictions import PredictionLog, share_of, text_sha256
from labelwise.storage.monitoring import LoggedPrediction


class FakeRepo:
    """Stores rows in a list; fails while `down` is set."""

    def __init__(self) -> None:
        self.rows: list[LoggedPrediction] = []
        self.down = False

    def add(self, entries: Sequence[LoggedPrediction]) -> None:
        if self.down:
            raise ConnectionError("database away")
        self.rows.extend(entries)

    def forget_raw_text(self, before: datetime) -> int:
        return 0


PREDICTION = Prediction([LabelScore("a", 0.7), LabelScore("b", 0.2)], ["a"])


def _log(repo: FakeRepo, **kwargs: object) -> PredictionLog:
    return PredictionLog(repo, **kwargs)  # type: ignore[arg-type]


def test_rows_hold_hash_length_and_margin_not_text() -> None:
    repo = FakeRepo()
    log = _log(repo)
    log.record("req_1", "lw_abc", "m", "1.0.0", ["hello"], [PREDICTION])
    asyncio.run(log.flush())
    [row] = repo.rows
    assert (row.text_sha256, row.text_chars, row.raw_text) == (text_sha256("hello"), 5, None)
    assert row.confidence == 0.7
    assert row.margin == pytest.approx(0.5)


def test_raw_text_for_opted_in_keys_only() -> None:
    repo = FakeRepo()
    log = _log(repo, raw_text_keys=["lw_yes"])
    log.record("req_1", "lw_yes", "m", "1.0.0", ["kept"], [PREDICTION])
    log.record("req_2", "lw_no", "m", "1.0.0", ["dropped"], [PREDICTION])
    asyncio.run(log.flush())
    assert [r.raw_text for r in repo.rows] == ["kept", None]


def test_sampling_is_by_request_id() -> None:
    repo = FakeRepo()
    log = _log(repo, sample=0.3)
    ids = [f"req_{i}" for i in range(2000)]
    for request_id in ids:
        log.record(request_id, None, "m", "1.0.0", ["x", "y"], [PREDICTION, PREDICTION])
    asyncio.run(log.flush())
    logged = {r.request_id for r in repo.rows}
    assert logged == {i for i in ids if share_of(i) < 0.3}
    assert 500 < len(logged) < 700
    assert len(repo.rows) == 2 * len(logged)  # a request is logged whole


def test_failed_flush_keeps_rows_for_the_next() -> None:
    repo = FakeRepo()
    log = _log(repo)
    log.record("req_1", None, "m", "1.0.0", ["x"], [PREDICTION])
    repo.down = True
    with pytest.raises(ConnectionError):
        asyncio.run(log.flush())
    assert log.pending == 1
    repo.down = False
    asyncio.run(log.flush())
    assert [r.request_id for r in repo.rows] == ["req_1"]


def test_cap_per_second_skips_whole_requests_and_refills() -> None:
    from labelwise.monitoring.metrics import PREDICTION_LOG_SKIPPED

    repo = FakeRepo()
    now = [100.0]
    log = _log(repo, max_per_second=10, clock=lambda: now[0])
    skipped = PREDICTION_LOG_SKIPPED._value.get()
    for i in range(4):  # 10 rows of allowance: three requests of 4 fit (the third overdraws), the fourth waits
        log.record(f"req_{i}", None, "m", "1.0.0", ["a", "b", "c", "d"], [PREDICTION] * 4)
    assert log.pending == 12
    assert PREDICTION_LOG_SKIPPED._value.get() - skipped == 4
    now[0] += 0.5  # 5 rows refilled: the debt of 2 is paid and 3 remain
    log.record("req_5", None, "m", "1.0.0", ["a", "b"], [PREDICTION] * 2)
    assert log.pending == 14
    asyncio.run(log.flush())
    assert sorted({r.request_id for r in repo.rows}) == ["req_0", "req_1", "req_2", "req_5"]


def test_no_cap_logs_everything() -> None:
    repo = FakeRepo()
    log = _log(repo, max_per_second=0)
    for i in range(50):
        log.record(f"req_{i}", None, "m", "1.0.0", ["a"] * 100, [PREDICTION] * 100)
    assert log.pending == 5000
