"""Bodies of the generation routes: `/v1/generate` (native) and `/v1/chat/completions` (OpenAI's shape)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from labelwise.services.generation import MAX_TOKENS


class GenerateRequest(BaseModel):
    """Complete one prompt with the language model."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"prompt": "Write a haiku about the sea.", "max_tokens": 64}]},
    )

    prompt: str = Field(min_length=1, description="The prompt (1 to `max_text_chars` characters).")
    model: str | None = Field(
        default=None, max_length=200, description="The upstream model; default: the server's `LABELWISE_LLM_MODEL`."
    )
    temperature: float = Field(default=0.7, ge=0.0, le=2.0, description="Sampling temperature, 0 to 2.")
    max_tokens: int = Field(default=256, ge=1, le=MAX_TOKENS, description=f"Most tokens to write, 1 to {MAX_TOKENS}.")
    stop_sequences: list[str] = Field(
        default_factory=list, max_length=4, description="Up to 4 strings that end the text when written."
    )


class GenerateUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class GenerateResponse(BaseModel):
    """The text the model wrote, which model wrote it, its tokens and the time spent in the server."""

    text: str
    model: str
    usage: GenerateUsage
    latency_ms: float = Field(description="Time spent in the server, upstream included, in milliseconds.")
    request_id: str


class ChatMessage(BaseModel):
    """One message of a chat in OpenAI's shape (other fields, such as `name`, are passed on)."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completions request. Fields not named here (`top_p`, `response_format`, `logprobs`, `seed`,
    `stream_options`...) are passed to the upstream as sent."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"examples": [{"messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 16}]},
    )

    model: str | None = Field(default=None, max_length=200, description="Default: `LABELWISE_LLM_MODEL`.")
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS, description="Default 512.")
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)

    def payload(self) -> dict[str, Any]:
        """The body for the upstream, without `stream` (the service sets it)."""
        return self.model_dump(exclude={"stream"}, exclude_none=True)
