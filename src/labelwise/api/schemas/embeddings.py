"""Bodies of `POST /v1/embeddings`, in the shape of OpenAI's embeddings API, and of its errors."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EmbeddingRequest(BaseModel):
    """Texts to embed with the sentence encoder (OpenAI's request shape; token-id inputs are not accepted)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"model": "all-MiniLM-L6-v2", "input": ["My card has not arrived yet"]}]},
    )

    input: str | list[str] = Field(description="One text or a list of 1 to 512 texts, each 1 to 10,000 characters.")
    model: str = Field(max_length=200, description="`all-MiniLM-L6-v2`, or its alias `labelwise-embed`.")
    encoding_format: Literal["float", "base64"] = Field(
        default="float", description="`float`: lists of numbers; `base64`: little-endian float32 bytes, base64."
    )
    dimensions: int | None = Field(default=None, description="Only 384 (the model's size) is accepted.")
    user: str | None = Field(default=None, max_length=256, description="Accepted for compatibility; not stored.")


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int = Field(description="Position of the text in `input`.")
    embedding: list[float] | str = Field(description="384 numbers (L2-normalized), or their base64 encoding.")


class EmbeddingUsage(BaseModel):
    prompt_tokens: int = Field(description="WordPiece tokens of the input, [CLS] and [SEP] included.")
    total_tokens: int


class EmbeddingResponse(BaseModel):
    """One embedding per input text, in input order."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "object": "list",
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.0123, -0.0456, 0.0789]}],
                    "model": "all-MiniLM-L6-v2",
                    "usage": {"prompt_tokens": 9, "total_tokens": 9},
                }
            ]
        }
    )

    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class OpenAIErrorDetail(BaseModel):
    message: str = Field(description="What went wrong, naming the field and the limit where there is one.")
    type: str = Field(description="`invalid_request_error`, `authentication_error`, `rate_limit_error`, ...")
    param: str | None = Field(description="The request field at fault, e.g. `input[3]`.")
    code: str | int | None = Field(description="Our stable error code (vLLM's `/classify`: the HTTP status).")


class OpenAIErrorResponse(BaseModel):
    """Errors of the OpenAI- and vLLM-compatible routes."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "message": "input: 513 items, the limit is 512",
                        "type": "invalid_request_error",
                        "param": "input",
                        "code": "invalid_request",
                    }
                }
            ]
        }
    )

    error: OpenAIErrorDetail


def openai_error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses=` entries for the OpenAI error shape."""
    described = {
        400: "Bad input: the message names the field and the limit.",
        401: "Missing or invalid API key.",
        402: "The key's credits do not cover this request; nothing was charged.",
        403: "The key lacks the `classify` scope.",
        404: "No such model.",
        413: "The body is larger than the configured limit.",
        429: "Over the key's rate limit; see `Retry-After`.",
        500: "Internal error; the request id identifies it in the server logs.",
        503: "The encoder queue is full: retry after the `Retry-After` seconds.",
    }
    return {s: {"model": OpenAIErrorResponse, "description": described[s]} for s in statuses}
