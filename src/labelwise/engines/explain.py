"""Per-word explanations: which words or n-grams of a text pushed a label's score most.

Which one an engine gets is its `explanation` capability (engines/base.py), asked of `engine.explainer()`, so an
`auto` model whose chosen candidate is linear gets the linear method too.

- Linear engine: the raw score of label c is the sum over features j of tf-idf(j) x coef[j, c]. Word n-gram
  features are their own terms; character n-grams are credited to the word they were cut from (a feature that
  occurs several times is shared equally among its occurrences). Cost: one featurization of the text and a gather
  of its rows of the weight matrix, about as much as one prediction.
- Any other engine: leave-one-word-out. The text is scored again with each of its first `max_words` words left
  out; a word's weight is how much the label's probability drops without it. Cost: `max_words + 1` predictions
  in one engine call.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labelwise.engines._ngram_index import char_grams, word_grams
from labelwise.engines.base import Engine

_TOKEN = re.compile(r"\w+")
_MARKERS = {"<s>", "</s>"}


@dataclass(frozen=True, slots=True)
class Term:
    """A word or n-gram of the text (lower case) and how much it raised the label's score."""

    term: str
    weight: float


@dataclass(frozen=True, slots=True)
class Explanation:
    label: str
    method: str  # "linear" (coefficient x tf-idf) or "leave_one_out" (probability drop)
    terms: list[Term]


def explain(
    engine: Engine, text: str, labels: Sequence[str], *, max_terms: int = 5, max_words: int = 64
) -> list[Explanation]:
    """For each of `labels`, up to `max_terms` terms of `text` with a positive weight, strongest first."""
    index = {label: i for i, label in enumerate(engine.classes_)}
    columns = [index[label] for label in labels]
    explainer = engine.explainer()
    method = explainer.explanation
    if method == "linear":
        weights = _linear(explainer, text, columns)
    else:
        weights = _leave_one_out(engine, text, columns, max_words)
    out = []
    for label, per_term in zip(labels, weights, strict=True):
        ranked = sorted(((w, t) for t, w in per_term.items() if w > 0.0), key=lambda p: (-p[0], p[1]))
        out.append(Explanation(label, method, [Term(t, round(w, 6)) for w, t in ranked[:max_terms]]))
    return out


def _unit(word: str) -> str:
    # "card," and "card" are one term: the word's `\w+` tokens, as the word n-gram features see them.
    tokens = _TOKEN.findall(word)
    return " ".join(tokens) if tokens else word


def _linear(engine: Engine, text: str, columns: list[int]) -> list[dict[str, float]]:
    featurizer, coef = engine.feature_weights()
    parts = featurizer.rows([text])
    value = dict(zip(parts.indices.tolist(), parts.values.tolist(), strict=True))
    lowered = text.lower()
    occurrences: dict[int, list[str]] = defaultdict(list)
    word_index = featurizer.word_index
    for gram in word_grams(lowered, featurizer.config.word_ngrams):
        j = word_index.get(gram)
        if j is not None:
            term = " ".join(t for t in gram.split(" ") if t not in _MARKERS)
            if term:
                occurrences[j].append(term)
    lo, hi = featurizer.config.char_ngrams
    char_index = featurizer.char_index
    for word in lowered.split():
        term = _unit(word)
        for gram in char_grams(word, lo, hi):
            j = char_index.get(gram)
            if j is not None:
                occurrences[j].append(term)
    out: list[dict[str, float]] = [defaultdict(float) for _ in columns]
    for j, terms in occurrences.items():
        share = value.get(j, 0.0) / len(terms)
        row = coef[j]
        for k, c in enumerate(columns):
            credit = share * float(row[c])
            for term in terms:
                out[k][term] += credit
    return [dict(d) for d in out]


def _leave_one_out(engine: Engine, text: str, columns: list[int], max_words: int) -> list[dict[str, float]]:
    words = text.split()[:max_words]
    variants = [text] + [" ".join(words[:i] + words[i + 1 :]) or " " for i in range(len(words))]
    proba = engine.predict_proba(variants)
    out: list[dict[str, float]] = [defaultdict(float) for _ in columns]
    for i, word in enumerate(words):
        drop = proba[0] - proba[i + 1]
        for k, c in enumerate(columns):
            out[k][_unit(word.lower())] += float(np.asarray(drop)[c])
    return [dict(d) for d in out]
