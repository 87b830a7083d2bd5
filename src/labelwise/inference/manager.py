"""Which model version serves a request, with hot reload and no restart.

Each worker keeps an in-memory snapshot of the model store and a route table `(name, alias) -> version`. A
background task polls `ModelRepository.fingerprint()`; when it changes, the snapshot is re-read and every route is
re-resolved. A route moves to its new version only after that version has loaded, so a version that fails its
checksum or fails to load is refused (and logged) while the previous one keeps serving. A request holds the
`LoadedModel` it resolved, so requests in flight finish on the version they started with.

At start every model's `production` alias is loaded; other aliases and pinned versions load on first use.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from labelwise.concurrency import SharedCalls
from labelwise.domain import ModelVersion, Timing
from labelwise.engines.base import Engine, FloatArray
from labelwise.errors import ModelLoadError, ModelNotFound, Overloaded, StorageUnavailable
from labelwise.inference.batcher import MicroBatcher
from labelwise.inference.cache import PredictionCache, text_digest
from labelwise.registry.store import ModelStore, parse_ref
from labelwise.storage.repositories import ModelRepository

logger = logging.getLogger(__name__)

# A model loaded for a pinned version or a non-production alias is dropped after this long unused.
IDLE_UNLOAD_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class BatchingConfig:
    """How engine calls are coalesced; see `MicroBatcher`."""

    max_size: int = 256
    max_wait_ms: float = 2.0
    queue_max: int = 2048
    executor: Executor | None = None


@dataclass(slots=True)
class LoadedModel:
    """One model version in memory, with its own batcher."""

    record: ModelVersion
    engine: Engine
    batcher: MicroBatcher
    cache: PredictionCache
    last_used: float = field(default_factory=time.monotonic)

    async def predict_proba(self, texts: Sequence[str]) -> tuple[FloatArray, Timing]:
        """Scores for `texts` in `engine.classes_` order: cached rows where known, one batched call for the rest."""
        self.last_used = time.monotonic()
        ref = self.record.ref
        keys = [(ref, text_digest(t)) for t in texts]
        rows = self.cache.get_many(keys)
        missing = [i for i, row in enumerate(rows) if row is None]
        if not missing:
            return np.stack(rows), Timing()  # type: ignore[arg-type]  # no None left
        if len(missing) == len(texts):
            proba, timing = await self.batcher.submit(texts)
            self.cache.put_many(keys, proba)
            return proba, timing
        proba, timing = await self.batcher.submit([texts[i] for i in missing])
        self.cache.put_many([keys[i] for i in missing], proba)
        for i, row in zip(missing, proba, strict=True):
            rows[i] = row
        return np.stack(rows), timing  # type: ignore[arg-type]


class ModelManager:
    """Resolves model references to loaded versions and keeps them current."""

    def __init__(
        self,
        store: ModelStore,
        repository: ModelRepository,
        *,
        poll_seconds: float,
        cache: PredictionCache,
        batching: BatchingConfig,
    ) -> None:
        self.store = store
        self.repo = repository
        self.poll_seconds = poll_seconds
        self.cache = cache
        self.batching = batching
        self.ready = False
        self._records: dict[str, list[ModelVersion]] = {}
        self._fingerprint: tuple[int, str] | None = None
        self._loaded: dict[str, LoadedModel] = {}
        self._routes: dict[tuple[str, str], str] = {}
        self._failed: dict[str, str] = {}  # ref -> sha256 refused; retried only if the stored checksum changes
        self._loading: SharedCalls[str, LoadedModel] = SharedCalls()
        self._poller: asyncio.Task[None] | None = None
        self._poll_ok = True

    # Lifecycle -----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Load the production models and keep polling for changes, in a background task."""
        self._poller = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        gc.unfreeze()  # frozen while serving (see `_run`); a process that goes on (tests, the CLI) collects all

    async def _run(self) -> None:
        while True:
            try:
                was_ready = self.ready
                await self.refresh()
                self.ready = True
                if not was_ready:
                    # Everything alive now (modules, the app, the loaded models) lives as long as the process.
                    # Moving it out of the collector's view makes a full collection scan only newer objects:
                    # measured 79 ms for one full collection of a serving worker before, a few ms after.
                    gc.freeze()
                if not self._poll_ok:
                    logger.info("model store reachable again")
                self._poll_ok = True
            except Exception as exc:
                # The database may be briefly away; keep serving what is loaded and say so once (without a
                # traceback when it is an outage: that is no bug, and the database has logged it).
                if self._poll_ok and isinstance(exc, StorageUnavailable):
                    logger.warning("model store unreachable; serving the models already loaded")
                elif self._poll_ok:
                    logger.exception("model store poll failed; serving the models already loaded")
                self._poll_ok = False
            await asyncio.sleep(self.poll_seconds)

    # Reading -------------------------------------------------------------------------------------------------

    def models(self) -> dict[str, list[ModelVersion]]:
        """The snapshot of every model and its versions (newest first) as of the last poll."""
        return self._records

    def loaded_refs(self) -> list[str]:
        return sorted(self._loaded)

    def serving(self, name: str, alias: str = "production") -> str | None:
        """The version ref that `name@alias` is served from right now, if it has been resolved."""
        return self._routes.get((name, alias))

    async def get(self, ref: str) -> LoadedModel:
        """The loaded version for `name`, `name@alias` or `name:version`, loading it on first use."""
        parsed = parse_ref(ref)
        if not self.ready:
            # Before the first snapshot every name would look unknown: say "not yet", not "no such model".
            raise Overloaded("the server is starting and its models are not loaded yet; retry shortly")
        versions = self._records.get(parsed.name)
        if not versions:
            raise ModelNotFound(f"model: model {parsed.name!r} not found", param="model")
        if parsed.version is not None:
            record = next((v for v in versions if v.version == parsed.version), None)
            if record is None:
                raise ModelNotFound(f"model: model {parsed.name!r} has no version {parsed.version}", param="model")
            return await self._ensure_loaded(record)
        key = (parsed.name, parsed.alias or "production")
        routed = self._routes.get(key)
        if routed is not None and routed in self._loaded:
            return self._loaded[routed]
        record = _resolve_alias(versions, key[1])
        if record is None:
            raise ModelNotFound(f"model: model {parsed.name!r} has no alias {key[1]!r}", param="model")
        loaded = await self._ensure_loaded(record)
        self._routes[key] = record.ref
        return loaded

    # Polling -------------------------------------------------------------------------------------------------

    async def refresh(self) -> bool:
        """Re-read the store if it changed and move routes to versions that load; True if anything changed."""
        fingerprint = await asyncio.to_thread(self.repo.fingerprint)
        changed = fingerprint != self._fingerprint
        if changed:
            self._records = await asyncio.to_thread(self.store.all)
            await self._reroute()
            self._fingerprint = fingerprint
        self._unload_unused()
        self.ready = True
        return changed

    async def _reroute(self) -> None:
        wanted = set(self._routes) | {(name, "production") for name in self._records}
        for key in sorted(wanted):
            target = _resolve_alias(self._records.get(key[0], []), key[1])
            current = self._routes.get(key)
            if target is None:
                self._routes.pop(key, None)
                continue
            if current == target.ref and current in self._loaded:
                continue
            try:
                await self._ensure_loaded(target)
            except ModelLoadError:
                if current is not None and not self._exists(current):
                    self._routes.pop(key, None)  # the old version was deleted: nothing left to fall back on
                continue
            if current != target.ref:
                logger.info("model route moved", extra={"model": key[0], "alias": key[1], "version": target.ref})
            self._routes[key] = target.ref

    def _exists(self, ref: str) -> bool:
        name, _, version = ref.partition(":")
        return any(v.version == version for v in self._records.get(name, []))

    def _unload_unused(self) -> None:
        routed = set(self._routes.values())
        now = time.monotonic()
        for ref, loaded in list(self._loaded.items()):
            idle = now - loaded.last_used > IDLE_UNLOAD_SECONDS
            if ref not in routed and (idle or not self._exists(ref)):
                del self._loaded[ref]
                logger.info("model unloaded", extra={"version": ref})

    # Loading -------------------------------------------------------------------------------------------------

    async def _ensure_loaded(self, record: ModelVersion) -> LoadedModel:
        loaded = self._loaded.get(record.ref)
        if loaded is not None and loaded.record.sha256 == record.sha256:
            return loaded
        if self._failed.get(record.ref) == record.sha256:
            raise _refused(record)
        # One load however many requests wait for it; a client that disconnects does not cancel it for the others.
        return await self._loading.call(record.ref, lambda: self._load(record))

    async def _load(self, record: ModelVersion) -> LoadedModel:
        try:
            started = time.perf_counter()
            engine = await asyncio.to_thread(self.store.load, record)
        except Exception as exc:
            self._failed[record.ref] = record.sha256
            # A checksum mismatch explains itself; a crash inside the engine's loader needs its traceback.
            trace = exc.__cause__ if isinstance(exc, ModelLoadError) else exc
            logger.error("model version refused: %s", exc, extra={"version": record.ref}, exc_info=trace)
            raise _refused(record) from exc
        loaded = LoadedModel(record, engine, self._batcher(record, engine), self.cache)
        self._loaded[record.ref] = loaded
        logger.info(
            "model loaded",
            extra={"version": record.ref, "load_ms": round((time.perf_counter() - started) * 1000.0, 1)},
        )
        return loaded

    def _batcher(self, record: ModelVersion, engine: Engine) -> MicroBatcher:
        cfg = self.batching
        return MicroBatcher(
            engine.predict_proba,
            name=record.ref,
            max_size=cfg.max_size,
            max_wait_ms=cfg.max_wait_ms,
            queue_max=cfg.queue_max,
            executor=cfg.executor,
        )


def _resolve_alias(versions: list[ModelVersion], alias: str) -> ModelVersion | None:
    return next((v for v in versions if alias in v.aliases), None)


def _refused(record: ModelVersion) -> ModelLoadError:
    return ModelLoadError(f"model: version {record.ref} could not be loaded and is not served", param="model")
