"""The sentence encoder (all-MiniLM-L6-v2 on ONNX Runtime) shared by the embedding and zero-shot engines."""

from labelwise.domain import Timing
from labelwise.encoder.batcher import EncoderBatcher
from labelwise.encoder.runtime import (
    DIMENSIONS,
    MODEL_ID,
    Encoder,
    LazyEncoder,
    get_encoder,
)
from labelwise.encoder.windows import LONG_TEXT_CHOICES, LongText

__all__ = [
    "DIMENSIONS",
    "LONG_TEXT_CHOICES",
    "MODEL_ID",
    "Encoder",
    "EncoderBatcher",
    "LazyEncoder",
    "LongText",
    "Timing",
    "get_encoder",
]
