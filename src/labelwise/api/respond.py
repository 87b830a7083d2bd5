"""The response path every inference surface shares (native `/v1/classify` and `/v1/batch`, vLLM `/classify`,
OpenAI `/v1/embeddings`, the categories and the labels APIs, and generation: `/v1/generate`, its stream and
`/v1/chat/completions`): a surface shapes its body, and this module adds the
rest from one `Served` record.

What a response gets, and where it comes from:
- `x-request-id`: `RequestContextMiddleware`, on every response;
- the `RateLimit` fields: `RateLimitMiddleware`, on every keyed response;
- `x-queue-time`, `x-inference-time`, `x-credits-cost`, `x-credits-remaining`: `served_headers` below;
- the access log line: `RequestContextMiddleware`, with the fields `served_headers` leaves in the request state
  (model, version, texts, queue and inference milliseconds; never the text);
- usage: `Billing.billed` (services/credits.py), the one place a successful billed request is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request, Response
from starlette.background import BackgroundTask

from labelwise.domain import Timing
from labelwise.services.classify import Classification
from labelwise.services.credits import Charge
from labelwise.services.embeddings import Embeddings


@dataclass(frozen=True, slots=True)
class Served:
    """What answering one request took: the model and version, the texts, where the time went, and the charge."""

    model: str
    version: str
    texts: int
    queue_ms: float
    inference_ms: float
    charge: Charge | None

    @classmethod
    def classification(cls, result: Classification) -> Served:
        timing = result.timing
        return cls(
            result.model.name,
            result.model.version,
            len(result.predictions),
            timing.queue_ms,
            timing.inference_ms,
            result.charge,
        )

    @classmethod
    def embeddings(cls, result: Embeddings, model: str) -> Served:
        timing = result.timing
        return cls(model, model, len(result.vectors), timing.queue_ms, timing.inference_ms, result.charge)

    @classmethod
    def generation(
        cls, model: str, timing: Timing | None, charge: Charge | None, *, inference_ms: float | None = None
    ) -> Served:
        """A language-model answer: the upstream model, one prompt, the upstream's time (to the first event, for
        a stream)."""
        spent = inference_ms if inference_ms is not None else timing.inference_ms if timing is not None else 0.0
        return cls(model, "llm", 1, 0.0, spent, charge)


def served_headers(request: Request, served: Served) -> dict[str, str]:
    """The timing and credit headers of `served`; its fields are left in the request state for the access log."""
    queue_ms = round(served.queue_ms, 3)
    inference_ms = round(served.inference_ms, 3)
    headers = {"x-queue-time": str(queue_ms), "x-inference-time": str(inference_ms)}
    charge = served.charge
    if charge is not None:
        headers["x-credits-cost"] = str(charge.cost)
        if charge.remaining is not None:
            headers["x-credits-remaining"] = str(charge.remaining)
    state = request.state
    state.model = served.model
    state.version = served.version
    state.texts = served.texts
    state.queue_ms = queue_ms
    state.inference_ms = inference_ms
    return headers


def annotate(request: Request, response: Response, served: Served) -> None:
    """For a route whose body FastAPI serializes: the headers go on the response FastAPI hands the route."""
    response.headers.update(served_headers(request, served))


def json_response(
    request: Request, payload: dict[str, Any], served: Served, background: BackgroundTask | None = None
) -> Response:
    """For the hot routes that build plain dicts (see routes/classify.py): `payload` as JSON, with the headers."""
    headers = served_headers(request, served)
    return Response(orjson.dumps(payload), media_type="application/json", headers=headers, background=background)
