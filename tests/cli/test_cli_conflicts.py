"""`labelwise train` on public data whose texts repeat with different labels (emotion, goemotions from
LABELWISE_SHARED_DATA): resolved by majority by default and counted; `--on-conflict error` stops and names the flag."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Run


def test_conflicts_are_resolved_and_counted_in_the_summary_and_the_report(run: Run, shared_data: Path) -> None:
    # emotion's dev split holds two tweets labeled twice, differently: two exact ties, so both are dropped.
    train = shared_data / "emotion" / "dev.jsonl"
    code, out, err = run("train", str(train), "--name", "emotion", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["conflicts"] == {"resolved": 0, "dropped": 2, "rows_dropped": 4}
    report = json.loads((Path(summary["report"]).parent / "report.json").read_text())
    stats = report["data"]["stats"]["train"]
    assert (stats["conflicts_resolved"], stats["conflicts_dropped"], stats["conflicting_rows_dropped"]) == (0, 2, 4)
    assert "conflicting texts dropped" in (Path(summary["report"])).read_text()

    code, out, err = run("train", str(train), "--name", "emotion")
    assert code == 0, err
    assert "conflicting labels: 0 resolved by majority, 2 dropped (4 rows left out" in " ".join(out.split())


def test_on_conflict_error_stops_and_names_the_flag(run: Run, shared_data: Path) -> None:
    train = shared_data / "goemotions" / "train.jsonl"
    code, out, err = run("train", str(train), "--name", "goemotions", "--on-conflict", "error")
    assert code == 1
    assert out == ""
    message = " ".join(err.split())
    assert "62 texts have conflicting labels and on_conflict (--on-conflict) is 'error'" in message
    assert "line 8989: same text as line 198 but different labels ('neutral' here, 'disgust' there)" in message

    code, _, err = run("train", str(train), "--name", "goemotions", "--on-conflict", "keep")
    assert code == 2
    assert "--on-conflict: 'keep'; choose majority, drop, error" in err
