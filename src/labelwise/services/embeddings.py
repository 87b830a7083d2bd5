"""The embeddings use case: check the input, bill it, and turn texts into vectors through the encoder batcher.

The encoder is loaded on first use (`LazyEncoder`), in the batcher's worker thread, so importing or starting the
server never waits for it unless the settings ask for a preload.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from labelwise.domain import Timing
from labelwise.encoder import DIMENSIONS, MODEL_ID, EncoderBatcher, LazyEncoder
from labelwise.errors import InvalidRequest
from labelwise.services.classify import check_texts
from labelwise.services.credits import Billing, Charge, Payer, billed

EMBEDDING_ENGINE = "embedding"  # the price-list entry embeddings are billed under
MODEL_ALIASES = ("labelwise-embed",)


def embedding_model(model: str, *, param: str = "model") -> str:
    """The canonical id of the embedding model `model` names (the id itself or an alias); `InvalidRequest` naming
    `param` otherwise. Embedding requests and embedding jobs both check their model here."""
    if model == MODEL_ID or model in MODEL_ALIASES:
        return MODEL_ID
    known = ", ".join((MODEL_ID, *MODEL_ALIASES))
    raise InvalidRequest(f"{param}: unknown embedding model {model[:100]!r}; use one of {known}", param=param)


@dataclass(frozen=True, slots=True)
class Embeddings:
    """Vectors in input order, the tokens counted, where the time went, and what it cost."""

    vectors: NDArray[np.float32]
    tokens: int
    timing: Timing
    charge: Charge | None


class EmbeddingService:
    """Embeds texts with the shared sentence encoder, batched with concurrent requests."""

    model_id = MODEL_ID
    dimensions = DIMENSIONS

    def __init__(
        self,
        batcher: EncoderBatcher,
        encoder: LazyEncoder,
        *,
        max_inputs: int = 512,
        max_text_chars: int = 10_000,
        billing: Billing | None = None,
    ) -> None:
        self.batcher = batcher
        self.encoder = encoder
        self.max_inputs = max_inputs
        self.max_text_chars = max_text_chars
        self.billing = billing
        self.created = int(time.time())  # what the model listing reports as the embedding model's `created`

    def check_model(self, model: str, *, param: str = "model") -> str:
        """The canonical model id for `model` (the id itself or an alias); `InvalidRequest` otherwise."""
        return embedding_model(model, param=param)

    def check_inputs(self, texts: Sequence[str], *, param: str = "input") -> None:
        """`InvalidRequest` naming the item for an empty or oversized list, or an empty or too long text."""
        check_texts(
            texts, param=param, max_texts=self.max_inputs, max_chars=self.max_text_chars, index_one=False, noun="items"
        )

    async def embed(self, texts: Sequence[str], *, payer: Payer | None = None, param: str = "input") -> Embeddings:
        """L2-normalized vectors of `texts`; billed (engine "embedding") after the input was checked."""
        self.check_inputs(texts, param=param)
        async with billed(self.billing, payer, EMBEDDING_ENGINE, texts) as charge:
            vectors, timing = await self.batcher.embed_timed(texts)
        # The encoder is loaded by now (the batch ran); tokenizing again is a fast Rust call, off the event loop.
        tokens = await asyncio.to_thread(self.count_tokens, texts)
        return Embeddings(vectors, tokens, timing, charge)

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(self.encoder.encoder().count_tokens(texts))
