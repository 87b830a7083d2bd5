"""Repositories of the prediction log and of feedback (tables of migration 0003_monitoring)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, Text, case, cast, delete, func, insert, select, update

from labelwise.storage.db import Database
from labelwise.storage.tables import FeedbackRow, PredictionLogRow

_PREDICTION_LOG: Table = PredictionLogRow.__table__  # type: ignore[assignment]  # a declarative class's table


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes even for timezone-aware columns; everything we store is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# The bucket of the live label shares that holds predictions without a decision (abstained).
NO_DECISION = "(no decision)"


@dataclass(frozen=True, slots=True)
class LoggedPrediction:
    """One row of the prediction log. `labels` holds `[label, score]` pairs, best first."""

    request_id: str
    item: int
    created_at: datetime
    key_prefix: str | None
    model: str
    version: str
    text_sha256: str
    text_chars: int
    labels: list[tuple[str, float]]
    predicted: list[str]
    confidence: float
    margin: float
    raw_text: str | None = None


@dataclass(frozen=True, slots=True)
class FeedbackEntry:
    """A stored correction."""

    created_at: datetime
    key_prefix: str | None
    request_id: str | None
    model: str | None
    text_sha256: str
    raw_text: str | None
    labels: list[str]


@dataclass(frozen=True, slots=True)
class WindowSummary:
    """What drift needs of a window of the log: rows, rows per top label, and the top scores' sum and low count."""

    predictions: int
    top_labels: dict[str, int]
    confidence_sum: float
    low_confidence: int


def _logged(row: PredictionLogRow) -> LoggedPrediction:
    return LoggedPrediction(
        row.request_id,
        row.item,
        _aware(row.created_at),
        row.key_prefix,
        row.model,
        row.version,
        row.text_sha256,
        row.text_chars,
        [(str(label), float(score)) for label, score in row.labels],
        [str(label) for label in row.predicted],
        row.confidence,
        row.margin,
        row.raw_text,
    )


class PredictionLogRepository:
    """Adds, reads and prunes the prediction log."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, entries: Sequence[LoggedPrediction]) -> None:
        if not entries:
            return
        values: list[dict[str, Any]] = [
            {
                "request_id": e.request_id,
                "item": e.item,
                "created_at": e.created_at,
                "key_prefix": e.key_prefix,
                "model": e.model,
                "version": e.version,
                "text_sha256": e.text_sha256,
                "text_chars": e.text_chars,
                "labels": [list(pair) for pair in e.labels],
                "predicted": e.predicted,
                "confidence": e.confidence,
                "margin": e.margin,
                "raw_text": e.raw_text,
            }
            for e in entries
        ]
        # A Core insert of the table (executemany), not the ORM's bulk path: a third less CPU per row.
        with self.db.engine.begin() as connection:
            connection.execute(insert(_PREDICTION_LOG), values)

    def by_request(self, request_id: str) -> list[LoggedPrediction]:
        query = select(PredictionLogRow).where(PredictionLogRow.request_id == request_id)
        with self.db.session() as session:
            return [_logged(r) for r in session.scalars(query.order_by(PredictionLogRow.item)).all()]

    def window_summary(
        self, model: str, since: datetime, version: str | None, *, low_confidence: float
    ) -> WindowSummary:
        """Counts of `model`'s predictions (one version, or all) logged at or after `since`, summed by the database.

        One grouped query: rows are never read one by one, so a window of millions of rows (the log of a busy day)
        costs a scan of the index, not memory and CPU per row in the serving process. Grouped by the `predicted`
        list as text (PostgreSQL has no equality on `json`); a group's first label is its top label.
        """
        predicted = cast(PredictionLogRow.predicted, Text)
        low = func.sum(case((PredictionLogRow.confidence <= low_confidence, 1), else_=0))
        query = (
            select(predicted, func.count(), func.sum(PredictionLogRow.confidence), low)
            .where(PredictionLogRow.model == model, PredictionLogRow.created_at >= since)
            .group_by(predicted)
        )
        if version is not None:
            query = query.where(PredictionLogRow.version == version)
        total, confidence, under = 0, 0.0, 0
        top: Counter[str] = Counter()
        with self.db.session() as session:
            for labels, rows, confidence_sum, low_rows in session.execute(query):
                total += int(rows)
                confidence += float(confidence_sum or 0.0)
                under += int(low_rows or 0)
                first = json.loads(labels)[:1] if labels else []
                # A prediction without a decision (the model abstained) is a share of its own: a rise in
                # abstentions is a shift drift should show, not rows to leave out.
                top[str(first[0]) if first else NO_DECISION] += int(rows)
        return WindowSummary(total, dict(top), confidence, under)

    def review(self, model: str | None, *, by: str, limit: int, with_text_only: bool) -> list[LoggedPrediction]:
        """The least sure predictions first: lowest `confidence` or `margin` (`by`)."""
        column = PredictionLogRow.margin if by == "margin" else PredictionLogRow.confidence
        query = select(PredictionLogRow)
        if model is not None:
            query = query.where(PredictionLogRow.model == model)
        if with_text_only:
            query = query.where(PredictionLogRow.raw_text.is_not(None))
        query = query.order_by(column, PredictionLogRow.id).limit(limit)
        with self.db.session() as session:
            return [_logged(r) for r in session.scalars(query).all()]

    def forget_raw_text(self, before: datetime) -> int:
        """Blank the raw text of rows logged before `before`; the number of rows changed."""
        statement = (
            update(PredictionLogRow)
            .where(PredictionLogRow.created_at < before, PredictionLogRow.raw_text.is_not(None))
            .values(raw_text=None)
        )
        with self.db.session() as session:
            return int(session.execute(statement).rowcount)  # type: ignore[attr-defined]

    def count(self) -> int:
        with self.db.session() as session:
            return int(session.scalar(select(func.count()).select_from(PredictionLogRow)) or 0)

    def delete_before(self, before: datetime) -> int:
        with self.db.session() as session:
            result = session.execute(delete(PredictionLogRow).where(PredictionLogRow.created_at < before))
            return int(result.rowcount)  # type: ignore[attr-defined]


class FeedbackRepository:
    """Stored corrections."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, entry: FeedbackEntry) -> None:
        with self.db.session() as session:
            session.add(
                FeedbackRow(
                    created_at=entry.created_at,
                    key_prefix=entry.key_prefix,
                    request_id=entry.request_id,
                    model=entry.model,
                    text_sha256=entry.text_sha256,
                    raw_text=entry.raw_text,
                    labels=list(entry.labels),
                )
            )

    def for_model(self, model: str) -> list[FeedbackEntry]:
        query = select(FeedbackRow).where(FeedbackRow.model == model).order_by(FeedbackRow.id)
        with self.db.session() as session:
            return [
                FeedbackEntry(
                    _aware(r.created_at),
                    r.key_prefix,
                    r.request_id,
                    r.model,
                    r.text_sha256,
                    r.raw_text,
                    [str(x) for x in r.labels],
                )
                for r in session.scalars(query).all()
            ]
