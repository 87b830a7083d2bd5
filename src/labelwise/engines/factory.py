"""Engine names to classes. Imports lazily so an engine's heavy libraries load only when it is used."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
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
    "transformer": "labelwise.engines.transformer:TransformerEngine",
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


def check_params(name: str, params: Mapping[str, Any]) -> None:
    """`InvalidRequest` naming the first of `params` that engine `name` does not take, and the ones it does.

    Only the names are checked here; a value of the wrong kind is the engine's to refuse when it is built."""
    cls = engine_class(name)
    accepted = [
        p.name
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.name not in ("self", "encoder") and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    for key in params:
        if key not in accepted:
            choices = ", ".join(accepted) if accepted else "none"
            raise InvalidRequest(
                f"params.{key}: the {name!r} engine has no such hyperparameter; it takes: {choices}",
                param=f"params.{key}",
            )


def create_engine(name: str, *, encoder: TextEncoder | None = None, **params: Any) -> Engine:
    """A new, unfitted engine with the given hyperparameters; `encoder` goes to engines that need one."""
    check_params(name, params)
    cls = engine_class(name)
    if cls.needs_encoder:
        params["encoder"] = encoder
    return cls(**params)


def load_engine(name: str, directory: Path, *, encoder: TextEncoder | None = None) -> Engine:
    """The engine registered under `name`, read from `directory`; `encoder` goes to engines that need one."""
    cls = engine_class(name)
    return cls.load(directory, encoder=encoder) if cls.needs_encoder else cls.load(directory)
