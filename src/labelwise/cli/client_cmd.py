"""`labelwise classify`: classify texts with a running Labelwise server, through the Python client.

One text as an argument is sent to `/v1/classify`; a file of texts (one per line, `-` for stdin) is sent to
`/v1/batch` in chunks of up to 512. Errors from the server propagate as `LabelwiseAPIError`, which `main()` prints
as one line with the server's code and message.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from labelwise.cli.output import fail, print_json, print_table
from labelwise.client import Client, LabelScore

BATCH_SIZE = 512
_SHOWN_CHARS = 60

Server = Annotated[
    str | None, typer.Option("--server", help="Server URL (default: $LABELWISE_URL, else http://127.0.0.1:8000).")
]
Key = Annotated[str | None, typer.Option("--key", help="API key (default: $LABELWISE_API_KEY).", show_default=False)]


def _labels_option(labels: str | None) -> list[str] | None:
    if labels is None:
        return None
    names = [name.strip() for name in labels.split(",") if name.strip()]
    if not names:
        fail("--labels: give label names separated by commas, e.g. --labels billing,shipping", code=2)
    return names


def _read_lines(source: str) -> list[tuple[int, str]]:
    """(line number, text) for every line with text in it; `-` reads stdin."""
    try:
        content = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        fail(f"--input: {'stdin' if source == '-' else source} is not UTF-8 text (byte {exc.start:,})")
    lines = [(number, line) for number, line in enumerate(content.splitlines(), start=1) if line.strip()]
    if not lines:
        fail(f"--input: no texts in {'stdin' if source == '-' else source}", code=2)
    return lines


def _chunks(items: list[tuple[int, str]], size: int) -> Iterator[list[tuple[int, str]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _scores(labels: list[LabelScore]) -> list[dict[str, Any]]:
    return [{"label": s.label, "score": s.score} for s in labels]


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def classify(
    text: Annotated[str | None, typer.Argument(help="A text to classify.", show_default=False)] = None,
    input_: Annotated[
        str | None, typer.Option("--input", "-i", help="File of texts, one per line ('-': stdin).", show_default=False)
    ] = None,
    server: Server = None,
    key: Key = None,
    model: Annotated[
        str | None, typer.Option("--model", help="name, name@alias or name:version (default: the server's).")
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="How many of the best labels to return.")] = 3,
    threshold: Annotated[
        float, typer.Option("--threshold", min=0.0, max=1.0, help="Leave out labels scoring under this.")
    ] = 0.0,
    labels: Annotated[
        str | None, typer.Option("--labels", help="Zero-shot: label names separated by commas.", show_default=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per text on stdout.")] = False,
) -> None:
    """Classify a text, or a file of texts, with a running Labelwise server."""
    if (text is None) == (input_ is None):
        fail("give either a TEXT or --input FILE ('-' for stdin)", code=2)
    if not (key or os.environ.get("LABELWISE_API_KEY")):
        fail("an API key is needed: --key KEY or LABELWISE_API_KEY", code=2)
    names = _labels_option(labels)
    with Client(server, key) as client:
        options: dict[str, Any] = {"model": model, "top_k": top_k, "threshold": threshold, "labels": names}
        if text is not None:
            _one(client, text, options, as_json)
        else:
            assert input_ is not None
            _many(client, _read_lines(input_), options, as_json)


def _one(client: Client, text: str, options: dict[str, Any], as_json: bool) -> None:
    result = client.classify(text, **options)
    if as_json:
        print_json(
            {
                "labels": _scores(result.labels),
                "predicted": result.predicted,
                "model": result.model,
                "model_version": result.model_version,
                "latency_ms": result.latency_ms,
                "request_id": result.request_id,
            }
        )
        return
    chosen = set(result.predicted)
    print_table(
        f"{result.model} {result.model_version}",
        ["label", "score", "predicted"],
        [(s.label, f"{s.score:.4f}", "✓" if s.label in chosen else "") for s in result.labels],
    )


def _many(client: Client, lines: list[tuple[int, str]], options: dict[str, Any], as_json: bool) -> None:
    rows: list[tuple[Any, ...]] = []
    title = ""
    for chunk in _chunks(lines, BATCH_SIZE):
        result = client.batch([text for _, text in chunk], **options)
        title = f"{result.model} {result.model_version}"
        for item in result.results:
            number, text = chunk[item.index]
            if as_json:
                print_json(
                    {
                        "line": number,
                        "text": text,
                        "labels": _scores(item.labels),
                        "predicted": item.predicted,
                        "model": result.model,
                        "model_version": result.model_version,
                        "request_id": result.request_id,
                    }
                )
            else:
                best = ", ".join(f"{s.label} {s.score:.3f}" for s in item.labels)
                rows.append((number, _shown(text), ", ".join(item.predicted) or "(none)", best))
    if not as_json:
        print_table(title, ["line", "text", "predicted", "labels"], rows)
