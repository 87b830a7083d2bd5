"""Batch jobs benchmark: a 100,000-row job with a linear model, next to `labelwise predict` on the same file.

Both run in this process on the same model (banking77, `linear`) and the same input (banking77 texts repeated to
100,000 rows, each with a row number so no two rows are equal). Reported, in rows per second:

- `predict`: `ModelService.predict_file`, what `labelwise predict` runs (one pass, batches of 5,000).
- `job submit`: checking the upload and cutting it into chunk files (what `POST /v1/jobs` does before its 202).
- `job run`: N in-process workers (threads) leasing, classifying and committing chunks, then assembling the
  results file; `job total` is submit plus run.

    .venv/bin/python bench/jobs.py                       # SQLite in a temporary directory
    .venv/bin/python bench/jobs.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/jobs.py --rows 100000 --chunk-rows 1000 --workers 1
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import threading
import time
import uuid
from pathlib import Path

import orjson
from sqlalchemy import create_engine, text

from labelwise.registry.store import ModelStore
from labelwise.services.credits import PriceList
from labelwise.services.job_worker import JobWorker
from labelwise.services.jobs import JobConfig, JobService
from labelwise.services.training import ModelService, TrainRequest
from labelwise.storage.db import Database
from labelwise.storage.jobs_repository import JobRepository
from labelwise.storage.repositories import KeyRepository, ModelRepository

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "banking77"


def write_input(path: Path, rows: int) -> None:
    texts = [orjson.loads(line)["text"] for line in (DATA / "test.jsonl").read_bytes().splitlines()]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"])
        for i in range(rows):
            writer.writerow([i, f"{texts[i % len(texts)]} ({i})"])


def database_url(base: str | None, tmp: Path) -> str:
    if base is None:
        return f"sqlite:///{tmp / 'bench.db'}"
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with create_engine(base).begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    return f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"


def run_job(service: JobService, source: Path, workers: int) -> tuple[float, float, int]:
    started = time.perf_counter()
    job = service.submit_classify("lwbench1", source, "banking")
    submitted = time.perf_counter()
    runners = [JobWorker(service, poll_seconds=0.01) for _ in range(workers)]

    def drain(runner: JobWorker) -> None:
        while runner.run_once():
            pass

    threads = [threading.Thread(target=drain, args=(runner,)) for runner in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    service.finish_ready()
    finished = time.perf_counter()
    done = service.repo.get(job.id)
    assert done is not None
    assert done.state == "succeeded", (done.state, done.error)
    return submitted - started, finished - submitted, done.rows_done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunk-rows", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        db = Database(database_url(args.database_url, tmp))
        db.migrate()
        store = ModelStore(tmp / "models", ModelRepository(db))
        models = ModelService(store)
        models.train(TrainRequest(name="banking", train=DATA / "train.jsonl", engine="linear"))
        source = tmp / "input.csv"
        write_input(source, args.rows)

        started = time.perf_counter()
        rows = models.predict_file("banking", source, tmp / "predicted.csv")
        predict_seconds = time.perf_counter() - started

        config = JobConfig(root=tmp / "jobs", chunk_rows=args.chunk_rows)
        service = JobService(JobRepository(db), KeyRepository(db), store, PriceList({}), config)
        submit_seconds, run_seconds, job_rows = run_job(service, source, args.workers)
        assert job_rows == rows == args.rows
        db.dispose()
    kind = "sqlite" if args.database_url is None else "postgresql"
    print(f"{args.rows:,} rows, chunks of {args.chunk_rows:,}, {args.workers} worker(s), {kind}")
    print("| step | seconds | rows/s |\n|---|---|---|")
    for name, seconds in (
        ("predict (labelwise predict)", predict_seconds),
        ("job submit (check + split)", submit_seconds),
        ("job run (workers + assemble)", run_seconds),
        ("job total", submit_seconds + run_seconds),
    ):
        print(f"| {name} | {seconds:.2f} | {args.rows / seconds:,.0f} |")


if __name__ == "__main__":
    main()
