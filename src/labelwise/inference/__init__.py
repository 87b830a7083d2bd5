"""Serving-time inference: which version answers a request, micro-batching of engine calls, and a result cache."""

from labelwise.domain import Timing
from labelwise.inference.batcher import MicroBatcher
from labelwise.inference.cache import PredictionCache, text_digest
from labelwise.inference.manager import BatchingConfig, LoadedModel, ModelManager

__all__ = [
    "BatchingConfig",
    "LoadedModel",
    "MicroBatcher",
    "ModelManager",
    "PredictionCache",
    "Timing",
    "text_digest",
]
