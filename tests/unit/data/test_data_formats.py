"""Reading and writing CSV, TSV, JSON lines and Parquet: round trips, chunking, encodings, malformed lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelwise.data import (
    FileFormat,
    PredictionWriter,
    ReadOptions,
    detect_format,
    formats,
    iter_text_batches,
    read_labeled,
)
from labelwise.domain import TaskType
from labelwise.errors import DataError

ROWS: list[dict[str, Any]] = [
    {"text": "Where is my card?", "label": "card_arrival", "id": 1},
    {"text": 'He said "refund", then left, fast', "label": "refund", "id": 2},
    {"text": "línea dos\ncon salto", "label": "card_arrival", "id": 3},
    {"text": "tab\there and emoji 🎉", "label": "refund", "id": 4},
]


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    with PredictionWriter(path) as writer:
        writer.write_many(rows)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json", ".parquet"])
def test_each_format_round_trips(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"train{suffix}"
    write_rows(path, ROWS)
    texts, stats, task = read_labeled(path)
    assert texts.texts == [row["text"] for row in ROWS]
    assert texts.labels == [(row["label"],) for row in ROWS]
    assert task is TaskType.SINGLE_LABEL
    assert stats.rows_read == 4
    assert stats.label_counts == {"card_arrival": 2, "refund": 2}
    batches = list(iter_text_batches(path))
    assert [row["text"] for row in batches[0]] == [row["text"] for row in ROWS]
    assert set(batches[0][0]) == {"text", "label", "id"}


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_list_labels_round_trip_as_multi_label(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"train{suffix}"
    rows = [{"text": f"text {i}", "labels": ["b", "a"] if i % 2 else ["a"]} for i in range(4)]
    write_rows(path, rows)
    texts, _, task = read_labeled(path)
    assert task is TaskType.MULTI_LABEL
    assert texts.labels == [("a",), ("a", "b"), ("a",), ("a", "b")]


def test_format_comes_from_the_extension(tmp_path: Path) -> None:
    assert detect_format(Path("a.CSV")) is FileFormat.CSV
    assert detect_format(Path("a.ndjson")) is FileFormat.JSONL
    with pytest.raises(DataError, match=r"train\.xlsx: unsupported file extension '\.xlsx'; use one of"):
        detect_format(Path("train.xlsx"))
    with pytest.raises(DataError, match="train: the file has no extension"):
        read_labeled(tmp_path / "train")


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_labeled(tmp_path / "absent.csv")


def test_empty_files_say_so(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_bytes(b"")
    (tmp_path / "e.jsonl").write_bytes(b"\n\n")
    with pytest.raises(DataError, match=r"e\.csv: the file is empty"):
        read_labeled(tmp_path / "e.csv")
    with pytest.raises(DataError, match=r"e\.jsonl: the file is empty"):
        read_labeled(tmp_path / "e.jsonl")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_utf8_bom_is_accepted(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"bom{suffix}"
    if suffix == ".csv":
        body = "text,label\nhello,a\nworld,a\n"
    else:
        body = '{"text": "hello", "label": "a"}\n{"text": "world", "label": "a"}\n'
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    texts, _, _ = read_labeled(path)
    assert texts.texts == ["hello", "world"]


def test_csv_invalid_utf8_names_row_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    lines = [b"text,label"] + [f"ok {i},a".encode() for i in range(15)] + [b"ab\xffc,a", b"fine,a"]
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(DataError) as info:
        read_labeled(path)
    assert str(info.value) == "train.csv row 17: text is not valid UTF-8 (byte 0xff at position 3)"


def test_jsonl_invalid_utf8_names_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"text": "ok", "label": "a"}\n{"text": "x\xfe", "label": "a"}\n{"text": "y", "label": "a"}\n')
    with pytest.raises(DataError, match=r"^train\.jsonl line 2: text is not valid UTF-8 \(byte 0xfe at position 2\)$"):
        read_labeled(path)


def test_invalid_utf8_in_a_label_is_named(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_bytes(b"text\tlabel\nhello\ta\nworld\tb\xc3\n")
    with pytest.raises(DataError, match=r"train\.tsv row 3: label is not valid UTF-8 \(byte 0xc3 at position 2\)"):
        read_labeled(path, min_examples=1)


def test_parquet_binary_column_with_bad_bytes(tmp_path: Path) -> None:
    path = tmp_path / "train.parquet"
    table = pa.table({"text": pa.array([b"good", b"ba\x80d"], pa.binary()), "label": ["a", "a"]})
    pq.write_table(table, path)
    with pytest.raises(DataError, match=r"train\.parquet row 2: text is not valid UTF-8 \(byte 0x80 at position 3\)"):
        read_labeled(path)


def test_unpaired_surrogate_escape_in_json(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "ok", "label": "a"}\n{"text": "half \\ud83d emoji", "label": "a"}\n')
    with pytest.raises(DataError, match=r"line 2: text contains an unpaired surrogate U\+D83D at position 6"):
        read_labeled(path)


def test_malformed_jsonl_lines_are_named(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "ok", "label": "a"}\n{"text": "oops"\n["a list"]\n{"text": "ok 2", "label": "a"}\n')
    with pytest.raises(DataError) as info:
        read_labeled(path)
    message = str(info.value)
    assert message.startswith("train.jsonl: 2 problems:")
    assert "line 2: not valid JSON" in message
    assert "line 3: expected a JSON object, got a list" in message


def test_csv_rows_with_wrong_field_count(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text,label\nhello,a\nsplit, by comma,a\nworld,a\n")
    with pytest.raises(DataError, match=r"train\.csv row 3: 3 fields, but the header has 2 \(is a delimiter inside"):
        read_labeled(path)


def test_csv_row_numbers_follow_lines_across_quoted_newlines(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text('text,label\n"two\nlines",a\n"three\nmore\nlines",a\n"  \n ",a\n')
    with pytest.raises(DataError, match=r"^train\.csv row 7: text is only whitespace$"):
        read_labeled(path)


def test_parquet_is_read_in_batches_with_continuous_row_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(formats, "PARQUET_BATCH_ROWS", 100)
    path = tmp_path / "big.parquet"
    texts = [f"text number {i}" for i in range(1000)]
    texts[449] = ""
    pq.write_table(pa.table({"text": texts, "label": ["a", "b"] * 500}), path, row_group_size=300)
    with pytest.raises(DataError, match=r"^big\.parquet row 450: text is empty$"):
        read_labeled(path)
    seen: list[int] = []
    original = pq.ParquetFile.iter_batches

    def spy(self: pq.ParquetFile, *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["batch_size"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    texts[449] = "fixed"
    pq.write_table(pa.table({"text": texts, "label": ["a", "b"] * 500}), path, row_group_size=300)
    data, stats, _ = read_labeled(path)
    assert seen == [100]
    assert len(data) == stats.rows_read == 1000


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_text_batches_stream_a_file_bigger_than_one_batch(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"predict{suffix}"
    write_rows(path, [{"id": i, "text": f"text {i}"} for i in range(2500)])
    batches = list(iter_text_batches(path, batch_rows=1000))
    assert [len(batch) for batch in batches] == [1000, 1000, 500]
    assert batches[2][-1]["text"] == "text 2499"


def test_text_batches_check_the_text_column(tmp_path: Path) -> None:
    path = tmp_path / "predict.jsonl"
    lines = [{"text": "fine"}, {"text": 5}, {"body": "no text"}, {"text": "  "}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(DataError) as info:
        list(iter_text_batches(path))
    message = str(info.value)
    assert "line 2: text is a number, not a string" in message
    assert "line 3: no 'text' field" in message
    assert "line 4: text is only whitespace" in message
    with pytest.raises(DataError, match="no field 'body'; the fields are: text"):
        list(iter_text_batches(path, text_col="body"))


def test_text_batches_reject_bad_bytes_in_other_columns(tmp_path: Path) -> None:
    path = tmp_path / "predict.csv"
    path.write_bytes(b"id,text\nx\x91,hello\n")
    with pytest.raises(DataError, match=r"row 2: id is not valid UTF-8 \(byte 0x91 at position 2\)"):
        list(iter_text_batches(path))


def test_writer_leaves_no_file_when_the_block_fails(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"

    def job() -> None:
        with PredictionWriter(path, ["text", "label"], batch_rows=1) as writer:
            writer.write({"text": "a", "label": "b"})
            assert any(tmp_path.iterdir())  # the partial file exists while writing
            raise RuntimeError("job failed")

    with pytest.raises(RuntimeError, match="job failed"):
        job()
    assert list(tmp_path.iterdir()) == []


def test_writer_parquet_streams_batches_and_keeps_types(tmp_path: Path) -> None:
    path = tmp_path / "out.parquet"
    with PredictionWriter(path, ["text", "predicted", "score"], batch_rows=10) as writer:
        for i in range(25):
            writer.write({"text": f"t{i}", "predicted": [] if i < 10 else ["a"], "score": i / 25})
    table = pq.read_table(path)
    assert table.num_rows == 25
    assert table.schema.field("predicted").type == pa.list_(pa.string())
    assert table.column("predicted").to_pylist()[24] == ["a"]
    assert pq.ParquetFile(path).metadata.num_row_groups == 3


def test_writer_rejects_unknown_columns_and_type_changes(tmp_path: Path) -> None:
    with (
        PredictionWriter(tmp_path / "out.csv", ["text"]) as writer,
        pytest.raises(ValueError, match="not in the output"),
    ):
        writer.write({"text": "a", "extra": 1})
    writer2 = PredictionWriter(tmp_path / "out.parquet", batch_rows=1)
    writer2.write({"n": 1})
    with pytest.raises(DataError, match=r"out\.parquet: a column changed type after row 1"):
        writer2.write({"n": "text"})
    writer2.close(discard=True)
    assert not (tmp_path / "out.parquet").exists()


def test_csv_cells_holding_lists_read_back(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text('text,labels\nfirst,"[""a"", ""b""]"\nsecond,"[\'a\']"\nthird,[draft]\nfourth,[draft]\nfifth,b\n')
    texts, _, task = read_labeled(path, ReadOptions(label_col="labels"))
    assert task is TaskType.MULTI_LABEL
    assert texts.labels == [("a", "b"), ("a",), ("[draft]",), ("[draft]",), ("b",)]


def test_a_json_array_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text('[\n  {"text": "a", "label": "b"},\n  {"text": "c", "label": "b"}\n]\n')
    with pytest.raises(DataError, match=r"^train\.json: the file is a JSON array; write JSON lines instead"):
        read_labeled(path)
    path.write_text("not json\nnor this\n")
    with pytest.raises(DataError, match=r"^train\.json: 2 problems:\n  line 1: not valid JSON"):
        read_labeled(path)


def test_header_only_file_has_no_data_rows(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text,label\n")
    with pytest.raises(DataError, match=r"^train\.csv: no data rows$"):
        read_labeled(path)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_writer_with_no_rows(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"out{suffix}"
    with PredictionWriter(path, ["text", "label"]):
        pass
    assert path.exists()
    if suffix == ".parquet":
        assert pq.read_table(path).column_names == ["text", "label"]
    elif suffix == ".csv":
        assert path.read_bytes() == b"text,label\r\n"
