"""Fine-tuning a Hugging Face encoder end to end with PyTorch: the training half of the transformer engine.

Only `engines/transformer.py` imports this module, and only inside `fit`: PyTorch and transformers are the
`train-transformer` extra, and a serving process never loads them (tests/unit/test_startup.py checks it).

The recipe: mean pooling over real tokens, L2-normalized (what the serving encoder computes, so the head reads
the same features at serve time), a linear head; AdamW with warm-up and linear decay, class weights, batches of
texts of similar length, early stopping on the validation split, a fixed seed. With few examples per label the
body is first tuned contrastively on pairs of texts (SetFit: same label -> cosine 1, different -> 0) and the
head is then fitted on its frozen features by the engine. A checkpoint is written after each epoch when a
checkpoint directory is given, and a run that finds one for the same data and settings resumes from it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from labelwise.domain import TaskType
from labelwise.encoder.layouts import UnsupportedLayout, layout_of
from labelwise.engines.calibration import log_loss, tempered_log_loss
from labelwise.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

EXTRA_HINT = "pip install 'labelwise[train-transformer]'"
CHECKPOINT = "checkpoint.pt"

Step = Callable[[str, float], None]


def validation_figures(logits: NDArray[np.float64], y: NDArray[np.bool_], multi_label: bool) -> dict[str, float]:
    """Log-loss at the best temperature (`loss`), the plain log-loss (`raw_loss`) and the accuracy (micro-F1 at
    0.5 for multi-label) of validation logits."""
    task = TaskType.MULTI_LABEL if multi_label else TaskType.SINGLE_LABEL
    if multi_label:
        predicted = logits > 0
        hits = float(np.sum(predicted & y))
        accuracy = 2 * hits / max(float(predicted.sum() + y.sum()), 1.0)
    else:
        accuracy = float(np.mean(np.argmax(logits, axis=1) == np.argmax(y, axis=1)))
    return {"loss": tempered_log_loss(logits, y, task), "raw_loss": log_loss(logits, y, task), "accuracy": accuracy}


def import_torch() -> Any:
    """`torch`, or a `ConfigError` naming the extra to install."""
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError:
        raise ConfigError(f"the transformer engine trains with PyTorch and transformers: {EXTRA_HINT}") from None
    return torch


@dataclass(frozen=True, slots=True)
class TrainConfig:
    base_dir: str
    max_tokens: int = 64
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 1e-4
    head_learning_rate: float = 3e-3
    # The head reads the normalized vectors times this: a unit vector gives a linear head logits of about +-1, and
    # at the head's learning rate these grew too slowly to tell 77 labels apart with confidence in three epochs
    # (banking77 stopped at 91.3 with its validation loss still falling). Folded into the exported head's weights.
    feature_scale: float = 16.0
    warmup: float = 0.1
    patience: int = 1
    time_budget: float | None = None
    seed: int = 13
    contrastive: bool = False
    contrastive_pairs: int = 20
    multi_label: bool = False
    checkpoint_dir: str | None = None
    threads: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))


@dataclass(slots=True)
class Tuned:
    """The tuned encoder's weights (PyTorch names and layout), its head (None after contrastive tuning), and
    what the run did."""

    weights: dict[str, NDArray[np.float32]]
    head_weight: NDArray[np.float32] | None  # (hidden, labels)
    head_bias: NDArray[np.float32] | None
    config: dict[str, Any]  # the encoder's config.json values (what the int8 export reads its layout from)
    info: dict[str, Any]


def fine_tune(
    train_texts: Sequence[str],
    y_train: NDArray[np.bool_],
    val_texts: Sequence[str],
    y_val: NDArray[np.bool_],
    config: TrainConfig,
    step: Step,
) -> Tuned:
    """Tune the encoder of `config.base_dir` on the data (see the module docstring)."""
    torch = import_torch()
    from tokenizers import Tokenizer
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    torch.set_num_threads(config.threads)
    base = Path(config.base_dir)
    hf_config = AutoConfig.from_pretrained(base)
    try:
        layout_of(hf_config.to_dict())
    except UnsupportedLayout as exc:
        raise DataError(f"base_model: {base.name}: {exc}", param="base_model") from None
    tokenizer = Tokenizer.from_file(str(base / "tokenizer.json"))
    tokenizer.enable_truncation(config.max_tokens)
    tokenizer.no_padding()
    body = AutoModel.from_pretrained(base)
    head = torch.nn.Linear(hf_config.hidden_size, y_train.shape[1])
    train_ids = [e.ids for e in tokenizer.encode_batch(list(train_texts))]
    val_ids = [e.ids for e in tokenizer.encode_batch(list(val_texts))]
    run = _Run(torch, body, head, config, step)
    if config.contrastive:
        info = run.contrastive(train_ids, y_train)
        return run.result(None, info, hf_config)
    info = run.supervised(train_ids, y_train, val_ids, y_val, fingerprint(train_texts, y_train, config))
    return run.result(head, info, hf_config)


def fingerprint(texts: Sequence[str], y: NDArray[np.bool_], config: TrainConfig) -> str:
    """What a checkpoint must match to be resumed: the data and every setting but where it is kept."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
    digest.update(np.packbits(y).tobytes())
    settings = {k: v for k, v in asdict(config).items() if k not in {"checkpoint_dir", "threads", "time_budget"}}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


class _Run:
    def __init__(self, torch: Any, body: Any, head: Any, config: TrainConfig, step: Step) -> None:
        self.torch, self.body, self.head, self.config, self.step = torch, body, head, config, step
        self.started = time.monotonic()
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # a GPU when one is present
        self.body.to(self.device)
        if self.head is not None:
            self.head.to(self.device)

    def out_of_time(self) -> bool:
        budget = self.config.time_budget
        return budget is not None and time.monotonic() - self.started > budget

    def batch(self, ids: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        length = max(len(x) for x in ids)
        input_ids = self.torch.zeros((len(ids), length), dtype=self.torch.long)
        mask = self.torch.zeros((len(ids), length), dtype=self.torch.long)
        for row, x in enumerate(ids):
            input_ids[row, : len(x)] = self.torch.tensor(x)
            mask[row, : len(x)] = 1
        return input_ids.to(self.device), mask.to(self.device)

    def embed(self, ids: Sequence[Sequence[int]]) -> Any:
        """Normalized mean-pooled vectors, as the serving encoder computes them."""
        input_ids, mask = self.batch(ids)
        hidden = self.body(input_ids=input_ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return self.torch.nn.functional.normalize(pooled, dim=1)

    def buckets(self, ids: Sequence[Sequence[int]], rng: random.Random) -> list[list[int]]:
        """Batches of texts of similar length: shuffle, sort within windows of 50 batches, shuffle batches."""
        size = self.config.batch_size
        order = list(range(len(ids)))
        rng.shuffle(order)
        batches: list[list[int]] = []
        window = size * 50
        for start in range(0, len(order), window):
            chunk = sorted(order[start : start + window], key=lambda i: len(ids[i]))
            batches.extend(chunk[i : i + size] for i in range(0, len(chunk), size))
        rng.shuffle(batches)
        return batches

    def loss_function(self, y: NDArray[np.bool_]) -> Any:
        """Class-weighted cross-entropy (single-label) or BCE with positive weights (multi-label)."""
        torch = self.torch
        counts = y.sum(axis=0).astype(np.float64)
        if self.config.multi_label:
            negatives = len(y) - counts
            pos_weight = np.clip(negatives / np.maximum(counts, 1.0), 1.0, 20.0)
            return torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, dtype=torch.float32).to(self.device))
        weight = len(y) / (len(counts) * np.maximum(counts, 1.0))
        return torch.nn.CrossEntropyLoss(weight=torch.tensor(weight, dtype=torch.float32).to(self.device))

    def optimizer(self, total_steps: int) -> tuple[Any, Any]:
        torch = self.torch
        groups = [
            {"params": list(self.body.parameters()), "lr": self.config.learning_rate},
            {"params": list(self.head.parameters()), "lr": self.config.head_learning_rate},
        ]
        optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
        warm = max(1, int(total_steps * self.config.warmup))

        def factor(done: int) -> float:
            if done < warm:
                return (done + 1) / warm
            return max(0.0, (total_steps - done) / max(1, total_steps - warm))

        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def logits(self, ids: Sequence[Sequence[int]]) -> Any:
        return self.head(self.embed(ids) * self.config.feature_scale)

    def validation_score(self, ids: Sequence[Sequence[int]], y: NDArray[np.bool_]) -> dict[str, float]:
        """How good this epoch's weights are on the validation rows, computed in batches without gradients.

        `loss` (lower is better, what selects the epoch) is the log-loss after the one temperature that suits these
        logits best: the probabilities are calibrated after training anyway, so an epoch is not held against for
        confidence that calibration takes back, only for ranking the right label lower. The plain loss and the
        accuracy (micro-F1 at 0.5 for multi-label) are reported beside it.
        """
        torch = self.torch
        self.body.eval()
        parts = []
        with torch.no_grad():
            order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
            for start in range(0, len(order), 64):
                rows = order[start : start + 64]
                parts.append((rows, self.logits([ids[i] for i in rows]).float().cpu().numpy()))
        self.body.train()
        logits = np.zeros((len(ids), y.shape[1]), dtype=np.float64)
        for rows, values in parts:
            logits[rows] = values
        return validation_figures(logits, y, self.config.multi_label)

    def target(self, y: NDArray[np.bool_]) -> Any:
        if self.config.multi_label:
            return self.torch.tensor(y, dtype=self.torch.float32).to(self.device)
        return self.torch.tensor(np.argmax(y, axis=1), dtype=self.torch.long).to(self.device)

    def supervised(
        self,
        ids: Sequence[Sequence[int]],
        y: NDArray[np.bool_],
        val_ids: Sequence[Sequence[int]],
        y_val: NDArray[np.bool_],
        data_fingerprint: str,
    ) -> dict[str, Any]:
        torch, config = self.torch, self.config
        loss = self.loss_function(y)
        steps_per_epoch = math.ceil(len(ids) / config.batch_size)
        total = steps_per_epoch * config.epochs
        optimizer, scheduler = self.optimizer(total)
        state: dict[str, Any] = {"epoch": 0, "best": math.inf, "best_epoch": 0, "bad": 0, "history": []}
        best: dict[str, Any] | None = None
        checkpoint = Path(config.checkpoint_dir) / CHECKPOINT if config.checkpoint_dir else None
        resumed = False
        if checkpoint is not None and checkpoint.is_file():
            saved = torch.load(checkpoint, weights_only=True, map_location=self.device)
            if saved.get("fingerprint") == data_fingerprint:
                self.body.load_state_dict(saved["body"])
                self.head.load_state_dict(saved["head"])
                optimizer.load_state_dict(saved["optimizer"])
                scheduler.load_state_dict(saved["scheduler"])
                state = json.loads(saved["state"])
                best = saved.get("best_weights")
                resumed = True
                logger.info("transformer: resumed from the checkpoint after epoch %d", state["epoch"])
        stopped = "epochs"
        self.body.train()
        done = state["epoch"] * steps_per_epoch
        seen, stepping = 0, 0.0  # sentences and seconds of optimizer steps (validation passes not counted)
        for epoch in range(state["epoch"], config.epochs):
            batches = self.buckets(ids, random.Random(config.seed + epoch))
            for rows in batches:
                if self.out_of_time():
                    break
                began = time.monotonic()
                optimizer.zero_grad()
                value = loss(self.logits([ids[i] for i in rows]), self.target(y[rows]))
                value.backward()
                torch.nn.utils.clip_grad_norm_(self.body.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                done += 1
                seen += len(rows)
                stepping += time.monotonic() - began
                self.step(f"fine-tuning: epoch {epoch + 1}/{config.epochs}", 0.05 + 0.75 * done / total)
            figures = self.validation_score(val_ids, y_val) if len(val_ids) else {"loss": -float(epoch)}
            score = figures["loss"]
            measured = {f"validation_{name}": round(value, 5) for name, value in figures.items()}
            state["history"].append({"epoch": epoch + 1, **measured})
            state["epoch"] = epoch + 1
            if score < state["best"]:
                state.update(best=score, best_epoch=epoch + 1, bad=0)
                best = self.snapshot()
            else:
                state["bad"] += 1
            if checkpoint is not None:
                self.save_checkpoint(checkpoint, data_fingerprint, optimizer, scheduler, state, best)
            if self.out_of_time():
                stopped = "time budget"
                break
            if state["bad"] > config.patience:
                stopped = "early stopping"
                break
        if best is not None:
            self.body.load_state_dict(best["body"])
            self.head.load_state_dict(best["head"])
        return {
            "epochs_run": state["epoch"],
            "best_epoch": state["best_epoch"],
            "stopped_by": stopped,
            "resumed": resumed,
            "history": state["history"],
            "train_seconds": round(time.monotonic() - self.started, 1),
            "sentences_per_second": round(seen / max(stepping, 1e-9), 1),  # this run's steps (not a resumed one's)
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "body": {k: v.detach().clone() for k, v in self.body.state_dict().items()},
            "head": {k: v.detach().clone() for k, v in self.head.state_dict().items()},
        }

    def save_checkpoint(
        self, path: Path, data_fingerprint: str, optimizer: Any, scheduler: Any, state: Any, best: Any
    ) -> None:
        """Write the checkpoint atomically: a kill at any moment leaves the previous one or the new one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        saved = {
            "fingerprint": data_fingerprint,
            "body": self.body.state_dict(),
            "head": self.head.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "state": json.dumps(state),
            "best_weights": best,
        }
        temporary = path.with_suffix(".tmp")
        self.torch.save(saved, temporary)
        os.replace(temporary, path)

    def contrastive(self, ids: Sequence[Sequence[int]], y: NDArray[np.bool_]) -> dict[str, Any]:
        """SetFit's first step: cosine similarity of pairs pulled to 1 (same label) or 0 (different)."""
        torch, config = self.torch, self.config
        rng = random.Random(config.seed)
        labels = np.argmax(y, axis=1)
        by_label = {int(c): [int(i) for i in np.flatnonzero(labels == c)] for c in np.unique(labels)}
        pairs: list[tuple[int, int, float]] = []
        for _ in range(config.contrastive_pairs):
            for i in range(len(ids)):
                same = by_label[int(labels[i])]
                pairs.append((i, rng.choice(same), 1.0))
                other = rng.choice([c for c in by_label if c != int(labels[i])] or [int(labels[i])])
                pairs.append((i, rng.choice(by_label[other]), 1.0 if other == int(labels[i]) else 0.0))
        rng.shuffle(pairs)
        size = max(config.batch_size // 2, 1)
        total = math.ceil(len(pairs) / size)
        optimizer = torch.optim.AdamW(self.body.parameters(), lr=config.learning_rate / 3)
        self.body.train()
        for n, start in enumerate(range(0, len(pairs), size)):
            if self.out_of_time():
                break
            chunk = pairs[start : start + size]
            left = self.embed([ids[a] for a, _, _ in chunk])
            right = self.embed([ids[b] for _, b, _ in chunk])
            target = torch.tensor([t for _, _, t in chunk], dtype=torch.float32).to(self.device)
            value = torch.nn.functional.mse_loss((left * right).sum(1), target)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            self.step("contrastive pairs", 0.05 + 0.75 * (n + 1) / total)
        return {"contrastive_pairs": len(pairs), "train_seconds": round(time.monotonic() - self.started, 1)}

    def result(self, head: Any, info: dict[str, Any], hf_config: Any) -> Tuned:
        weights = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in self.body.state_dict().items()}
        head_weight = head_bias = None
        if head is not None:
            scaled = head.weight.detach().cpu().numpy().T * self.config.feature_scale
            head_weight = scaled.astype(np.float32)
            head_bias = head.bias.detach().cpu().numpy().astype(np.float32)
        return Tuned(
            weights,
            head_weight,
            head_bias,
            hf_config.to_dict(),
            info,
        )


def torch_logits(tuned: Tuned, base_dir: str, texts: Sequence[str], max_tokens: int) -> NDArray[np.float64]:
    """Scores of `texts` by the PyTorch model with `tuned`'s weights (for the int8 parity check)."""
    torch = import_torch()
    from tokenizers import Tokenizer
    from transformers import AutoConfig, AutoModel

    tokenizer = Tokenizer.from_file(str(Path(base_dir) / "tokenizer.json"))
    tokenizer.enable_truncation(max_tokens)
    tokenizer.no_padding()
    body = AutoModel.from_config(AutoConfig.from_pretrained(base_dir))
    body.load_state_dict({k: torch.from_numpy(v) for k, v in tuned.weights.items()})
    body.eval()
    run = _Run(torch, body, None, TrainConfig(base_dir=base_dir), lambda s, f: None)
    if tuned.head_weight is None or tuned.head_bias is None:
        raise ValueError("parity needs the fine-tuned head")
    out = []
    ids = [e.ids for e in tokenizer.encode_batch(list(texts))]
    with torch.no_grad():
        for start in range(0, len(ids), 64):
            vectors = run.embed(ids[start : start + 64]).cpu().numpy()
            out.append(vectors @ tuned.head_weight + tuned.head_bias)
    return np.vstack(out).astype(np.float64) if out else np.zeros((0, tuned.head_weight.shape[1]))
