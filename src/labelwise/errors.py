"""The one exception tree of Labelwise.

Every error we raise on purpose is a `LabelwiseError`. Each class carries a stable machine-readable `code` and the
HTTP status it maps to, so the API boundary renders it once and the CLI prints it as one line.
"""

from __future__ import annotations

from typing import Any, ClassVar


class LabelwiseError(Exception):
    """Base class: a message meant for the user, a code, a status and optionally the offending field."""

    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, param: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.details = details

    def __str__(self) -> str:
        return self.message


class ConfigError(LabelwiseError):
    code = "config_error"
    http_status = 500


class FeatureUnavailable(ConfigError):
    """A feature this installation lacks (an optional extra not installed): the message names what to install.
    501, not 500: nothing failed, and retrying will not help until the server is set up for it."""

    code = "feature_unavailable"
    http_status = 501


class InvalidRequest(LabelwiseError):
    code = "invalid_request"
    http_status = 400


class InputTooLong(InvalidRequest):
    code = "INPUT_TOO_LONG"


class DataError(InvalidRequest):
    """Training or prediction data that cannot be used; the message names the row and the problem."""

    code = "invalid_data"


class Unauthorized(LabelwiseError):
    code = "unauthorized"
    http_status = 401


class Forbidden(LabelwiseError):
    code = "forbidden"
    http_status = 403


class NotFound(LabelwiseError):
    code = "not_found"
    http_status = 404


class ModelNotFound(NotFound):
    code = "model_not_found"


class Conflict(LabelwiseError):
    code = "conflict"
    http_status = 409


class PayloadTooLarge(LabelwiseError):
    code = "payload_too_large"
    http_status = 413


class RateLimited(LabelwiseError):
    code = "TOO_MANY_REQUESTS"
    http_status = 429


class InsufficientBalance(LabelwiseError):
    code = "INSUFFICIENT_BALANCE"
    http_status = 402


class Overloaded(LabelwiseError):
    code = "overloaded"
    http_status = 503


class NotFittedError(LabelwiseError):
    """An engine was asked to predict or save before `fit` or `load`."""

    code = "not_fitted"
    http_status = 500


class ModelLoadError(LabelwiseError):
    """A stored model version failed its checksum or could not be read."""

    code = "model_load_error"
    http_status = 500


class StorageError(LabelwiseError):
    code = "storage_error"
    http_status = 503


class IdempotencyKeyReused(LabelwiseError):
    """An `Idempotency-Key` sent again with a different body."""

    code = "idempotency_key_reused"
    http_status = 422


class StorageUnavailable(StorageError):
    """The database cannot be reached (stopped, restarting, network away): nothing is wrong with the request, and
    the same request will work once it is back."""

    code = "storage_unavailable"
    http_status = 503


class UpstreamUnavailable(LabelwiseError):
    """A service we call (the language-model upstream, Label Studio) is down, timed out, overloaded or failed on its
    side: 503 with Retry-After; the request itself may be fine."""

    code = "upstream_unavailable"
    http_status = 503


class UpstreamRejected(InvalidRequest):
    """The language-model upstream refused the request as the caller's fault (its 4xx); its message is passed on."""

    code = "upstream_rejected"
