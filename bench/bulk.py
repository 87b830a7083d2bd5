"""Bulk inference benchmark: rows per second of local `labelwise predict` and of `labelwise predict --ray` on the
same Parquet file, in the same run, so Ray's overhead on one machine is known.

The model is `linear` on banking77 (77 intents); the input is banking77's test texts repeated to `--rows` rows
(1,000,000 by default), each with its row number so no two rows are equal, in one Parquet file. Reported:

- `local`: `ModelService.predict_file` (what `labelwise predict --input` runs): one process, batches of 5,000.
- `ray`: `labelwise.bulk.predict_dataset` on a local Ray instance with `--ray-cpus` CPUs (default: this
  machine's), `--concurrency` actors (default: the CPUs less one, which reading and writing use), Parquet out.
  Ray's start is timed apart; the rate is over the run itself. Per actor: the rate divided by the actors.

    .venv/bin/python bench/bulk.py                              # 1,000,000 rows
    .venv/bin/python bench/bulk.py --rows 200000 --concurrency 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from labelwise.bulk import predict_dataset
from labelwise.config import Settings
from labelwise.registry.store import ModelStore
from labelwise.services.training import ModelService, TrainRequest
from labelwise.storage.db import Database
from labelwise.storage.repositories import ModelRepository

DATA = Path(os.environ.get("LABELWISE_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def write_input(path: Path, rows: int) -> None:
    texts = [orjson.loads(line)["text"] for line in (DATA / "banking77" / "test.jsonl").read_bytes().splitlines()]
    step = 100_000
    with pq.ParquetWriter(path, pa.schema([("id", pa.int64()), ("text", pa.string())])) as writer:
        for start in range(0, rows, step):
            ids = list(range(start, min(rows, start + step)))
            column = [f"{texts[i % len(texts)]} ({i})" for i in ids]
            writer.write_table(pa.table({"id": ids, "text": column}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--ray-cpus", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--batch-rows", type=int, default=4096)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        settings = Settings(data_dir=tmp / "data")
        settings.data_dir.mkdir()
        db = Database(settings.resolved_database_url())
        db.migrate()
        models = ModelService(ModelStore(settings.models_dir, ModelRepository(db)))
        started = time.perf_counter()
        models.train(TrainRequest(name="banking", train=DATA / "banking77" / "train.jsonl", engine="linear"))
        print(f"trained banking (linear) in {time.perf_counter() - started:.1f} s")
        source = tmp / "input.parquet"
        write_input(source, args.rows)
        print(f"input: {args.rows:,} rows, {source.stat().st_size / 1e6:.1f} MB Parquet")

        started = time.perf_counter()
        rows = models.predict_file("banking", source, tmp / "local.parquet")
        local = time.perf_counter() - started
        print(f"local: {rows:,} rows in {local:.1f} s = {rows / local:,.0f} rows/s (one process)")
        db.dispose()

        import ray

        started = time.perf_counter()
        ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
        print(f"ray start: {time.perf_counter() - started:.1f} s ({args.ray_cpus} CPUs)")
        actors = args.concurrency or max(1, args.ray_cpus - 1)
        started = time.perf_counter()
        result = predict_dataset(
            "banking",
            str(source),
            str(tmp / "ray.parquet"),
            settings=settings,
            batch_rows=args.batch_rows,
            concurrency=actors,
            progress=False,
        )
        remote = time.perf_counter() - started
        ray.shutdown()
        assert result.rows == rows
        print(
            f"ray:   {result.rows:,} rows in {remote:.1f} s = {result.rows / remote:,.0f} rows/s "
            f"({actors} actors, {result.rows / remote / actors:,.0f} rows/s per actor; "
            f"{remote / local:.2f}x the local time)"
        )


if __name__ == "__main__":
    main()
