"""Tiny Hugging Face models for the transformer engine's tests, written by transformers' own `save_pretrained`.

Each family (BERT, DistilBERT, RoBERTa, XLM-RoBERTa, and MPNet for the refusals) gets a randomly initialized
two-layer model of width 32 with the all-MiniLM-L6-v2 tokenizer (its WordPiece vocabulary sized the embedding
table): real model directories of the layouts `models import` and `--base-model` read, fine-tuned in a few
hundred milliseconds instead of the seconds a real encoder takes. Only one test trains the default MiniLM base.

Models are built once per test process, into one temporary directory removed at exit.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

FAMILIES = ("bert", "distilbert", "roberta", "xlm-roberta")
_SIZE = {"hidden": 32, "layers": 2, "heads": 4, "inner": 64}


@functools.cache
def _root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="labelwise-tiny-hf-"))
    atexit.register(shutil.rmtree, root, True)
    return root


def _tokenizer_source() -> Path:
    from labelwise.engines.transformer import default_base_model

    return default_base_model()


def _config(family: str, **extra: Any) -> Any:
    from transformers import AutoConfig

    vocab = 30522  # the MiniLM tokenizer's vocabulary
    if family == "distilbert":
        return AutoConfig.for_model(
            family, vocab_size=vocab, dim=_SIZE["hidden"], n_layers=_SIZE["layers"], n_heads=_SIZE["heads"],
            hidden_dim=_SIZE["inner"], max_position_embeddings=512, **extra,
        )  # fmt: skip
    positions = 514 if family in ("roberta", "xlm-roberta") else 512  # RoBERTa counts from pad_token_id + 1
    return AutoConfig.for_model(
        family, vocab_size=vocab, hidden_size=_SIZE["hidden"], num_hidden_layers=_SIZE["layers"],
        num_attention_heads=_SIZE["heads"], intermediate_size=_SIZE["inner"], max_position_embeddings=positions,
        **extra,
    )  # fmt: skip


def _save_tokenizer(directory: Path) -> None:
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(_tokenizer_source()).save_pretrained(directory)


@functools.cache
def tiny_base_model(family: str = "bert") -> Path:
    """A randomly initialized two-layer encoder of `family` (config.json, model.safetensors, tokenizer.json)."""
    import torch
    from transformers import AutoModel

    target = _root() / f"base-{family}"
    torch.manual_seed(0)
    AutoModel.from_config(_config(family)).save_pretrained(target)
    _save_tokenizer(target)
    return target


def fine_tuned_classifier(
    directory: Path, texts: list[str], labels: list[str], *, family: str = "bert", steps: int = 30
) -> list[str]:
    """Fine-tune a tiny sequence classifier of `family` for a few steps and `save_pretrained` it into
    `directory`; returns the label names in id order (deliberately not sorted)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    names = sorted(set(labels), reverse=True)
    config = _config(family, num_labels=len(names), id2label=dict(enumerate(names)))
    config.label2id = {n: i for i, n in enumerate(names)}
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config)
    tokenizer = AutoTokenizer.from_pretrained(_tokenizer_source())
    # One thread: these models are too small to gain from more, and on a busy machine threads wait for each other.
    torch.set_num_threads(1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    target = torch.tensor([names.index(label) for label in labels])
    batch = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    batch.pop("token_type_ids", None)  # DistilBERT and RoBERTa take none; BERT's are all 0 anyway
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model(**batch, labels=target).loss.backward()
        optimizer.step()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return names
