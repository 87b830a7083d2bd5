"""The files of a row job (classify or embed) in its directory: chunk inputs cut from the upload, chunk outputs
written atomically, and the results assembled from the outputs the database names.

    in-000007.jsonl              chunk 7's input rows, written when the job is submitted
    out-000007-<token>.jsonl     one attempt's output for chunk 7: the rows with what the job adds
    results.<csv|jsonl|...>      the outputs the database recorded, in chunk order, in the results format

An output file exists whole or not at all (written to a temporary name, fsynced, renamed), and only the one the
database recorded counts, so the files of an attempt that died before its commit are ignored.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from labelwise.data import PredictionWriter, iter_text_batches
from labelwise.errors import DataError
from labelwise.storage.jobs_repository import ChunkSpec


def chunk_input(directory: Path, seq: int) -> Path:
    return directory / f"in-{seq:06d}.jsonl"


def split_upload(
    upload: Path, directory: Path, text_col: str, chunk_rows: int, *, check_parquet: bool = False
) -> tuple[list[ChunkSpec], list[str]]:
    """Write the upload's rows as chunk input files of `chunk_rows` rows, checking every row on the way; the chunks
    and the first row's columns. `check_parquet`: also check that the rows fit one Parquet schema, by writing them
    (and then removing the file) with the writer the results will be assembled with."""
    chunks: list[ChunkSpec] = []
    columns: list[str] = []
    start = 0
    check = PredictionWriter(directory / "schema-check.parquet") if check_parquet else None
    try:
        for seq, batch in enumerate(iter_text_batches(upload, text_col=text_col, batch_rows=chunk_rows)):
            write_rows(chunk_input(directory, seq), batch)
            chunks.append(ChunkSpec(start, len(batch)))
            columns = columns or list(batch[0])
            start += len(batch)
            if check is not None:
                check.write_many(batch)
        if check is not None and chunks:
            check.close()
    except DataError as exc:
        if check is None or not exc.message.startswith(check.path.name):
            raise
        reason = exc.message.removeprefix(f"{check.path.name}: ")
        raise DataError(f"file: {upload.name} cannot be written as Parquet results: {reason}", param="file") from exc
    finally:
        if check is not None:
            check.close(discard=True)
            check.path.unlink(missing_ok=True)
    return chunks, columns


def free_column(wanted: str, columns: Iterable[str]) -> str:
    """`wanted`, or `wanted_vector`, `wanted_vector_2`, ... : the first name the input does not use."""
    taken = set(columns)
    name, n = wanted, 1
    while name in taken:
        name = f"{wanted}_vector" if n == 1 else f"{wanted}_vector_{n}"
        n += 1
    return name


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def write_output(directory: Path, seq: int, rows: list[dict[str, Any]]) -> Path:
    """One attempt's output for chunk `seq`, under a name unique to the attempt. float32 vectors are written in
    float32's shortest form, so reading them back as float32 gives the same numbers."""
    path = directory / f"out-{seq:06d}-{secrets.token_hex(6)}.jsonl"
    write_rows(path, rows)
    return path


def write_rows(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """JSON lines, written atomically: `path` holds all of them or does not exist."""
    data = b"".join(orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n" for row in rows)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def assemble(target: Path, outputs: Iterable[Path], *, vector_col: str | None = None) -> None:
    """Write the rows of `outputs`, in order, to `target` in the format its extension names; `vector_col` is read
    back as float32 (a list of float, not of double, in Parquet). Idempotent: two workers assembling at once write
    the same bytes, each to its own temporary name, and each renames its file into place."""
    writer: PredictionWriter | None = None
    try:
        for row in _rows(outputs):
            if vector_col is not None:
                row[vector_col] = np.asarray(row[vector_col], dtype=np.float32)
            if writer is None:
                writer = PredictionWriter(target.with_name(f"{secrets.token_hex(4)}-{target.name}"), list(row))
            writer.write(row)
    except BaseException:
        if writer is not None:
            writer.close(discard=True)
        raise
    if writer is not None:
        writer.close()
        os.replace(writer.path, target)


def _rows(outputs: Iterable[Path]) -> Iterator[dict[str, Any]]:
    for path in outputs:
        with path.open("rb") as fh:
            for line in fh:
                yield orjson.loads(line)
