"""The sentence encoder: all-MiniLM-L6-v2 on ONNX Runtime with the `tokenizers` library, no PyTorch.

Three steps, kept apart so they can overlap: pre-process (tokenize, cut long texts into windows, pad), infer
(one ONNX Runtime call per batch), post-process (mean pooling over the attention mask, L2 normalization, and
combining the windows of a long text). Texts are ordered by length before batching so a batch pads little;
while ONNX Runtime runs group n (it releases the GIL), a worker thread tokenizes group n+1.

Parallelism: a group of texts is cut into small calls (about `max_call_tokens` padded tokens each) that run on
`threads` worker threads, each call single-threaded, rather than one large call on an intra-op thread pool.
Small calls keep activations in the CPU caches and need no synchronization inside an operator: measured on a
2-core machine with 64 SST-2 sentences, 2 workers x 4-sentence calls ran 2.5-3.5x faster than one 64-sentence
call on 2 intra-op threads. Every row is computed independently (see quantize.py), so how texts are cut into
calls never changes a vector.

Window length: 256 tokens by default. MiniLM was trained on 128-token inputs but has 512 position embeddings,
and sentence-transformers serves this model with `max_seq_length = 256`: at 256 our vectors match the
reference model on every text up to 256 tokens (how MTEB scores were measured), and longer texts are windowed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from labelwise.encoder.files import INSTALL_HINT, EncoderFiles, prepare
from labelwise.encoder.windows import (
    LONG_TEXT_CHOICES,
    LongText,
    WindowAggregator,
    WindowBatch,
    chunk_windows,
    mean_pool,
    split_windows,
)
from labelwise.errors import ConfigError, InvalidRequest

logger = logging.getLogger(__name__)

MODEL_ID = "all-MiniLM-L6-v2"
DIMENSIONS = 384
MAX_POSITIONS = 512

# "mean": the L2-normalized mean of the token vectors (sentence embeddings); "cls": the first token's vector as
# it is (the features a BERT sequence classifier's pooler reads).
Pooling = Literal["mean", "cls"]


class Encoder:
    """Turns texts into L2-normalized 384-dimensional vectors (float32).

    `cache_dir` holds the derived int8 model (built on first use). `max_tokens` is the window length (at most
    512), `window_overlap` the tokens shared by consecutive windows of a long text (default max_tokens // 8),
    `threads` the inference worker threads, each running single-threaded ONNX Runtime calls (default: the
    cores this process may use), `max_call_tokens` the padded tokens of one call (rows x length; a longer
    window runs alone), `max_batch_mb` the estimated transient memory of one call (see windows.batch_bytes).
    Thread-safe: `encode` may be called from several threads at once; all calls share the workers.

    `files` runs another int8 graph of the same recipe (a fine-tuned or imported encoder, see
    `engines/transformer.py`) instead of deriving all-MiniLM-L6-v2 into `cache_dir`; `model_id` names it and its
    width is read from the graph. `pooling` says how token vectors become one vector per window.
    """

    model_id = MODEL_ID
    dimensions = DIMENSIONS

    def __init__(
        self,
        cache_dir: Path,
        *,
        max_tokens: int = 256,
        threads: int | None = None,
        window_overlap: int | None = None,
        max_call_tokens: int = 192,
        max_batch_mb: int = 150,
        files: EncoderFiles | None = None,
        model_id: str | None = None,
        pooling: Pooling = "mean",
    ) -> None:
        if not 8 <= max_tokens <= MAX_POSITIONS:
            raise ConfigError(f"max_tokens: {max_tokens}, must be between 8 and {MAX_POSITIONS}")
        if window_overlap is None:
            window_overlap = max_tokens // 8  # 32 tokens at 256: a sentence or so of shared context
        if not 0 <= window_overlap < max_tokens // 2:
            raise ConfigError(f"window_overlap: {window_overlap}, must be between 0 and {max_tokens // 2 - 1}")
        self.max_tokens = max_tokens
        self.window_overlap = window_overlap
        self.max_call_tokens = max_call_tokens
        self.max_batch_bytes = max_batch_mb * 1_000_000
        self.threads = threads or len(os.sched_getaffinity(0))
        self.files: EncoderFiles = files or prepare(Path(cache_dir))
        self.pooling = pooling
        if model_id is not None:
            self.model_id = model_id
        self._tokenizer = _load_tokenizer(self.files.tokenizer)
        self._session = _load_session(self.files.model)
        width = self._session.get_outputs()[0].shape[-1]
        self.dimensions = width if isinstance(width, int) else DIMENSIONS
        self._input_names = {i.name for i in self._session.get_inputs()}
        self._preprocessor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder-tokenize")
        self._workers = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="encoder-infer")

    @property
    def sha256(self) -> str:
        """Fingerprint of the source weights, the tokenizer and the quantization recipe (what vectors depend on)."""
        return self.files.fingerprint

    @property
    def earlier_sha256(self) -> frozenset[str]:
        """Fingerprints of this encoder under earlier recipes whose trained heads it may serve."""
        return self.files.earlier

    def close(self) -> None:
        self._preprocessor.shutdown(wait=True)
        self._workers.shutdown(wait=True)

    # The three steps ----------------------------------------------------------------------------------------

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text with [CLS] and [SEP], not truncated."""
        return [list(encoding.ids) for encoding in self._tokenizer.encode_batch(list(texts))]

    def preprocess(self, texts: Sequence[str], first: int, long_text: LongText, batch_size: int) -> list[WindowBatch]:
        """Windows of `texts` (numbered from `first`), grouped into padded batches within the call budgets."""
        windows: list[list[int]] = []
        owners: list[int] = []
        for offset, ids in enumerate(self.tokenize(texts)):
            for window in split_windows(ids, self.max_tokens, self.window_overlap, truncate=long_text == "truncate"):
                windows.append(window)
                owners.append(first + offset)
        return chunk_windows(
            windows,
            owners,
            max_rows=max(batch_size, 1),
            max_bytes=self.max_batch_bytes,
            max_tokens=self.max_call_tokens,
        )

    def infer(self, batch: WindowBatch) -> NDArray[np.float32]:
        """Token vectors (rows, length, 384) of one padded batch."""
        feeds: dict[str, NDArray[np.int64]] = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(batch.input_ids)
        hidden: NDArray[np.float32] = self._session.run(None, feeds)[0]
        return hidden

    def postprocess(self, batch: WindowBatch, hidden: NDArray[np.float32]) -> NDArray[np.float32]:
        """One vector per window: normalized mean of its tokens, or its first token's (see `Pooling`)."""
        if self.pooling == "cls":
            first: NDArray[np.float32] = np.ascontiguousarray(hidden[:, 0, :])
            return first
        return mean_pool(hidden, batch.attention_mask)

    # Public API -----------------------------------------------------------------------------------------------

    def encode(
        self, texts: Sequence[str], *, long_text: LongText = "mean", batch_size: int = 64
    ) -> NDArray[np.float32]:
        """Vectors of shape (len(texts), 384), one per text, in input order.

        `long_text` says what to do with a text longer than `max_tokens`: embed every window and average them
        (weighted by their tokens) or take the element-wise max, or keep only the first window ("truncate").
        """
        if long_text not in LONG_TEXT_CHOICES:
            raise InvalidRequest(f"long_text: {long_text!r}, choose one of {', '.join(LONG_TEXT_CHOICES)}")
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        # Characters are a cheap proxy for tokens: sorting by them keeps padding low without tokenizing twice.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        ordered = [texts[i] for i in order]
        aggregator = WindowAggregator(len(texts), self.dimensions, long_text, normalized=self.pooling == "mean")
        # Calls are submitted as soon as their group is tokenized; results are combined in submission order.
        calls = [
            (batch, self._workers.submit(self._embed, batch))
            for batch in self._pipelined(ordered, long_text, batch_size)
        ]
        for batch, call in calls:
            aggregator.add(call.result(), batch.owner, batch.attention_mask.sum(axis=1))
        by_sorted_position = aggregator.result()
        out = np.empty_like(by_sorted_position)
        out[np.asarray(order)] = by_sorted_position
        return out

    def _embed(self, batch: WindowBatch) -> NDArray[np.float32]:
        return self.postprocess(batch, self.infer(batch))

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text including [CLS] and [SEP], before any windowing (what usage reports count)."""
        return [len(ids) for ids in self.tokenize(texts)]

    def _pipelined(self, ordered: list[str], long_text: LongText, batch_size: int) -> Iterator[WindowBatch]:
        """Batches of `ordered`, pre-processing group k+1 in the worker thread while group k is inferred."""
        step = max(batch_size, 1)
        starts = list(range(0, len(ordered), step))

        def submit(start: int) -> Future[list[WindowBatch]]:
            return self._preprocessor.submit(self.preprocess, ordered[start : start + step], start, long_text, step)

        pending = submit(starts[0])
        for k in range(len(starts)):
            batches = pending.result()
            if k + 1 < len(starts):
                pending = submit(starts[k + 1])
            yield from batches


def _load_tokenizer(path: Path) -> Any:
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ConfigError(f"the sentence encoder needs the package tokenizers: {INSTALL_HINT}") from None
    tokenizer = Tokenizer.from_file(str(path))
    # The shipped file pads and truncates everything to 128 tokens; windows and padding are ours to decide.
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def _load_session(path: Path, threads: int = 1) -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError(f"the sentence encoder needs the package onnxruntime: {INSTALL_HINT}") from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Inputs change shape on every call (batch rows, padded length). ONNX Runtime's arena and memory patterns
    # keep the peak of every shape seen: measured 925 MB RSS after short batches plus one long text, against
    # 210-275 MB without them, for about 4% of speed (within the noise of a shared 2-core machine).
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


_shared: dict[tuple[Path, int, int | None], Encoder] = {}
_shared_lock = threading.Lock()


def get_encoder(cache_dir: Path, *, max_tokens: int = 256, threads: int | None = None) -> Encoder:
    """The process-wide encoder for these settings, loaded once, so every engine shares one model in memory.

    The caller says where the model lives (settings.encoder_dir, else settings.data_dir / "encoder"): this module
    reads no environment variable and keeps no default directory.
    """
    directory = Path(cache_dir).resolve()
    key = (directory, max_tokens, threads)
    with _shared_lock:
        encoder = _shared.get(key)
        if encoder is None:
            encoder = Encoder(directory, max_tokens=max_tokens, threads=threads)
            _shared[key] = encoder
        return encoder


class LazyEncoder:
    """The shared encoder of `cache_dir`, loaded on first use rather than at construction.

    What a composition root hands to the model store, the zero-shot engines and the embedding service: a process
    that serves only linear models never loads the ONNX model, and one that needs it loads it once.
    """

    model_id = MODEL_ID
    dimensions = DIMENSIONS

    def __init__(self, cache_dir: Path, *, threads: int | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.threads = threads
        self._encoder: Encoder | None = None

    def encoder(self) -> Encoder:
        """The loaded encoder (loading it the first time)."""
        # Kept after the first call: `get_encoder` resolves its directory on the filesystem every time.
        if self._encoder is None:
            self._encoder = get_encoder(self.cache_dir, threads=self.threads)
        return self._encoder

    @property
    def sha256(self) -> str:
        return self.encoder().sha256

    @property
    def earlier_sha256(self) -> frozenset[str]:
        return self.encoder().earlier_sha256

    def encode(
        self, texts: Sequence[str], *, long_text: LongText = "mean", batch_size: int = 64
    ) -> NDArray[np.float32]:
        return self.encoder().encode(texts, long_text=long_text, batch_size=batch_size)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.encoder().count_tokens(texts)
