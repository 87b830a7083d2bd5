"""Batch jobs: classify or embed an uploaded file, or train a model from one, in the background and crash-safe.

Submitting checks the upload (format, text column, every row readable) and splits it into chunk input files
(`in-000000.jsonl`, ...) before the job is accepted, so a job that is queued can run. Workers (`job_worker.py`)
lease chunks in the database and process them here. Classify and embed jobs are "row jobs": they share the
splitting, the chunk files, the commit and the billing below, and differ only in what a chunk adds to each row
(a label and a score, or a vector) and in the results file (the input's format, or Parquet for vectors).

Exactly once, precisely (the files themselves are `job_files.py`'s): a chunk's output is written to a temporary
name, fsynced and renamed to a name unique to the attempt (`out-000007-<token>.jsonl`); only then does the
transaction that marks the chunk done record that name, add the rows to the job and bill them, on condition that
this worker still holds the lease. A crash before that commit leaves a file no row points to (ignored, removed with
the job), and the chunk is leased again once its lease expires. A worker whose lease was taken over commits nothing.
The results are assembled only from the files the database names, in chunk order, so each input row appears once and
is billed once. A training job publishes its version (with the job id in the version's `data`) before that commit; a
retry after a crash in between finds the version by the job id and finishes the job with it, so a job publishes at
most one version.
"""

from __future__ import annotations

import logging
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from labelwise.config import Settings
from labelwise.data import FileFormat, ReadOptions, detect_format
from labelwise.domain import ModelVersion, TaskType
from labelwise.encoder import MODEL_ID
from labelwise.engines.abstain import DEFAULT_TARGET_PRECISION
from labelwise.engines.base import Engine
from labelwise.engines.factory import check_params
from labelwise.errors import InsufficientBalance, InvalidRequest, LabelwiseError, NotFound
from labelwise.registry.store import ModelStore
from labelwise.services.credits import PriceList
from labelwise.services.embeddings import EMBEDDING_ENGINE, embedding_model
from labelwise.services.job_files import assemble, chunk_input, free_column, read_rows, split_upload, write_output
from labelwise.services.training import ModelService, TrainRequest, output_columns
from labelwise.storage.jobs_repository import Bill, ChunkSpec, ClaimedChunk, InsufficientCredits, JobRepository
from labelwise.storage.repositories import KeyRepository
from labelwise.storage.tables import JobRow

logger = logging.getLogger(__name__)

JOBS_ROUTE = "/v1/jobs"
TRAIN_ROUTE = "/v1/models"
_RESULT_SUFFIX = {
    FileFormat.CSV: ".csv",
    FileFormat.TSV: ".tsv",
    FileFormat.JSONL: ".jsonl",
    FileFormat.PARQUET: ".parquet",
}
ROW_KINDS = ("classify", "embed")  # jobs whose chunks are slices of the uploaded rows, with a results file
VECTOR_COLUMN = "embedding"  # what an embed job adds to each row (`embedding_vector` if the input has one)


class TextEncoder(Protocol):
    """What embed jobs need of the sentence encoder (`encoder.LazyEncoder`): vectors in input order."""

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


@dataclass(frozen=True, slots=True)
class JobConfig:
    """How jobs are cut and leased."""

    root: Path  # per-job directories live here
    chunk_rows: int = 1000
    lease_seconds: float = 30.0
    max_attempts: int = 3
    seed: int = 13  # training jobs
    min_examples: int = 2

    @classmethod
    def of(cls, settings: Settings) -> JobConfig:
        """The configuration the settings describe (jobs live in `data_dir/jobs`)."""
        return cls(
            root=settings.data_dir / "jobs",
            chunk_rows=settings.job_chunk_rows,
            lease_seconds=settings.job_lease_seconds,
            max_attempts=settings.job_max_attempts,
            seed=settings.seed,
            min_examples=settings.min_examples_per_label,
        )


@dataclass(frozen=True, slots=True)
class JobProgress:
    """A job as its owner sees it."""

    job: JobRow
    rate: float | None  # rows per second since it started
    eta_seconds: float | None


class JobService:
    """Accepts jobs, processes leased chunks, assembles results, and reports progress. `encoder` embeds the rows
    of embed jobs (the process's shared sentence encoder, loaded by the first such chunk)."""

    def __init__(
        self,
        repo: JobRepository,
        keys: KeyRepository,
        store: ModelStore,
        prices: PriceList,
        config: JobConfig,
        *,
        encoder: TextEncoder | None = None,
    ) -> None:
        self.repo = repo
        self.keys = keys
        self.store = store
        self.models = ModelService(store)
        self.prices = prices
        self.config = config
        self.encoder = encoder
        self._engines: dict[tuple[str, str], Engine] = {}

    def job_dir(self, job_id: str) -> Path:
        return self.config.root / job_id

    # Submitting

    def submit(
        self,
        kind: str,
        key_prefix: str,
        upload: Path,
        *,
        model: str | None = None,
        text_col: str = "text",
        top_k: int | None = None,
    ) -> JobRow:
        """Queue a row job of `kind` from the fields of `POST /v1/jobs`, checking which fields fit which kind."""
        if kind == "embed":
            if top_k is not None:
                raise InvalidRequest("top_k: only classify jobs take top_k; an embed job adds a vector", param="top_k")
            return self.submit_embed(key_prefix, upload, model or MODEL_ID, text_col)
        if kind != "classify":
            raise InvalidRequest(f"kind: {kind[:40]!r}, choose classify or embed", param="kind")
        if model is None:
            raise InvalidRequest("model: a classify job needs one (model, model@version or model@alias)", param="model")
        return self.submit_classify(key_prefix, upload, model, text_col, 1 if top_k is None else top_k)

    def submit_classify(
        self, key_prefix: str, upload: Path, model: str, text_col: str = "text", top_k: int = 1
    ) -> JobRow:
        """Validate `upload`, split it into chunks and queue a job classifying it with `model` (pinned now)."""
        if not 1 <= top_k <= 20:
            raise InvalidRequest(f"top_k: {top_k}, must be from 1 to 20", param="top_k")
        record = self.store.resolve(model)
        params = {"model": record.name, "version": record.version, "engine": record.engine, "top_k": top_k}
        return self._submit_rows("classify", key_prefix, upload, text_col, params)

    def submit_embed(self, key_prefix: str, upload: Path, model: str = MODEL_ID, text_col: str = "text") -> JobRow:
        """Validate `upload`, split it into chunks and queue a job adding the sentence embedding of each row's
        text (the vectors `/v1/embeddings` returns), billed like `/v1/embeddings`; the results are Parquet."""
        if self.encoder is None:  # a wiring mistake of the composition root, not the caller's
            raise RuntimeError("JobService: embed jobs need an encoder")
        params = {"model": embedding_model(model), "engine": EMBEDDING_ENGINE}
        return self._submit_rows("embed", key_prefix, upload, text_col, params)

    def _submit_rows(self, kind: str, key_prefix: str, upload: Path, text_col: str, params: dict[str, Any]) -> JobRow:
        """Split `upload` into chunk files (every row checked), check the key can pay for all of it, and queue it."""
        input_format = detect_format(upload)
        job_id = new_job_id()
        directory = self.job_dir(job_id)
        directory.mkdir(parents=True, exist_ok=True)
        try:
            # Vectors go to Parquet whatever the input: check now that the rows fit one Parquet schema.
            check = kind == "embed" and input_format is not FileFormat.PARQUET
            chunks, columns = split_upload(upload, directory, text_col, self.config.chunk_rows, check_parquet=check)
            rows = sum(c.row_count for c in chunks)
            if rows == 0:
                raise InvalidRequest(f"file: {upload.name} has no rows to {kind}", param="file")
            self._check_balance(key_prefix, self.prices.cost(params["engine"], rows))
            params = {**params, "text_col": text_col, "file": upload.name}
            if kind == "embed":
                params["vector_col"] = free_column(VECTOR_COLUMN, columns)
            job = _queued(job_id, kind, key_prefix, params, input_format.value, rows, len(chunks))
            self.repo.create(job, chunks)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        logger.info("job queued", extra={"job": job_id, "kind": kind, "rows": rows, "model": params["model"]})
        return job

    def submit_train(self, key_prefix: str, upload: Path, request: TrainRequest) -> JobRow:
        """Validate the engine, its hyperparameters and the training data now (the same checks as `labelwise
        train`) and queue the training."""
        check_params(request.engine, request.params)
        dataset = self.models.load_data(request)
        rows = len(dataset.train.texts) + len(dataset.validation.texts)
        rows += len(dataset.test.texts) if dataset.test is not None else 0
        job_id = new_job_id()
        directory = self.job_dir(job_id)
        directory.mkdir(parents=True, exist_ok=True)
        kept = directory / f"train{upload.suffix}"
        shutil.copyfile(upload, kept)
        options = request.options
        params = {
            "name": request.name,
            "engine": request.engine,
            "text_col": options.text_col,
            "label_col": options.label_col,
            "on_conflict": options.conflicts,
            "params": request.params,
            "seed": request.seed,
            "min_examples": request.min_examples,
            "target_precision": request.target_precision,
            "file": kept.name,
        }
        job = _queued(job_id, "train", key_prefix, params, detect_format(upload).value, rows, 1)
        self.repo.create(job, [ChunkSpec(0, rows)])
        logger.info("training job queued", extra={"job": job_id, "rows": rows, "engine": request.engine})
        return job

    def _check_balance(self, key_prefix: str, cost: int) -> None:
        row = self.keys.by_prefix(key_prefix)
        if row is not None and row.credits is not None and row.credits < cost:
            raise InsufficientBalance(
                f"credits: this job costs {cost:,} and the key's balance is {row.credits:,}",
                cost=cost,
                balance=row.credits,
            )

    # Reading

    def progress(self, job_id: str, key_prefix: str) -> JobProgress:
        """The job if `key_prefix` owns it; another key's job is `NotFound`, the same as a job that never was."""
        job = self.repo.get(job_id, key_prefix)
        if job is None:
            raise NotFound(f"job: no job {job_id!r}", param="job_id")
        return _progress(job)

    def progress_of(self, job: JobRow) -> JobProgress:
        return _progress(job)

    def for_key(self, key_prefix: str, limit: int = 100) -> list[JobProgress]:
        return [_progress(job) for job in self.repo.for_key(key_prefix, limit)]

    def results_path(self, job_id: str, key_prefix: str) -> Path:
        """The assembled results of a succeeded classify or embed job."""
        job = self.progress(job_id, key_prefix).job
        if job.kind not in ROW_KINDS:
            raise InvalidRequest(f"job: {job_id} is a {job.kind} job; it has no results file", param="job_id")
        if job.state != "succeeded":
            raise InvalidRequest(f"job: {job_id} is {job.state}; results exist once it succeeded", param="job_id")
        return self._results_file(job)

    def _results_file(self, job: JobRow) -> Path:
        """Classify results keep the input's format; vectors are always Parquet (a float32 list column)."""
        suffix = ".parquet" if job.kind == "embed" else _RESULT_SUFFIX[FileFormat(job.input_format)]
        return self.job_dir(job.id) / f"results{suffix}"

    def cancel(self, job_id: str, key_prefix: str) -> JobProgress:
        """Cancel a queued or running job (chunks being processed finish and are billed; no others start)."""
        self.progress(job_id, key_prefix)
        self.repo.cancel(job_id, key_prefix)
        return self.progress(job_id, key_prefix)

    # Processing (called by workers)

    def process(
        self, chunk: ClaimedChunk, owner: str, after_write: Callable[[ClaimedChunk], None] | None = None
    ) -> bool:
        """Run one leased chunk and commit it; False when the lease was lost meanwhile (nothing recorded)."""
        if chunk.kind == "train":
            return self._train(chunk, owner, after_write)
        params = chunk.params
        directory = self.job_dir(chunk.job_id)
        rows = read_rows(chunk_input(directory, chunk.seq))
        texts = [row[params["text_col"]] for row in rows]
        if chunk.kind == "embed":
            self._add_vectors(rows, texts, params["vector_col"])
        else:
            self._add_predictions(rows, texts, params)
        final = write_output(directory, chunk.seq, rows)
        if after_write is not None:
            after_write(chunk)  # a test hook: crash here, between the file and the commit
        bill = self._bill(chunk, params["engine"], texts, JOBS_ROUTE)
        try:
            committed = self.repo.complete(chunk, owner, final.name, bill)
        except InsufficientCredits as exc:
            final.unlink(missing_ok=True)
            self.repo.fail_job(chunk.job_id, str(exc))
            return False
        if not committed:
            final.unlink(missing_ok=True)  # another worker owns the chunk now; its file will count, not ours
        return committed

    def _add_predictions(self, rows: list[dict[str, Any]], texts: list[str], params: dict[str, Any]) -> None:
        engine = self._engine(params["model"], params["version"])
        predictions = engine.predictions(texts, top_k=int(params["top_k"]))
        names = output_columns(list(rows[0]), multi_label=engine.task_ is TaskType.MULTI_LABEL)
        for row, prediction in zip(rows, predictions, strict=True):
            row[names["label"]] = prediction.labels[0].label
            row[names["score"]] = round(prediction.labels[0].score, 6)
            if "labels" in names:
                row[names["labels"]] = prediction.predicted
            if int(params["top_k"]) > 1:
                row["top_labels"] = [label.label for label in prediction.labels]

    def _add_vectors(self, rows: list[dict[str, Any]], texts: list[str], column: str) -> None:
        if self.encoder is None:
            raise RuntimeError("JobService: embed jobs need an encoder")
        vectors = self.encoder.encode(texts)
        for row, vector in zip(rows, vectors, strict=True):
            row[column] = vector

    def _train(
        self, chunk: ClaimedChunk, owner: str, after_write: Callable[[ClaimedChunk], None] | None = None
    ) -> bool:
        """Train and publish, then mark the job done. Publishing and that commit are two steps: a worker that died
        between them left its version (tagged with the job id) behind, and a retry finishes the job with it rather
        than publishing a second one."""
        params = chunk.params
        record = self._published_by(params["name"], chunk.job_id)
        if record is None:
            request = TrainRequest(
                name=params["name"],
                train=self.job_dir(chunk.job_id) / params["file"],
                engine=params["engine"],
                options=ReadOptions(
                    text_col=params["text_col"],
                    label_col=params["label_col"],
                    # Jobs queued before the rule was a parameter were checked with the rule of their day.
                    conflicts=params.get("on_conflict", "error"),
                ),
                params=dict(params["params"]),
                seed=int(params["seed"]),
                min_examples=int(params["min_examples"]),
                # Jobs queued before the abstain rule existed get the default target.
                target_precision=float(params.get("target_precision", DEFAULT_TARGET_PRECISION)),
                job_id=chunk.job_id,
                checkpoint_dir=self.job_dir(chunk.job_id) / "checkpoint",
            )
            record, _report = self.models.train(request)
            if after_write is not None:
                after_write(chunk)  # a test hook: crash here, between publishing and the commit
        else:
            logger.info("training job already published", extra={"job": chunk.job_id, "version": record.version})
        result = {
            "model": record.name,
            "version": record.version,
            "metrics": record.metrics,
            "report": f"/v1/models/{record.name}/versions/{record.version}/report",
        }
        bill = Bill(0, 0, 0, TRAIN_ROUTE, datetime.now(UTC).date())
        return self.repo.complete(chunk, owner, "", bill, result=result)

    def _published_by(self, name: str, job_id: str) -> ModelVersion | None:
        """The version of `name` that the training job `job_id` published, if an earlier attempt got that far."""
        for record in self.store.repo.versions(name):
            if record.data.get("job") == job_id:
                return record
        return None

    def _bill(self, chunk: ClaimedChunk, engine: str, texts: list[str], route: str) -> Bill:
        characters = sum(len(text) for text in texts)
        return Bill(self.prices.cost(engine, len(texts)), len(texts), characters, route, datetime.now(UTC).date())

    def _engine(self, name: str, version: str) -> Engine:
        engine = self._engines.get((name, version))
        if engine is None:
            engine = self.store.load(self.store.get(name, version))
            self._engines[(name, version)] = engine
        return engine

    def fail_attempt(self, chunk: ClaimedChunk, owner: str, exc: BaseException) -> None:
        """Record a failed attempt; the message is ours for `LabelwiseError`s, a generic one for bugs."""
        error = exc.message if isinstance(exc, LabelwiseError) else f"internal error ({type(exc).__name__})"
        self.repo.fail_attempt(chunk, owner, error, self.config.max_attempts)

    def finish_ready(self) -> int:
        """Assemble every job whose chunks are all done and mark it succeeded; returns how many."""
        finished = 0
        for job in self.repo.finishable():
            if job.kind in ROW_KINDS:
                self._assemble(job)
            if self.repo.succeed(job.id):
                finished += 1
                logger.info("job succeeded", extra={"job": job.id, "rows": job.rows_done})
        return finished

    def _assemble(self, job: JobRow) -> None:
        directory = self.job_dir(job.id)
        outputs = [directory / str(chunk.result_path) for chunk in self.repo.chunks(job.id)]
        vector_col = job.params["vector_col"] if job.kind == "embed" else None
        assemble(self._results_file(job), outputs, vector_col=vector_col)


def new_job_id() -> str:
    return "job_" + secrets.token_hex(12)


def _queued(
    job_id: str, kind: str, key_prefix: str, params: dict[str, Any], input_format: str, rows: int, chunks: int
) -> JobRow:
    """A new job's row: queued, nothing done and nothing charged yet."""
    return JobRow(
        id=job_id,
        kind=kind,
        key_prefix=key_prefix,
        state="queued",
        params=params,
        input_format=input_format,
        rows_total=rows,
        rows_done=0,
        chunks_total=chunks,
        chunks_done=0,
        credits=0,
        created_at=datetime.now(UTC),
    )


def _progress(job: JobRow) -> JobProgress:
    rate = eta = None
    if job.started_at is not None and job.rows_done > 0:
        started = job.started_at if job.started_at.tzinfo else job.started_at.replace(tzinfo=UTC)
        end = job.finished_at or datetime.now(UTC)
        end = end if end.tzinfo else end.replace(tzinfo=UTC)
        elapsed = max((end - started).total_seconds(), 1e-3)
        rate = job.rows_done / elapsed
        eta = (job.rows_total - job.rows_done) / rate if job.state in ("queued", "running") else 0.0
    return JobProgress(job, rate, eta)
