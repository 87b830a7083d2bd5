"""Small Hugging Face models for the transformer engine's tests, written by transformers' own `save_pretrained`.

`tiny_base_model()` is all-MiniLM-L6-v2 cut to its first layer: pretrained embeddings (so a few steps learn the
synthetic topics) at a sixth of the cost. It is derived once per machine into the temp directory, like the
shared encoder, and renamed into place so that concurrent test runs never see half a directory.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path


def _cache_root() -> Path:
    return Path(os.environ.get("LABELWISE_TEST_TRANSFORMER_CACHE") or Path(tempfile.gettempdir()) / "labelwise-test-hf")


@functools.cache
def tiny_base_model() -> Path:
    """A one-layer all-MiniLM-L6-v2 encoder directory (config.json, model.safetensors, tokenizer.json)."""
    target = _cache_root() / "minilm-1-layer"
    if (target / "model.safetensors").is_file():
        return target
    from transformers import AutoModel, AutoTokenizer

    from labelwise.engines.transformer import default_base_model

    base = default_base_model()
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=".build-"))
    AutoModel.from_pretrained(base, num_hidden_layers=1).save_pretrained(work)
    AutoTokenizer.from_pretrained(base).save_pretrained(work)
    try:
        os.rename(work, target)
    except OSError:  # another run finished first
        shutil.rmtree(work, ignore_errors=True)
    return target


def fine_tuned_classifier(directory: Path, texts: list[str], labels: list[str], steps: int = 6) -> list[str]:
    """Fine-tune a sequence classifier on the tiny base for a few steps and `save_pretrained` it into
    `directory`; returns the label names in id order (deliberately not sorted)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    names = sorted(set(labels), reverse=True)
    base = tiny_base_model()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(names), id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)}
    )
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    target = torch.tensor([names.index(label) for label in labels])
    batch = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model(**batch, labels=target).loss.backward()
        optimizer.step()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return names
