"""The native error body: `{"error": {"code", "message", "param", "request_id"}}`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `invalid_request`, `INPUT_TOO_LONG`.")
    message: str = Field(description="What went wrong, naming the field and the limit where there is one.")
    param: str | None = Field(description="The request field at fault, e.g. `text` or `texts[3]`.")
    request_id: str | None = Field(description="Also sent as the `X-Request-Id` header; quote it in reports.")


class ErrorResponse(BaseModel):
    """Every error of the native API has this shape."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "INPUT_TOO_LONG",
                        "message": "text: 12,345 characters, the limit is 10,000",
                        "param": "text",
                        "request_id": "req_3f2a9c0d1e7b4a5c6d8e9f01",
                    }
                }
            ]
        }
    )

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses=` entries documenting the error shape for the given statuses."""
    described = {
        400: "Bad input: the message names the field and the limit.",
        401: "Missing, malformed, unknown, revoked, disabled or expired API key (always the same body).",
        402: "`INSUFFICIENT_BALANCE`: the key's credits do not cover this request; nothing was charged.",
        403: "The key lacks the scope this route needs.",
        404: "No such model, alias or version.",
        413: "The body is larger than the configured limit.",
        429: "`TOO_MANY_REQUESTS`: over the key's rate limit (or too many failed logins); see `Retry-After` and the "
        "`RateLimit` / `RateLimit-Policy` headers.",
        500: "Internal error; the request id identifies it in the server logs.",
        503: "Overloaded: retry after the `Retry-After` seconds.",
    }
    return {s: {"model": ErrorResponse, "description": described[s]} for s in statuses}
