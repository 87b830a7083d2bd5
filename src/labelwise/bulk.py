"""Bulk inference on Ray Data: run a stored model version over files too big for one server.

`predict_dataset` reads Parquet, CSV, TSV or JSON lines from a local path or any URI that pyarrow understands
(`s3://`, `gs://`, `hdfs://`, ...), classifies every row on a pool of Ray actors and writes the rows back with the
same added columns as `labelwise predict --input` (`label`, `score`, and `labels` for multi-label models;
`predicted_*` when the input already has those names). The output is a directory (or URI prefix) of files in the
format of its extension, one file per block, in input order.

The model reference is resolved once, here, so every actor serves the same version even if an alias moves while
the job runs. The version's files travel through Ray's object store: each actor writes them to a temporary
directory, verifies them against the version's checksums and loads the engine once, so the cluster's nodes need
neither the data directory nor the database. Ray itself is an optional extra: `pip install 'labelwise[ray]'`.

Use it for one-off runs over a data lake; a job submitted over HTTP (`POST /v1/jobs`) runs on Labelwise's own job
workers, with credits, progress and results kept in the database.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, cast

import orjson

from labelwise.config import Settings
from labelwise.data.formats import FileFormat, detect_format
from labelwise.domain import ModelVersion, TaskType
from labelwise.errors import ConfigError, DataError, InvalidRequest
from labelwise.registry.store import ModelStore
from labelwise.services.training import output_columns

if TYPE_CHECKING:
    from labelwise.engines.base import Engine
    from labelwise.storage.repositories import ModelRepository

logger = logging.getLogger(__name__)

INSTALL_HINT = "bulk inference on Ray needs Ray Data: pip install 'labelwise[ray]'"
DEFAULT_BATCH_ROWS = 4096


@dataclass(frozen=True)
class BulkResult:
    """What a bulk run did: the version it used, the rows it wrote and where."""

    model: str
    model_version: str
    rows: int
    output: str


def import_ray() -> Any:
    """The `ray` module with Ray Data, or a `ConfigError` that names the extra to install."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


def predict_dataset(
    model: str,
    source: str,
    destination: str,
    *,
    settings: Settings | None = None,
    text_col: str = "text",
    address: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    concurrency: int | None = None,
    num_cpus: int | None = None,
    progress: bool = True,
) -> BulkResult:
    """Classify every row of `source` into `destination` on Ray; returns the version used and the rows written.

    `address`: a running cluster (`auto`, `ray://host:10001`, ...); None joins the cluster in `RAY_ADDRESS` if
    set, else starts a local Ray instance (with `num_cpus` CPUs, default all), unless this process already
    joined one. `concurrency`: the most actors, each loading the model once and using one CPU (default: the
    cluster's CPUs less one, which reading and writing use). `batch_rows`: rows per call of an actor.
    """
    if batch_rows < 1:
        raise InvalidRequest(f"batch_rows: {batch_rows}, must be at least 1", param="batch_rows")
    if concurrency is not None and concurrency < 1:
        raise InvalidRequest(f"concurrency: {concurrency}, must be at least 1", param="concurrency")
    in_format, out_format = _format(source, "input"), _format(destination, "output")
    if _same_place(source, destination):
        raise InvalidRequest("output: must differ from the input", param="output")
    # Ray's tasks run in other processes (other machines, on a cluster) with their own working directory.
    source, destination = _absolute(source), _absolute(destination)
    settings = settings or Settings()
    record = resolve(model, settings)
    ray = import_ray()
    if not ray.is_initialized():
        options: dict[str, Any] = {}
        if address is None and not os.environ.get("RAY_ADDRESS"):  # starting a local instance, not joining one
            options = {"include_dashboard": False} | ({"num_cpus": num_cpus} if num_cpus else {})
        ray.init(address=address, log_to_driver=False, **options)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # rows come out in input order, like local predict
    context.enable_progress_bars = progress
    # One CPU stays free for the read and write tasks: with every CPU held by an actor, nothing would feed them.
    actors = concurrency or max(1, int(ray.cluster_resources().get("CPU", 2)) - 1)
    files = ray.put(_pack(settings, record))
    dataset = _read(ray, source, in_format)
    predicted = dataset.map_batches(
        _Classifier,
        fn_constructor_args=(record, files, text_col, out_format, _encoder_dir(settings)),
        batch_size=batch_rows,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
        num_cpus=1,
    )
    _write(ray, predicted, destination, out_format)
    rows = int(_read(ray, destination, out_format).count())
    logger.info("bulk prediction done", extra={"model": record.ref, "rows": rows, "actors": actors})
    return BulkResult(record.name, record.version, rows, destination)


def resolve(model: str, settings: Settings) -> ModelVersion:
    """The version `model` names now (`name`, `name@alias` or `name:version`), from the database of `settings`."""
    from labelwise.bootstrap import Container

    container = Container(settings, open_migrates=True)
    try:
        return container.store.resolve(model)
    finally:
        container.db.dispose()


def _format(uri: str, param: str) -> FileFormat:
    try:
        return detect_format(Path(PurePosixPath(uri.rstrip("/")).name))
    except DataError as exc:
        raise InvalidRequest(f"{param}: {exc.message}", param=param) from None


def _absolute(uri: str) -> str:
    return uri if "://" in uri else str(Path(uri).expanduser().resolve())


def _same_place(source: str, destination: str) -> bool:
    if "://" in source or "://" in destination:
        return source.rstrip("/") == destination.rstrip("/")
    return Path(source).resolve() == Path(destination).resolve()


def _encoder_dir(settings: Settings) -> str:
    """Where actors find (or derive) the sentence encoder: the directory the server and the CLI use."""
    return str(Path(settings.encoder_dir or settings.data_dir / "encoder").absolute())


def _pack(settings: Settings, record: ModelVersion) -> dict[str, bytes]:
    """Every file of the version's directory, by relative path (verified again where they are unpacked)."""
    directory = settings.models_dir / record.path
    if not directory.is_dir():
        raise ConfigError(f"{record.ref}: its files are not in {settings.models_dir}")
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _read(ray: Any, uri: str, kind: FileFormat) -> Any:
    if kind is FileFormat.PARQUET:
        return ray.data.read_parquet(uri)
    if kind is FileFormat.JSONL:
        return ray.data.read_json(uri, lines=True)
    import pyarrow.csv as pacsv

    delimiter = "\t" if kind is FileFormat.TSV else ","
    # Every column as text, as local predict reads CSV: "007" stays "007", not the number 7.
    names = _csv_header(uri, delimiter)
    convert = pacsv.ConvertOptions(column_types=dict.fromkeys(names, "string"), strings_can_be_null=False)
    return ray.data.read_csv(
        uri, parse_options=pacsv.ParseOptions(delimiter=delimiter), convert_options=convert, file_extensions=None
    )


def _csv_header(uri: str, delimiter: str) -> list[str]:
    """The column names of the first CSV file at `uri` (a file or a directory of files)."""
    import pyarrow.csv as pacsv
    import pyarrow.fs as pafs

    filesystem, path = pafs.FileSystem.from_uri(uri) if "://" in uri else (pafs.LocalFileSystem(), uri)
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        found = filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
        files = sorted(i.path for i in found if i.type == pafs.FileType.File and not i.base_name.startswith("."))
        if not files:
            raise InvalidRequest(f"input: no files under {uri}", param="input")
        path = files[0]
    elif info.type == pafs.FileType.NotFound:
        raise InvalidRequest(f"input: {uri} does not exist", param="input")
    with filesystem.open_input_stream(path) as stream:
        reader = pacsv.open_csv(stream, parse_options=pacsv.ParseOptions(delimiter=delimiter))
        return list(reader.schema.names)


def _write(ray: Any, dataset: Any, uri: str, kind: FileFormat) -> None:
    # Replace what a previous run left, as local predict replaces its output file.
    mode = ray.data.SaveMode.OVERWRITE
    if kind is FileFormat.PARQUET:
        dataset.write_parquet(uri, mode=mode)
    elif kind is FileFormat.JSONL:
        dataset.write_json(uri, mode=mode)
    else:
        import pyarrow.csv as pacsv

        delimiter = "\t" if kind is FileFormat.TSV else ","
        # Built inside the function: the write tasks receive it pickled, and pyarrow's options do not pickle.
        dataset.write_csv(
            uri, mode=mode, arrow_csv_args_fn=lambda: {"write_options": pacsv.WriteOptions(delimiter=delimiter)}
        )


class _Classifier:
    """A Ray actor's callable: loads the model once, then adds the prediction columns to each batch."""

    def __init__(
        self, record: ModelVersion, files: Any, text_col: str, out_format: FileFormat, encoder_dir: str
    ) -> None:
        import ray

        from labelwise.encoder import LazyEncoder

        # `files` is a reference into the object store: every actor on a node shares the one copy there.
        packed: dict[str, bytes] = ray.get(files)
        self._root = Path(tempfile.mkdtemp(prefix="labelwise-bulk-"))
        directory = self._root / record.path
        for relative, data in packed.items():
            target = directory / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        # verify() and load() read only the version's files: no repository (and no database) is needed here.
        # Encoder engines are given the encoder of the settings' directory (derived there on first use).
        store = ModelStore(self._root, cast("ModelRepository", None), encoder=LazyEncoder(Path(encoder_dir)))
        self._engine: Engine = store.load(record)
        self._multi = self._engine.task_ is TaskType.MULTI_LABEL
        self._text_col = text_col
        self._text_out = out_format in (FileFormat.CSV, FileFormat.TSV)

    def __call__(self, table: Any) -> Any:
        import pyarrow as pa

        if self._text_col not in table.column_names:
            raise DataError(f"input: no column '{self._text_col}'; the columns are: {', '.join(table.column_names)}")
        texts = table.column(self._text_col).to_pylist()
        _check_texts(texts, self._text_col)
        names = output_columns(list(table.column_names), multi_label=self._multi)
        predictions = self._engine.predictions(texts, top_k=1)
        table = table.append_column(names["label"], pa.array([p.labels[0].label for p in predictions], pa.string()))
        scores = [round(p.labels[0].score, 6) for p in predictions]
        # In CSV, local predict writes Python's repr of the score (1.0, not Arrow's 1): the same text here.
        score_column = pa.array([repr(x) for x in scores]) if self._text_out else pa.array(scores, pa.float64())
        table = table.append_column(names["score"], score_column)
        if self._multi:
            chosen = [p.predicted for p in predictions]
            column = (
                pa.array([orjson.dumps(c).decode() for c in chosen], pa.string())
                if self._text_out  # as local predict writes lists in CSV
                else pa.array(chosen, pa.list_(pa.string()))
            )
            table = table.append_column(names["labels"], column)
        return table

    def __del__(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)


def _check_texts(texts: list[Any], text_col: str) -> None:
    for offset, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            what = "missing" if text is None else "empty" if isinstance(text, str) else "not a string"
            raise DataError(f"input: {text_col} is {what} in a row of batch position {offset}", param="input")
