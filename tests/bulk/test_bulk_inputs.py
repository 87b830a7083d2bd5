"""`labelwise.bulk` checks its arguments before it starts or joins Ray: each bad one is an error naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelwise.bulk import predict_dataset
from labelwise.config import Settings
from labelwise.errors import InvalidRequest, ModelNotFound


@pytest.mark.parametrize(
    ("source", "destination", "options", "message"),
    [
        ("in.csv", "out.parquet", {"batch_rows": 0}, "batch_rows: 0, must be at least 1"),
        ("in.csv", "out.parquet", {"concurrency": 0}, "concurrency: 0, must be at least 1"),
        ("in.txt", "out.parquet", {}, "input: in.txt: unsupported file extension '.txt'"),
        ("in.csv", "s3://bucket/out", {}, "output: out: the file has no extension"),
        ("in.csv", "in.csv", {}, "output: must differ from the input"),
    ],
)
def test_bad_arguments_name_themselves(
    tmp_path: Path, source: str, destination: str, options: dict[str, int], message: str
) -> None:
    settings = Settings(data_dir=tmp_path / "data")

    def place(name: str) -> str:
        return name if "://" in name else str(tmp_path / name)

    with pytest.raises(InvalidRequest) as raised:
        predict_dataset("m", place(source), place(destination), settings=settings, **options)
    assert raised.value.message.startswith(message)


def test_an_unknown_model_is_reported_before_ray_starts(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with pytest.raises(ModelNotFound):
        predict_dataset("nope", str(tmp_path / "in.csv"), str(tmp_path / "out.parquet"), settings=settings)
