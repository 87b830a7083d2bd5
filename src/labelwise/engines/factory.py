"""Engine names to classes. Imports lazily so an engine's heavy libraries load only when it is used."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any

from labelwise.engines.base import Engine, TextEncoder
from labelwise.errors import InvalidRequest

_ENGINES: dict[str, str] = {
    "linear": "labelwise.engines.linear:LinearEngine",
    "embedding": "labelwise.engines.embedding:EmbeddingEngine",
    "zeroshot": "labelwise.engines.zeroshot:ZeroShotEngine",
    "auto": "labelwise.engines.auto:AutoEngine",
    "llm": "labelwise.engines.llm:LLMEngine",
}


def register_engine(name: str, target: str) -> None:
    """Make an engine class (`"package.module:Class"`) available under `name` (plugins, test doubles)."""
    _ENGINES[name] = target


def engine_names() -> list[str]:
    """Names accepted by `--engine` and the training API."""
    return sorted(_ENGINES)


def engine_class(name: str) -> type[Engine]:
    """The class registered under `name`; `InvalidRequest` naming the choices otherwise."""
    try:
        target = _ENGINES[name]
    except KeyError:
        raise InvalidRequest(
            f"engine: unknown engine {name!r}; choose one of {', '.join(engine_names())}", param="engine"
        ) from None
    module_name, _, class_name = target.partition(":")
    cls: type[Engine] = getattr(import_module(module_name), class_name)
    return cls


def create_engine(name: str, *, encoder: TextEncoder | None = None, **params: Any) -> Engine:
    """A new, unfitted engine with the given hyperparameters; `encoder` goes to engines that need one."""
    cls = engine_class(name)
    if cls.needs_encoder:
        params["encoder"] = encoder
    return cls(**params)


def load_engine(name: str, directory: Path, *, encoder: TextEncoder | None = None) -> Engine:
    """The engine registered under `name`, read from `directory`; `encoder` goes to engines that need one."""
    cls = engine_class(name)
    return cls.load(directory, encoder=encoder) if cls.needs_encoder else cls.load(directory)
