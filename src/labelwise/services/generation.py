"""Generation as a use case: a prompt or a chat goes to the language-model upstream, billed and limited per token.

Billing works by reservation: before the upstream is called the key is debited for the most the request can cost
(its price per request, plus its price per 1,000 tokens for the prompt's characters, an upper bound of its tokens,
and `max_tokens`), and when the upstream has said how many tokens it used, the unused part goes back. A request
that fails, or whose client goes away, is refunded in full. Usage records the tokens.

The token rate limit (`llm_token_rate_limit`) is checked before a request (a key that has used up a window is
refused 429 with Retry-After) and counted after it, with the tokens the upstream reports; the request limit of
the key applies as to every route (api/ratelimit.py).

Streams: the checks, the debit and the first upstream event happen before the response starts, so an upstream
that is down or refuses the request is an HTTP error, not a broken stream. Token counts of a stream come from the
upstream's `usage` when it sends one; otherwise each content event counts as one completion token (llama.cpp,
vLLM and Ollama send one per token) and the prompt is estimated at four characters a token.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from labelwise.domain import Timing
from labelwise.errors import InputTooLong, InvalidRequest, RateLimited, UpstreamUnavailable
from labelwise.llm.upstream import LLMUpstream
from labelwise.services.credits import Billing, Charge, Payer, Reservation, TokenPrices
from labelwise.services.limits import RequestLimiter

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 512
MAX_TOKENS = 4096
_TEMPLATE_TOKENS = 32  # what a chat template adds around the messages, at most, for the reservation
_STATE_SECONDS = 2.0
NOT_CONFIGURED = "no language-model upstream is configured on this server (LABELWISE_LLM_URL)"


def required_upstream(upstream: LLMUpstream | None) -> LLMUpstream:
    """`upstream`, or the 503 `upstream_unavailable` that says none is configured."""
    if upstream is None:
        raise UpstreamUnavailable(NOT_CONFIGURED)
    return upstream


def upstream_model(upstream: LLMUpstream | None, model: str | None) -> str:
    """The upstream model a request uses: its own, else the configured default; a 400 naming `model` if neither."""
    name = model or required_upstream(upstream).default_model
    if not name:
        message = "model: name the model; this server has no default (LABELWISE_LLM_MODEL)"
        raise InvalidRequest(message, param="model")
    return name


@dataclass(frozen=True, slots=True)
class Prompt:
    """One generation request of the native API."""

    prompt: str
    model: str | None = None
    temperature: float = 0.7
    max_tokens: int = 256
    stop_sequences: Sequence[str] = ()

    def messages(self) -> list[dict[str, Any]]:
        return [{"role": "user", "content": self.prompt}]


@dataclass(frozen=True, slots=True)
class Generated:
    """What a generation produced: the text, the model that wrote it, its tokens, time and charge."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    timing: Timing
    charge: Charge | None
    body: dict[str, Any] = field(default_factory=dict)  # the upstream's answer, for the OpenAI surface


class Stream:
    """A generation whose events are still coming. Iterate `events()` once; it settles the bill when done."""

    def __init__(
        self,
        service: GenerationService,
        events: AsyncGenerator[dict[str, Any], None],
        first: dict[str, Any] | None,
        *,
        model: str,
        payer: Payer | None,
        reservation: Reservation | None,
        prompt_chars: int,
        started: float,
    ) -> None:
        self._service = service
        self._events = events
        self._first = first
        self.model = model
        self._payer = payer
        self._reservation = reservation
        self._prompt_chars = prompt_chars
        self.started = started
        self.first_ms = (time.perf_counter() - started) * 1000.0

    @property
    def charge(self) -> Charge | None:
        """The reservation while streaming (what response headers show); the final charge after."""
        return None if self._reservation is None else self._reservation.charge

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The upstream's events, in order. Cancelling the iteration (the client went away) closes the upstream
        connection and refunds the request."""
        completed = False
        counted = 0
        usage: Mapping[str, Any] | None = None
        try:
            event = self._first
            while event is not None:
                if isinstance(event.get("usage"), dict):
                    usage = event["usage"]
                if _delta_text(event):
                    counted += 1
                yield event
                event = await anext(self._events, None)
            completed = True
        except (GeneratorExit, asyncio.CancelledError):
            logger.info("generation stopped: the client went away", extra={"model": self.model, "tokens": counted})
            raise
        finally:
            with anyio.CancelScope(shield=True):  # a cancelled request still closes and settles
                await self._events.aclose()  # closes the upstream connection now, not when garbage collected
            if usage is not None:
                prompt_tokens = int(usage.get("prompt_tokens") or 0)
                completion_tokens = int(usage.get("completion_tokens") or 0)
            else:
                prompt_tokens, completion_tokens = math.ceil(self._prompt_chars / 4), counted
            await self._service.finish(
                self._payer, self._reservation, prompt_tokens + completion_tokens, self._prompt_chars, completed
            )


class GenerationService:
    """Sends prompts and chats to the upstream; checks, bills and limits them."""

    def __init__(
        self,
        upstream: LLMUpstream | None,
        *,
        billing: Billing | None,
        limiter: RequestLimiter | None,
        prices: TokenPrices,
        max_prompt_chars: int,
    ) -> None:
        self.upstream = upstream
        self.billing = billing
        self.limiter = limiter
        self.prices = prices
        self.max_prompt_chars = max_prompt_chars
        self._state: tuple[float, str] | None = None

    async def upstream_state(self) -> str | None:
        """`ok` or `degraded` (the upstream did not answer a ping lately), None without an upstream. Pinged at
        most every `_STATE_SECONDS`, so frequent readiness probes do not each wait for it."""
        if self.upstream is None:
            return None
        now = time.monotonic()
        if self._state is None or now - self._state[0] > _STATE_SECONDS:
            self._state = (now, "ok" if await self.upstream.ping() else "degraded")
        return self._state[1]

    def _upstream(self) -> LLMUpstream:
        return required_upstream(self.upstream)

    def model_name(self, model: str | None) -> str:
        """The upstream model a request uses: its own, else the configured default."""
        return upstream_model(self.upstream, model)

    async def generate(self, prompt: Prompt, *, payer: Payer | None = None) -> Generated:
        """The completion of one prompt, whole."""
        payload = self._prompt_payload(prompt)
        return await self.chat(payload, payer=payer, param="prompt")

    async def stream(self, prompt: Prompt, *, payer: Payer | None = None) -> Stream:
        """The completion of one prompt as it is written."""
        return await self.chat_stream(self._prompt_payload(prompt), payer=payer, param="prompt")

    async def chat(
        self, payload: Mapping[str, Any], *, payer: Payer | None = None, param: str = "messages"
    ) -> Generated:
        """A chat completion (OpenAI's request body, passed on with the model and `max_tokens` filled in)."""
        upstream = self._upstream()
        body, chars = self._checked(payload, param)
        reservation = await self._reserve(payer, chars, body["max_tokens"])
        completed = False
        tokens = 0
        try:
            result = await upstream.chat(body)
            tokens = result.prompt_tokens + result.completion_tokens
            completed = True
        finally:
            await self.finish(payer, reservation, tokens, chars, completed)
        timing = Timing(queue_ms=0.0, inference_ms=result.seconds * 1000.0)
        charge = None if reservation is None else reservation.charge
        tokens_in, tokens_out = result.prompt_tokens, result.completion_tokens
        return Generated(result.text, body["model"], tokens_in, tokens_out, timing, charge, result.body)

    async def chat_stream(
        self, payload: Mapping[str, Any], *, payer: Payer | None = None, param: str = "messages"
    ) -> Stream:
        """A streamed chat completion: checked, reserved and started (its first event read) before returning."""
        upstream = self._upstream()
        body, chars = self._checked(payload, param)
        reservation = await self._reserve(payer, chars, body["max_tokens"])
        started = time.perf_counter()
        events = upstream.stream_chat(body)
        try:
            first = await anext(events, None)
        except BaseException:
            await self.finish(payer, reservation, 0, chars, completed=False)
            raise
        return Stream(
            self,
            events,
            first,
            model=body["model"],
            payer=payer,
            reservation=reservation,
            prompt_chars=chars,
            started=started,
        )

    async def finish(
        self, payer: Payer | None, reservation: Reservation | None, tokens: int, chars: int, completed: bool
    ) -> None:
        """Settle a request: the final charge from its tokens (a refund if it failed), and the tokens counted."""
        if payer is None:
            return
        if reservation is not None and self.billing is not None:
            if completed:
                reservation.settle(self.prices.cost(tokens), tokens=tokens, characters=chars)
            await self.billing.close(payer, reservation, completed=completed)
        if completed and self.limiter is not None:
            await self.limiter.spend_tokens(payer.key, tokens)

    def _prompt_payload(self, prompt: Prompt) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": prompt.model,
            "messages": prompt.messages(),
            "temperature": prompt.temperature,
            "max_tokens": prompt.max_tokens,
        }
        if prompt.stop_sequences:
            payload["stop"] = list(prompt.stop_sequences)
        return payload

    def _checked(self, payload: Mapping[str, Any], param: str) -> tuple[dict[str, Any], int]:
        """The body to send (model and max_tokens filled in) and the prompt's characters; errors name the field."""
        body = {k: v for k, v in payload.items() if v is not None}
        body["model"] = self.model_name(body.get("model"))
        max_tokens = body.get("max_tokens", body.pop("max_completion_tokens", DEFAULT_MAX_TOKENS))
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= MAX_TOKENS:
            raise InvalidRequest(f"max_tokens: {max_tokens!r}, give 1 to {MAX_TOKENS:,}", param="max_tokens")
        body["max_tokens"] = max_tokens
        chars = _characters(body.get("messages"))
        if chars == 0:
            raise InvalidRequest(f"{param}: must not be empty", param=param)
        if chars > self.max_prompt_chars:
            raise InputTooLong(f"{param}: {chars:,} characters, the limit is {self.max_prompt_chars:,}", param=param)
        return body, chars

    async def _reserve(self, payer: Payer | None, chars: int, max_tokens: int) -> Reservation | None:
        if payer is None:
            return None
        if self.limiter is not None:
            refused = await self.limiter.check_tokens(payer.key)
            if refused is not None and refused.refused is not None:
                limit = refused.refused
                raise RateLimited(
                    f"token limit exceeded: {limit.amount:,} tokens per {limit.window} s for this key; retry after "
                    f"{refused.retry_after} s",
                    retry_after=refused.retry_after,
                )
        if self.billing is None:
            return None
        return await self.billing.reserve(payer, self.prices.cost(chars + _TEMPLATE_TOKENS + max_tokens))


def _characters(messages: object) -> int:
    """Characters of the text in OpenAI chat messages (string contents, and the text parts of part lists)."""
    if not isinstance(messages, list):
        return 0
    total = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(p.get("text") or "") for p in content if isinstance(p, dict))
    return total


def _delta_text(event: Mapping[str, Any]) -> str:
    choices = event.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return ""
    content = (choices[0].get("delta") or {}).get("content")
    return content if isinstance(content, str) else ""


def delta_text(event: Mapping[str, Any]) -> str:
    """The text a streamed chat event adds (empty for role, usage and finish events)."""
    return _delta_text(event)
