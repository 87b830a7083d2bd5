"""Which Hugging Face encoder families the int8 graph runs, and how their weights map onto it.

The int8 graph (`quantize.py`) is a post-layer-norm transformer encoder with learned absolute positions and exact
GELU, with its parameters under BERT's names. BERT (MiniLM included), DistilBERT, RoBERTa and XLM-RoBERTa are that
network with other names or small differences, handled here:

- DistilBERT names its modules differently (`q_lin`, `sa_layer_norm`, `ffn.lin1`, ...) and has no token types;
- RoBERTa and XLM-R number positions from `pad_token_id + 1` (so the graph reads the position table from there)
  and have a single token type.

Other families are refused with one line saying why: MPNet (and DeBERTa) add relative-position terms inside
attention, ALBERT shares one layer's weights across layers with a factorized embedding, ELECTRA discriminators
use a separate embedding width; none of these is the graph this runtime builds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

SUPPORTED = ("bert", "distilbert", "roberta", "xlm-roberta")

_WHY_NOT = {
    "mpnet": "its attention adds relative-position buckets, which the int8 runtime does not compute",
    "deberta": "its attention is disentangled (relative positions), which the int8 runtime does not compute",
    "deberta-v2": "its attention is disentangled (relative positions), which the int8 runtime does not compute",
    "albert": "it shares one layer across the network with factorized embeddings, not the runtime's layout",
    "electra": "its embedding width differs from its hidden width, not the runtime's layout",
}

_DISTILBERT = [
    (r"^transformer\.layer\.(\d+)\.attention\.q_lin\.", r"encoder.layer.\1.attention.self.query."),
    (r"^transformer\.layer\.(\d+)\.attention\.k_lin\.", r"encoder.layer.\1.attention.self.key."),
    (r"^transformer\.layer\.(\d+)\.attention\.v_lin\.", r"encoder.layer.\1.attention.self.value."),
    (r"^transformer\.layer\.(\d+)\.attention\.out_lin\.", r"encoder.layer.\1.attention.output.dense."),
    (r"^transformer\.layer\.(\d+)\.sa_layer_norm\.", r"encoder.layer.\1.attention.output.LayerNorm."),
    (r"^transformer\.layer\.(\d+)\.ffn\.lin1\.", r"encoder.layer.\1.intermediate.dense."),
    (r"^transformer\.layer\.(\d+)\.ffn\.lin2\.", r"encoder.layer.\1.output.dense."),
    (r"^transformer\.layer\.(\d+)\.output_layer_norm\.", r"encoder.layer.\1.output.LayerNorm."),
]


class UnsupportedLayout(ValueError):
    """An encoder family or setting the int8 graph cannot run; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Layout:
    """What the graph builder needs to know about an encoder beyond its weights."""

    family: str
    heads: int
    epsilon: float
    position_offset: int  # the first position id of a text (RoBERTa: pad_token_id + 1)


def layout_of(config: Mapping[str, Any]) -> Layout:
    """The layout of a Hugging Face `config.json`; `UnsupportedLayout` naming the family and the reason."""
    family = str(config.get("model_type") or "")
    if family not in SUPPORTED:
        why = _WHY_NOT.get(family, "it is not one of the encoder layouts the int8 runtime builds")
        raise UnsupportedLayout(
            f"model_type {family or 'none'!r} is not supported: {why} (supported: {', '.join(SUPPORTED)})"
        )
    activation = str(config.get("activation" if family == "distilbert" else "hidden_act", "gelu"))
    if activation != "gelu":
        raise UnsupportedLayout(f"activation {activation!r} is not supported: the int8 runtime computes exact gelu")
    if family == "distilbert":
        return Layout(family, int(config["n_heads"]), 1e-12, 0)
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise UnsupportedLayout(
            f"position_embedding_type {config['position_embedding_type']!r} is not supported: "
            "the int8 runtime adds learned absolute positions"
        )
    offset = int(config.get("pad_token_id") or 0) + 1 if family in ("roberta", "xlm-roberta") else 0
    return Layout(family, int(config["num_attention_heads"]), float(config.get("layer_norm_eps", 1e-12)), offset)


def bert_names(weights: Mapping[str, NDArray[np.float32]], family: str) -> dict[str, NDArray[np.float32]]:
    """The encoder's parameters under BERT's names (`encoder.layer.0.output.dense.weight`), prefixes such as
    `bert.` or `distilbert.` removed; heads, poolers and classifiers are left out."""
    out: dict[str, NDArray[np.float32]] = {}
    for name, value in weights.items():
        for prefix in ("bert.", "distilbert.", "roberta.", "model."):
            name = name.removeprefix(prefix)
        if not name.startswith(("embeddings.", "encoder.", "transformer.")):
            continue
        if family == "distilbert":
            for pattern, replacement in _DISTILBERT:
                name = re.sub(pattern, replacement, name)
        out[name] = np.asarray(value, np.float32)
    return out
