"""Feedback: corrections to predictions, and the review queue of the predictions a model was least sure of."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from labelwise.errors import InvalidRequest, NotFound
from labelwise.monitoring.predictions import PredictionLog, text_sha256, utcnow
from labelwise.storage.monitoring import FeedbackEntry, FeedbackRepository, LoggedPrediction

MAX_LABELS = 100
MAX_REVIEW = 500


@dataclass(frozen=True, slots=True)
class FeedbackInput:
    """A correction as sent: a logged request's id (and the text's index in it), or the text itself."""

    labels: Sequence[str]
    request_id: str | None = None
    index: int = 0
    text: str | None = None
    model: str | None = None


class FeedbackService:
    """Stores corrections and lists predictions to review; both read the prediction log."""

    def __init__(self, repo: FeedbackRepository, log: PredictionLog) -> None:
        self.repo = repo
        self.log = log

    async def submit(self, given: FeedbackInput, key_prefix: str | None) -> FeedbackEntry:
        """Store a correction. A request id must name a logged prediction (this process's buffer is flushed first,
        so a request answered a moment ago is found); its model and, where logged, its text are taken from there."""
        labels = list(given.labels)
        if not labels or len(labels) > MAX_LABELS or any(not label for label in labels):
            raise InvalidRequest(f"labels: 1 to {MAX_LABELS} non-empty labels are needed", param="labels")
        if (given.request_id is None) == (given.text is None):
            raise InvalidRequest("request_id: send either request_id or text, not both or neither", param="request_id")
        model, text, digest = given.model, given.text, text_sha256(given.text) if given.text is not None else ""
        if given.request_id is not None:
            logged = await self._logged(given.request_id, given.index)
            model = model or logged.model
            text, digest = logged.raw_text, logged.text_sha256
        entry = FeedbackEntry(utcnow(), key_prefix, given.request_id, model, digest, text, labels)
        await asyncio.to_thread(self.repo.add, entry)
        return entry

    async def _logged(self, request_id: str, index: int) -> LoggedPrediction:
        await self.log.flush()
        rows = await asyncio.to_thread(self.log.repo.by_request, request_id)
        row = next((r for r in rows if r.item == index), None)
        if row is None:
            raise NotFound(
                f"request_id: no logged prediction {request_id!r} (index {index}); it may not have been sampled",
                param="request_id",
            )
        return row

    async def review(self, model: str | None, *, by: str = "confidence", limit: int = 50) -> list[LoggedPrediction]:
        """Logged predictions with their raw text, least sure first (`by`: confidence or margin); of those, the
        ones the model abstained on (no decision) come first."""
        if by not in ("confidence", "margin"):
            raise InvalidRequest("by: must be 'confidence' or 'margin'", param="by")
        if not 1 <= limit <= MAX_REVIEW:
            raise InvalidRequest(f"limit: must be 1 to {MAX_REVIEW}", param="limit")
        await self.log.flush()
        rows = await asyncio.to_thread(self.log.repo.review, model, by=by, limit=limit, with_text_only=True)
        return sorted(rows, key=lambda row: bool(row.predicted))  # stable: least sure first within each group

    def training_rows(self, model: str) -> list[tuple[str, tuple[str, ...]]]:
        """(text, labels) of every correction of `model` whose text is known, latest correction per text."""
        latest: dict[str, tuple[str, tuple[str, ...]]] = {}
        for entry in self.repo.for_model(model):
            if entry.raw_text is not None:
                latest[entry.text_sha256] = (entry.raw_text, tuple(entry.labels))
        return list(latest.values())
