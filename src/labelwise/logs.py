"""JSON-lines logging. Only entrypoints call `configure_logging`; modules just use `logging.getLogger(__name__)`."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    """Send all Labelwise logs to stderr, as JSON lines unless `json` is false."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The CLI quiets `labelwise` to warnings for its own commands; a server it starts (and the workers forked from
    # it) logs at `level`, its one line per request included.
    logging.getLogger("labelwise").setLevel(logging.NOTSET)
    # Alembic narrates every plugin and migration step at INFO; only its warnings belong in a service log.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLevelName(level)))
