"""The CLI's composition root: builds the concrete storage, store and services from Settings."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from labelwise.config import Settings
from labelwise.registry.store import ModelStore
from labelwise.services.keys import KeyService
from labelwise.services.training import ModelService
from labelwise.services.usage import UsageMeter
from labelwise.storage.db import Database
from labelwise.storage.repositories import KeyRepository, ModelRepository, UsageRepository


@dataclass
class Context:
    """Lazily built services for one CLI invocation (a command that needs no database opens none)."""

    settings: Settings

    @cached_property
    def db(self) -> Database:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(self.settings.resolved_database_url())
        db.migrate()
        return db

    @cached_property
    def store(self) -> ModelStore:
        from labelwise.encoder.runtime import configure_encoder

        # Encoder engines derive their quantized model once: where the settings say (a container image ships it
        # derived, LABELWISE_ENCODER_DIR), else inside the data directory, as the server does.
        configure_encoder(self.settings.encoder_dir or self.settings.data_dir / "encoder")
        return ModelStore(self.settings.models_dir, ModelRepository(self.db))

    @cached_property
    def models(self) -> ModelService:
        return ModelService(self.store)

    @cached_property
    def keys(self) -> KeyService:
        return KeyService(KeyRepository(self.db), default_credits=self.settings.default_credits)

    @cached_property
    def usage(self) -> UsageMeter:
        return UsageMeter(UsageRepository(self.db))
