"""Use cases around models: train and publish, evaluate, predict a file, inspect the store."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labelwise.data import Dataset, PredictionWriter, ReadOptions, iter_text_batches, load_dataset, read_labeled
from labelwise.domain import ModelVersion, TaskType
from labelwise.engines.base import ProgressCallback
from labelwise.engines.factory import engine_class
from labelwise.errors import InvalidRequest
from labelwise.monitoring.drift import baseline_from_split
from labelwise.monitoring.rollout import add_feedback, compare_with_production
from labelwise.registry.store import ModelStore, check_name
from labelwise.training.pipeline import evaluate_engine, fit_and_evaluate, headline
from labelwise.training.report import write_report

logger = logging.getLogger(__name__)

# Called with the number of rows just written by `predict_file`.
RowsCallback = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class TrainRequest:
    """Everything `train` needs besides the store."""

    name: str
    train: Path
    engine: str = "linear"
    validation: Path | None = None
    test: Path | None = None
    options: ReadOptions = field(default_factory=ReadOptions)
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 13
    min_examples: int = 2
    # (text, labels) corrections added to the training split (`labelwise train --with-feedback`).
    feedback: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # The batch job training it, recorded as `data["job"]` of the version so that a retried job finds it.
    job_id: str | None = None


class ModelService:
    """Trains, evaluates and runs models stored in one `ModelStore`."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store

    def load_data(self, request: TrainRequest) -> Dataset:
        """Check the request's name and engine, then read, validate and split its data."""
        check_name(request.name)
        engine_class(request.engine)  # an unknown engine fails before minutes of reading
        return load_dataset(
            request.train,
            request.options,
            validation=request.validation,
            test=request.test,
            seed=request.seed,
            min_examples=request.min_examples,
        )

    def train(
        self, request: TrainRequest, *, progress: ProgressCallback | None = None
    ) -> tuple[ModelVersion, dict[str, Any]]:
        """Read and validate the data, fit, evaluate and publish a new version with its report."""
        dataset = self.load_data(request)
        added = 0
        if request.feedback:
            dataset, added = add_feedback(dataset, request.feedback)
        result = fit_and_evaluate(
            dataset, request.engine, request.params, progress=progress, encoder=self.store.encoder
        )
        report = result.report
        if request.feedback:
            report["feedback_rows"] = added
        # Side by side with the version in production, so the report says whether promoting is safe.
        comparison = compare_with_production(self.store, request.name, result.engine, dataset, request.feedback)
        if comparison is not None:
            report["comparison"] = comparison

        def write(directory: Path, version: str) -> None:
            report.update(model=request.name, version=version)
            write_report(report, directory / "report")

        record = self.store.publish(
            request.name,
            result.engine,
            metrics={
                "headline": result.headline,
                "validation": headline(report["validation"]),
                # What drift is measured against (predicted labels and confidence on validation).
                "baseline": asdict(baseline_from_split(report["validation"])),
            },
            data=dataset.summary() | ({"job": request.job_id} if request.job_id is not None else {}),
            extra_files=write,
        )
        return record, report

    def evaluate(self, ref: str, data: Path, options: ReadOptions) -> dict[str, Any]:
        """Metrics of a stored model on a labeled file."""
        record = self.store.resolve(ref)
        engine = self.store.load(record)
        labeled, _, _ = read_labeled(data, options, min_examples=1)
        metrics = evaluate_engine(engine, labeled)
        metrics["model"] = record.name
        metrics["model_version"] = record.version
        return metrics

    def predict_file(
        self,
        ref: str,
        source: Path,
        destination: Path,
        *,
        text_col: str = "text",
        batch_rows: int = 5000,
        on_rows: RowsCallback | None = None,
    ) -> int:
        """Classify every row of `source` into `destination` in chunks (bounded memory); returns the row count."""
        if source.resolve() == destination.resolve():
            raise InvalidRequest("output: must differ from the input file", param="output")
        record = self.store.resolve(ref)
        engine = self.store.load(record)
        multi = engine.task_ is TaskType.MULTI_LABEL
        rows = 0
        writer: PredictionWriter | None = None
        try:
            for batch in iter_text_batches(source, text_col=text_col, batch_rows=batch_rows):
                if writer is None:
                    names = output_columns(list(batch[0]), multi_label=multi)
                    writer = PredictionWriter(destination, [*batch[0], *names.values()])
                predictions = engine.predictions([row[text_col] for row in batch], top_k=1)
                for row, prediction in zip(batch, predictions, strict=True):
                    best = prediction.labels[0]
                    row[names["label"]] = best.label
                    row[names["score"]] = round(best.score, 6)
                    if multi:
                        row[names["labels"]] = prediction.predicted
                    writer.write(row)
                rows += len(batch)
                if on_rows is not None:
                    on_rows(len(batch))
        except BaseException:
            if writer is not None:
                writer.close(discard=True)
            raise
        if writer is None:
            raise InvalidRequest(f"input: {source.name} has no rows to classify", param="input")
        writer.close()
        logger.info("file predicted", extra={"model": record.ref, "rows": rows})
        return rows

    def report_path(self, record: ModelVersion) -> Path:
        return self.store.directory(record) / "report"


def output_columns(existing: list[str], *, multi_label: bool) -> dict[str, str]:
    """Names of the added columns: `label`, `score` (and `labels`), prefixed `predicted_` if the input has them."""
    wanted = ["label", "score", "labels"] if multi_label else ["label", "score"]
    clash = any(name in existing for name in wanted)
    return {name: f"predicted_{name}" if clash else name for name in wanted}
