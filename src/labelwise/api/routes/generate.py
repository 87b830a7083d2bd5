"""Generation with the language-model upstream: `POST /v1/generate`, `POST /v1/generate/stream` and OpenAI's
`POST /v1/chat/completions` (streamed or not; errors in OpenAI's shape, see api/errors.py). Key scope `generate`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from labelwise.api.access import requires
from labelwise.api.deps import GenerationDep, PayerDep, RequestIdDep
from labelwise.api.disconnect import unless_disconnected
from labelwise.api.respond import Served, annotate, served_headers
from labelwise.api.schemas.embeddings import openai_error_responses
from labelwise.api.schemas.errors import error_responses
from labelwise.api.schemas.generate import ChatCompletionRequest, GenerateRequest, GenerateResponse, GenerateUsage
from labelwise.errors import LabelwiseError
from labelwise.services.generation import Prompt, Stream, delta_text
from labelwise.services.keys import Scope

router = APIRouter(prefix="/v1", tags=["generate"], responses=error_responses(400, 401, 402, 403, 413, 429, 500, 503))

_SSE_HEADERS = {"cache-control": "no-cache"}
_DONE = b"data: [DONE]\n\n"


def _prompt(body: GenerateRequest) -> Prompt:
    return Prompt(body.prompt, body.model, body.temperature, body.max_tokens, tuple(body.stop_sequences))


@router.post("/generate")
@requires(Scope.GENERATE)
async def generate(
    body: GenerateRequest,
    request: Request,
    response: Response,
    service: GenerationDep,
    payer: PayerDep,
    request_id: RequestIdDep,
) -> GenerateResponse:
    """Complete `prompt` with the language model behind this server (`LABELWISE_LLM_URL`).

    Billed per request plus per 1,000 tokens (prompt and completion): the most the request can cost is reserved
    first and the unused part given back; `x-credits-cost` is the final charge. A client that disconnects cancels
    the upstream call and is not charged. Upstream down or overloaded: 503 `upstream_unavailable` with
    Retry-After; a request the upstream refuses: 400 `upstream_rejected` with its message.
    """
    result = await unless_disconnected(request, service.generate(_prompt(body), payer=payer))
    annotate(request, response, Served.generation(result.model, result.timing, result.charge))
    return GenerateResponse(
        text=result.text,
        model=result.model,
        usage=GenerateUsage(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens),
        latency_ms=round((time.perf_counter() - request.state.started) * 1000.0, 3),
        request_id=request_id,
    )


@router.post(
    "/generate/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events."}},
)
@requires(Scope.GENERATE)
async def generate_stream(
    body: GenerateRequest, request: Request, service: GenerationDep, payer: PayerDep
) -> StreamingResponse:
    """`/v1/generate` as server-sent events: `data: <text>` per piece of text as the model writes it (a piece
    with line breaks spans several `data:` lines, joined by `\\n` as SSE defines), then `data: [DONE]`. A failure
    after the stream started is an `event: error` whose data is the native error object.

    The response headers carry the reservation (`x-credits-cost`); the final charge, from the tokens, is in
    the usage report. Closing the connection stops the generation upstream and refunds the request.
    """
    stream = await service.stream(_prompt(body), payer=payer)

    async def events() -> AsyncIterator[bytes]:
        async for chunk in _guarded(stream, request):
            if isinstance(chunk, bytes):
                yield chunk
                continue
            text = delta_text(chunk)
            if text:
                yield b"".join(b"data: " + line.encode() + b"\n" for line in text.split("\n")) + b"\n"
        yield _DONE

    return _sse(request, stream, events())


@router.post(
    "/chat/completions",
    responses={
        **openai_error_responses(400, 401, 402, 403, 413, 429, 500, 503),
        200: {"content": {"application/json": {}, "text/event-stream": {}}},
    },
)
@requires(Scope.GENERATE)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, service: GenerationDep, payer: PayerDep
) -> Response:
    """OpenAI's chat completions, passed to the upstream: the official `openai` client works unchanged
    (`OpenAI(base_url="http://HOST:8000/v1", api_key=KEY).chat.completions.create(...)`), streamed or not.

    The request's fields go to the upstream as sent, with `model` (default `LABELWISE_LLM_MODEL`) and
    `max_tokens` (default 512, at most 4096) filled in; the answer comes back as the upstream wrote it. Billing,
    limits and errors as for `/v1/generate`, with errors in OpenAI's shape.
    """
    if not body.stream:
        result = await unless_disconnected(request, service.chat(body.payload(), payer=payer))
        served = Served.generation(result.model, result.timing, result.charge)
        headers = served_headers(request, served)
        return Response(orjson.dumps(result.body), media_type="application/json", headers=headers)
    stream = await service.chat_stream(body.payload(), payer=payer)

    async def events() -> AsyncIterator[bytes]:
        async for chunk in _guarded(stream, request):
            yield chunk if isinstance(chunk, bytes) else b"data: " + orjson.dumps(chunk) + b"\n\n"
        yield _DONE

    return _sse(request, stream, events())


async def _guarded(stream: Stream, request: Request) -> AsyncIterator[dict[str, Any] | bytes]:
    """The stream's events; a failure after the response started becomes one `event: error` (its status line is
    gone, so the error travels in the stream)."""
    try:
        async for event in stream.events():
            yield event
    except LabelwiseError as exc:
        error = {"code": exc.code, "message": exc.message, "param": exc.param, "request_id": request.state.request_id}
        yield b"event: error\ndata: " + orjson.dumps({"error": error}) + b"\n\n"


def _sse(request: Request, stream: Stream, body: AsyncIterator[bytes]) -> StreamingResponse:
    served = Served.generation(stream.model, None, stream.charge, inference_ms=stream.first_ms)
    headers = {**served_headers(request, served), **_SSE_HEADERS}
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)
