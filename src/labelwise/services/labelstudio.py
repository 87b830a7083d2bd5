"""The round trip through Label Studio: send the review queue as tasks, bring finished annotations back as feedback.

`export` sends a model's review queue (its abstained predictions first, then the least confident) to a Label
Studio project as tasks, each with our prediction as a pre-annotation, so a person confirms or corrects it.
`import_annotations` reads the project's JSON export and stores every finished annotation as feedback for the
model, its choices mapped to the model's labels; `labelwise train --with-feedback` then trains on them.

Label Studio is spoken to through the official `label-studio-sdk`, an optional extra (`labelwise[labelstudio]`)
imported only when a round trip runs. The extra is held under 2.0.20: from 2.0.20 on the SDK requires
`opencv-python-headless>=4.12,<4.13`, whose only release (4.12.0.88) requires `numpy<2.3`, which would downgrade
the numpy the rest of Labelwise runs on; 2.0.19 accepts any opencv 4.x and installs next to it unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from labelwise.data.labelstudio import annotation, final_choices, text_of
from labelwise.errors import FeatureUnavailable, InvalidRequest, UpstreamUnavailable
from labelwise.monitoring.feedback import FeedbackInput, FeedbackService
from labelwise.registry.store import ModelStore
from labelwise.storage.monitoring import LoggedPrediction

logger = logging.getLogger(__name__)

MAX_EXPORT = 500
INSTALL_HINT = "the Label Studio round trip needs the official SDK: pip install 'labelwise[labelstudio]'"
_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


def _sdk() -> Any:
    """The SDK's `LabelStudio` client class and its `ApiError`, or `FeatureUnavailable` (501) naming the extra."""
    try:
        with warnings.catch_warnings():
            # The SDK's own pydantic-v1-style models warn when imported (PydanticDeprecatedSince20): nothing a
            # Labelwise user can act on, so not shown.
            warnings.simplefilter("ignore", DeprecationWarning)
            from label_studio_sdk.client import LabelStudio
            from label_studio_sdk.core.api_error import ApiError
    except ImportError as exc:
        raise FeatureUnavailable(INSTALL_HINT) from exc
    return LabelStudio, ApiError


class LabelStudioClient:
    """The few Label Studio calls the round trip needs, made with the official SDK, its errors mapped once to ours.

    The token is a legacy API token or a personal access token (the SDK refreshes the latter); it goes only into
    the SDK's Authorization header, never into a message or a log line.
    """

    def __init__(self, url: str, token: str, *, transport: httpx.BaseTransport | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidRequest(f"label_studio: {url[:200]!r} is not an http(s) URL", param="label_studio")
        label_studio, self._api_error = _sdk()
        self.url = url.rstrip("/")
        # Our own httpx client: no redirects (the token stays with this host), our timeouts, closed by `close`.
        self._http = httpx.Client(timeout=_TIMEOUT, follow_redirects=False, transport=transport)
        with self._mapped("the token check"):
            # An expired personal access token is refused here, before any call.
            self._sdk = label_studio(base_url=self.url, api_key=token, httpx_client=self._http)

    def close(self) -> None:
        self._http.close()

    def project(self, project: int) -> None:
        """Check that the project exists and the token may read it."""
        with self._mapped(f"GET /api/projects/{project}", project=project):
            self._sdk.projects.get(id=project)

    def import_tasks(self, project: int, tasks: Sequence[Mapping[str, Any]]) -> int:
        """Add tasks (with their predictions) to the project; how many Label Studio created."""
        with self._mapped(f"POST /api/projects/{project}/import", project=project):
            # Not retried: a retry after a failed answer could create the tasks twice.
            answer = self._sdk.projects.import_tasks(
                id=project, request=list(tasks), request_options={"max_retries": 0}
            )
        count = getattr(answer, "task_count", None)
        return int(count) if count is not None else len(tasks)

    def export(self, project: int) -> list[dict[str, Any]]:
        """Every task of the project with its annotations, in Label Studio's JSON export format."""
        with self._mapped(f"GET /api/projects/{project}/export", project=project):
            body = b"".join(
                self._sdk.projects.exports.download_sync(id=project, export_type="JSON", download_all_tasks=True)
            )
        try:
            tasks = orjson.loads(body)
        except orjson.JSONDecodeError:
            tasks = None
        if not isinstance(tasks, list):
            raise UpstreamUnavailable("label_studio: the export is not a JSON list of tasks", param="label_studio")
        return tasks

    def sent_before(self, project: int) -> set[tuple[str, int]]:
        """(request id, index) of the predictions Labelwise has already sent to the project as tasks."""
        found: set[tuple[str, int]] = set()
        for task in self.export(project):
            data = task.get("data") if isinstance(task, dict) else None
            if isinstance(data, dict) and isinstance(data.get("labelwise_request_id"), str):
                found.add((data["labelwise_request_id"], int(data.get("labelwise_index") or 0)))
        return found

    @contextmanager
    def _mapped(self, call: str, *, project: int | None = None) -> Iterator[None]:
        """The SDK's and httpx's errors as ours, naming the URL, the call and the status, never the token."""
        try:
            yield
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"label_studio: cannot reach {self.url} ({type(exc).__name__})", param="label_studio"
            ) from exc
        except self._api_error as exc:
            raise _mapped_status(self.url, call, exc.status_code, project) from None


def _mapped_status(url: str, call: str, status: int | None, project: int | None) -> Exception:
    """Our error for a Label Studio answer with HTTP `status` to `call`."""
    if status in (401, 403):
        return InvalidRequest(f"label_studio: {url} refused the token (HTTP {status})", param="label_studio")
    if status == 404 and project is not None:
        return InvalidRequest(f"project: Label Studio has no project {project}", param="project")
    if status == 400 and project is not None:
        return InvalidRequest(
            f"project: Label Studio refused {call} (HTTP 400); the project's labeling config needs a Text tag "
            "over $text and a Choices tag named 'label'",
            param="project",
        )
    return UpstreamUnavailable(f"label_studio: {call} answered HTTP {status or 'nothing'}", param="label_studio")


@dataclass(frozen=True, slots=True)
class ExportResult:
    project: int
    sent: int
    abstained: int
    already_there: int = 0


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
        """Send up to `limit` texts of `model`'s review queue to `project`, abstained ones first; texts the project
        already has from an earlier export are not sent again (`already_there` counts them)."""
        if not 1 <= limit <= MAX_EXPORT:
            raise InvalidRequest(f"limit: {limit}, must be 1 to {MAX_EXPORT}", param="limit")
        self.store.resolve(model)  # an unknown model is named before Label Studio is called
        client = await asyncio.to_thread(self.clients, url)  # the first one imports the SDK (seconds)
        try:
            await asyncio.to_thread(client.project, project)
            queue = await self.feedback.review(model, limit=limit)
            # Sent once only: exporting again (a second click, a daily job) adds only what the project lacks.
            there = await asyncio.to_thread(client.sent_before, project) if queue else set()
            fresh = [row for row in queue if (row.request_id, row.item) not in there]
            if fresh:
                await asyncio.to_thread(client.import_tasks, project, [task_of(row) for row in fresh])
        finally:
            client.close()
        abstained = sum(1 for row in fresh if not row.predicted)
        logger.info("review exported to label studio", extra={"model": model, "tasks": len(fresh)})
        return ExportResult(project, len(fresh), abstained, len(queue) - len(fresh))

    async def import_annotations(self, model: str, project: int, *, url: str | None = None) -> ImportResult:
        """Store every finished annotation of `project` as feedback for `model`, mapped to its labels.

        A choice that matches a label only up to case is mapped to it; a task with a choice the model does not
        know is skipped and counted (a changed label set needs a new training file, not feedback).
        """
        labels = self.store.resolve(model).labels
        by_folded = {label.casefold(): label for label in labels}
        client = await asyncio.to_thread(self.clients, url)
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
