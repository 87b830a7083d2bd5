"""The round trip through Label Studio: send the review queue as tasks, bring finished annotations back as feedback.

`export` sends a model's review queue (its abstained predictions first, then the least confident) to a Label
Studio project as tasks, each with our prediction as a pre-annotation, so a person confirms or corrects it.
`import_annotations` reads the project's JSON export and stores every finished annotation as feedback for the
model, its choices mapped to the model's labels; `labelwise train --with-feedback` then trains on them.

Label Studio is spoken to through its REST API with httpx. The official `label-studio-sdk` (2.1) would pin numpy
under 2.3 in our environment and bring opencv, nltk, pandas, black and Faker into the server for five HTTP
calls, so it is not a dependency; the calls used are few and documented (`/api/projects/{id}`,
`/api/projects/{id}/import`, `/api/projects/{id}/export?exportType=JSON`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from labelwise.data.labelstudio import annotation, final_choices, text_of
from labelwise.errors import InvalidRequest, UpstreamUnavailable
from labelwise.monitoring.feedback import FeedbackInput, FeedbackService
from labelwise.registry.store import ModelStore
from labelwise.storage.monitoring import LoggedPrediction

logger = logging.getLogger(__name__)

MAX_EXPORT = 500
_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class LabelStudioClient:
    """The few Label Studio REST calls the round trip needs, with its errors mapped once to ours."""

    def __init__(self, url: str, token: str, *, transport: httpx.BaseTransport | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidRequest(f"label_studio: {url[:200]!r} is not an http(s) URL", param="label_studio")
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Token {token}"}, timeout=_TIMEOUT, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def project(self, project: int) -> dict[str, Any]:
        """The project's settings (its labeling config among them)."""
        found: dict[str, Any] = self._call("GET", f"/api/projects/{project}", project=project).json()
        return found

    def import_tasks(self, project: int, tasks: Sequence[Mapping[str, Any]]) -> int:
        """Add tasks (with their predictions) to the project; how many Label Studio created."""
        answer = self._call("POST", f"/api/projects/{project}/import", project=project, json=list(tasks)).json()
        return int(answer.get("task_count", len(tasks)))

    def export(self, project: int) -> list[dict[str, Any]]:
        """The project's tasks with their annotations, in Label Studio's JSON export format."""
        answer = self._call(
            "GET", f"/api/projects/{project}/export", project=project, params={"exportType": "JSON"}
        ).json()
        if not isinstance(answer, list):
            raise UpstreamUnavailable("label_studio: the export is not a list of tasks", param="label_studio")
        return answer

    def _call(self, method: str, path: str, *, project: int, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"label_studio: cannot reach {self.url} ({type(exc).__name__})", param="label_studio"
            ) from exc
        if response.status_code in (401, 403):
            raise InvalidRequest(
                f"label_studio: {self.url} refused the token (HTTP {response.status_code})", param="label_studio"
            )
        if response.status_code == 404:
            raise InvalidRequest(f"project: Label Studio has no project {project}", param="project")
        if response.status_code >= 400:
            raise UpstreamUnavailable(
                f"label_studio: {method} {path} answered HTTP {response.status_code}", param="label_studio"
            )
        return response


@dataclass(frozen=True, slots=True)
class ExportResult:
    project: int
    sent: int
    abstained: int


@dataclass(frozen=True, slots=True)
class ImportResult:
    project: int
    imported: int
    unannotated: int
    unknown_labels: dict[str, int]


def task_of(row: LoggedPrediction) -> dict[str, Any]:
    """A Label Studio task for one logged prediction, our decision (or best label) as its pre-annotation."""
    chosen = row.predicted if row.predicted or not row.labels else [row.labels[0][0]]
    return {
        "data": {
            "text": row.raw_text,
            "labelwise_request_id": row.request_id,
            "labelwise_index": row.item,
            "labelwise_abstained": not row.predicted,
        },
        "predictions": [
            {"model_version": f"{row.model}:{row.version}", "score": row.confidence, "result": [annotation(chosen)]}
        ],
    }


# Builds a client of a Label Studio URL (None: the configured one) with the configured token.
ClientFactory = Callable[[str | None], LabelStudioClient]


class LabelStudioExchange:
    """Export a model's review queue to a Label Studio project, and import its annotations as feedback."""

    def __init__(self, feedback: FeedbackService, store: ModelStore, clients: ClientFactory) -> None:
        self.feedback = feedback
        self.store = store
        self.clients = clients

    async def export(self, model: str, project: int, *, limit: int = 100, url: str | None = None) -> ExportResult:
        """Send up to `limit` texts of `model`'s review queue to `project`, abstained ones first."""
        if not 1 <= limit <= MAX_EXPORT:
            raise InvalidRequest(f"limit: {limit}, must be 1 to {MAX_EXPORT}", param="limit")
        self.store.resolve(model)  # an unknown model is named before Label Studio is called
        client = self.clients(url)
        try:
            await asyncio.to_thread(client.project, project)
            queue = await self.feedback.review(model, limit=limit)
            if queue:
                await asyncio.to_thread(client.import_tasks, project, [task_of(row) for row in queue])
        finally:
            client.close()
        abstained = sum(1 for row in queue if not row.predicted)
        logger.info("review exported to label studio", extra={"model": model, "tasks": len(queue)})
        return ExportResult(project, len(queue), abstained)

    async def import_annotations(self, model: str, project: int, *, url: str | None = None) -> ImportResult:
        """Store every finished annotation of `project` as feedback for `model`, mapped to its labels.

        A choice that matches a label only up to case is mapped to it; a task with a choice the model does not
        know is skipped and counted (a changed label set needs a new training file, not feedback).
        """
        labels = self.store.resolve(model).labels
        by_folded = {label.casefold(): label for label in labels}
        client = self.clients(url)
        try:
            tasks = await asyncio.to_thread(client.export, project)
        finally:
            client.close()
        imported, unannotated = 0, 0
        unknown: dict[str, int] = {}
        for task in tasks:
            chosen = final_choices(task)
            text = text_of(task.get("data") or {})
            if chosen is None or text is None:
                unannotated += 1
                continue
            mapped = [by_folded.get(choice.casefold()) for choice in chosen]
            missing = [c for c, m in zip(chosen, mapped, strict=True) if m is None]
            for choice in missing:
                unknown[choice] = unknown.get(choice, 0) + 1
            if missing:
                continue
            await self.feedback.submit(FeedbackInput([m for m in mapped if m], text=text, model=model), None)
            imported += 1
        logger.info("label studio annotations imported", extra={"model": model, "imported": imported})
        return ImportResult(project, imported, unannotated, unknown)
