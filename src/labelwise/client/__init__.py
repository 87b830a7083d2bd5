"""The Python client of the Labelwise API.

    from labelwise.client import Client

    with Client("http://127.0.0.1:8000", api_key="lw_...") as client:
        result = client.classify("my card has not arrived")
        print(result.predicted, result.labels[0].score)

`AsyncClient` has the same methods, awaited. Every error is a `LabelwiseAPIError` carrying the server's code,
message, field, status and request id.
"""

from labelwise.client._client import AsyncClient, Client
from labelwise.client._errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InsufficientBalanceError,
    LabelwiseAPIError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
)
from labelwise.client._retry import RetryPolicy
from labelwise.client._types import (
    BatchItem,
    BatchResult,
    Classification,
    Embeddings,
    EmbeddingUsage,
    LabelScore,
    ModelDetail,
    ModelSummary,
    Usage,
    UsageCounts,
    UsageDay,
    VersionDetail,
    VersionSummary,
)

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "BatchItem",
    "BatchResult",
    "Classification",
    "Client",
    "EmbeddingUsage",
    "Embeddings",
    "InsufficientBalanceError",
    "LabelScore",
    "LabelwiseAPIError",
    "ModelDetail",
    "ModelSummary",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RetryPolicy",
    "ServiceUnavailableError",
    "Usage",
    "UsageCounts",
    "UsageDay",
    "VersionDetail",
    "VersionSummary",
]
