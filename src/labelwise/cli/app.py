"""Entry point and top-level commands of the `labelwise` CLI."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from labelwise.bootstrap import Container
from labelwise.cli import (
    client_cmd,
    jobs_cmd,
    keys_cmd,
    migrate_cmd,
    models_cmd,
    monitor_cmd,
    serve_cmd,
    usage_cmd,
    worker_cmd,
)
from labelwise.cli.output import console, fail, print_json, print_table
from labelwise.cli.progress import row_progress, step_progress
from labelwise.client import LabelwiseAPIError
from labelwise.config import Settings
from labelwise.data import CONFLICT_RULES, ReadOptions
from labelwise.domain import ModelVersion
from labelwise.errors import LabelwiseError
from labelwise.logs import configure_logging
from labelwise.services.training import TrainRequest

app = typer.Typer(
    name="labelwise",
    help="Train, evaluate and serve text classifiers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(models_cmd.app, name="models")
app.add_typer(keys_cmd.app, name="keys")
app.command("demo")(serve_cmd.demo)
app.command("serve")(serve_cmd.serve)
app.command("usage")(usage_cmd.usage)
app.command("drift")(monitor_cmd.drift)
models_cmd.app.command("promote")(monitor_cmd.promote)
app.add_typer(jobs_cmd.app, name="jobs")
app.command("worker")(worker_cmd.worker)
app.command("migrate")(migrate_cmd.migrate)
app.command("classify")(client_cmd.classify)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
TextCol = Annotated[str, typer.Option("--text-col", help="Column holding the text.")]
LabelCol = Annotated[str | None, typer.Option("--label-col", help="Column holding the label(s).")]
LabelSep = Annotated[str | None, typer.Option("--label-sep", help="Split a label string into several labels.")]


OnConflict = Annotated[
    str,
    typer.Option(
        "--on-conflict",
        help="Same text with different labels (label sets, for multi-label): 'majority' keeps its most frequent "
        "labels and drops it on a tie, 'drop' drops it, 'error' stops and lists them.",
    ),
]


def read_options(
    text_col: str, label_col: str | None, label_sep: str | None, multi: bool | None, on_conflict: str = "majority"
) -> ReadOptions:
    rule = next((rule for rule in CONFLICT_RULES if rule == on_conflict), None)
    if rule is None:
        fail(f"--on-conflict: {on_conflict!r}; choose {', '.join(CONFLICT_RULES)}", code=2)
    assert rule is not None
    return ReadOptions(text_col=text_col, label_col=label_col, label_sep=label_sep, multi_label=multi, conflicts=rule)


@app.callback()
def _root(ctx: typer.Context) -> None:
    """Labelwise: train, evaluate and serve calibrated text classifiers."""
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"LABELWISE_{str(first['loc'][0]).upper()}: {first['msg']}")
    configure_logging("WARNING", json=True)
    logging.getLogger("labelwise").setLevel(settings.log_level if settings.log_level != "INFO" else "WARNING")
    ctx.obj = Container(settings, open_migrates=True)


@app.command()
def train(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="Model name.")],
    data: Annotated[
        Path | None,
        typer.Argument(
            help="Training file: CSV, TSV, JSONL or Parquet (with --with-feedback: default the file "
            "the production version was trained on)."
        ),
    ] = None,
    with_feedback: Annotated[
        bool, typer.Option("--with-feedback", help="Add the corrections stored as feedback to the training data.")
    ] = False,
    engine: Annotated[str, typer.Option("--engine", help="Engine to train.")] = "linear",
    validation: Annotated[Path | None, typer.Option("--validation", help="Validation file.")] = None,
    test: Annotated[Path | None, typer.Option("--test", help="Test file.")] = None,
    text_col: TextCol = "text",
    label_col: LabelCol = None,
    label_sep: LabelSep = None,
    multi_label: Annotated[
        bool | None, typer.Option("--multi-label/--single-label", help="Force the task type (default: detect).")
    ] = None,
    min_examples: Annotated[int, typer.Option("--min-examples", min=1, help="Fewest rows a label may have.")] = 2,
    on_conflict: OnConflict = "majority",
    as_json: JsonOpt = False,
) -> None:
    """Train a model on labeled data, evaluate it and publish it as a new version; its report compares it with the
    version in production, if there is one."""
    context: Container = ctx.obj
    feedback = monitor_cmd.feedback_rows(context, name) if with_feedback else ()
    data = data or (monitor_cmd.original_data(context, name) if with_feedback else None)
    if data is None:
        fail("DATA is required unless --with-feedback is given", code=2)
    assert data is not None
    request = TrainRequest(
        name=name,
        train=data,
        feedback=feedback,
        engine=engine,
        validation=validation,
        test=test,
        options=read_options(text_col, label_col, label_sep, multi_label, on_conflict),
        seed=context.settings.seed,
        min_examples=min_examples,
    )
    with step_progress(enabled=not as_json) as progress:
        record, report = context.models.train(request, progress=progress)
    _print_trained(context, record, report, as_json=as_json)


def _print_trained(context: Container, record: ModelVersion, report: dict[str, Any], *, as_json: bool) -> None:
    """The new version's headline metrics, its data warnings and where its report is."""
    summary: dict[str, Any] = {
        "model": record.name,
        "version": record.version,
        "engine": record.engine,
        "task": record.task.value,
        "labels": len(record.labels),
        "training_seconds": report["training_seconds"],
        "metrics": record.metrics["headline"],
        "conflicts": conflict_counts(report["data"]),
        "report": str(context.models.report_path(record) / "report.html"),
    }
    if as_json:
        print_json(summary)
        return
    print_table(
        f"{record.name} {record.version} ({record.engine}, {record.task.value}, {len(record.labels)} labels)",
        ["metric", "value"],
        [(k, v) for k, v in summary["metrics"].items()],
    )
    conflicts = summary["conflicts"]
    if conflicts["resolved"] or conflicts["dropped"]:
        console.print(
            f"conflicting labels: {conflicts['resolved']} resolved by majority, {conflicts['dropped']} dropped "
            f"({conflicts['rows_dropped']} rows left out; --on-conflict error to stop on them instead)",
            highlight=False,
        )
    for warning in report["data"].get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    console.print(f"report: {summary['report']}", highlight=False)


def conflict_counts(data: dict[str, Any]) -> dict[str, int]:
    """Texts with conflicting labels over every file read: resolved by majority, dropped, and rows left out."""
    stats = data.get("stats", {}).values()
    return {
        "resolved": sum(s.get("conflicts_resolved", 0) for s in stats),
        "dropped": sum(s.get("conflicts_dropped", 0) for s in stats),
        "rows_dropped": sum(s.get("conflicting_rows_dropped", 0) for s in stats),
    }


@app.command("eval")
def eval_(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model: name, name@alias or name:version.")],
    data: Annotated[Path, typer.Argument(help="Labeled file to evaluate on.")],
    text_col: TextCol = "text",
    label_col: LabelCol = None,
    label_sep: LabelSep = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a stored model on a labeled file."""
    context: Container = ctx.obj
    metrics = context.models.evaluate(model, data, read_options(text_col, label_col, label_sep, None))
    if as_json:
        print_json(metrics)
        return
    rows: list[tuple[str, Any]] = [("rows", metrics["n"])]
    for key in ("accuracy", "subset_accuracy", "hamming_loss", "roc_auc", "pr_auc", "ece"):
        if metrics.get(key) is not None:
            rows.append((key, f"{metrics[key]:.4f}"))
    for avg in ("micro", "macro", "weighted"):
        if avg in metrics:
            rows.append((f"{avg} f1", f"{metrics[avg]['f1']:.4f}"))
    print_table(f"{metrics['model']} {metrics['model_version']}", ["metric", "value"], rows)
    print_table(
        "per label",
        ["label", "precision", "recall", "f1", "support"],
        [
            (label, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", m["support"])
            for label, m in metrics["per_label"].items()
        ],
    )


RAY_LOCAL = "local"


@app.command()
def predict(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model: name, name@alias or name:version.")],
    text: Annotated[str | None, typer.Argument(help="A text to classify.")] = None,
    input_: Annotated[
        str | None, typer.Option("--input", help="File of texts (CSV, TSV, JSONL, Parquet); with --ray also a URI.")
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", help="Where to write predictions; with --ray a directory or URI.")
    ] = None,
    text_col: TextCol = "text",
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Labels to show for a single text.")] = 3,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="[ADDRESS]",
            help="Run on Ray Data (the labelwise[ray] extra): a cluster's ADDRESS, or none for a local instance.",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="With --ray: rows per actor call.")] = 4096,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", min=1, help="With --ray: actors (default: one per CPU).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Classify one text, or stream a whole file into a file with label and score columns (with --ray, on a Ray
    cluster: each actor loads the model once)."""
    context: Container = ctx.obj
    if (text is None) == (input_ is None):
        fail("give either a TEXT or --input FILE", code=2)
    if input_ is not None:
        if output is None:
            fail("--output is required with --input", code=2)
        assert output is not None
        if ray is not None:
            _predict_on_ray(context, model, input_, output, ray, text_col, batch_size, concurrency, as_json)
            return
        with row_progress(Path(input_), enabled=not as_json) as advance:
            rows = context.models.predict_file(model, Path(input_), Path(output), text_col=text_col, on_rows=advance)
        if as_json:
            print_json({"rows": rows, "output": str(output)})
        else:
            console.print(f"{rows:,} rows -> {output}", highlight=False)
        return
    assert text is not None
    record = context.store.resolve(model)
    engine = context.store.load(record)
    prediction = engine.predictions([text], top_k=top_k)[0]
    if as_json:
        print_json({"model": record.name, "model_version": record.version, **_prediction_dict(prediction)})
        return
    print_table(
        f"{record.name} {record.version} -> {', '.join(prediction.predicted) or '(none)'}",
        ["label", "score"],
        [(s.label, f"{s.score:.4f}") for s in prediction.labels],
    )


def _predict_on_ray(
    context: Container,
    model: str,
    source: str,
    output: str,
    ray: str,
    text_col: str,
    batch_size: int,
    concurrency: int | None,
    as_json: bool,
) -> None:
    from labelwise.bulk import predict_dataset

    result = predict_dataset(
        model,
        source,
        output,
        settings=context.settings,
        text_col=text_col,
        address=None if ray == RAY_LOCAL else ray,
        batch_rows=batch_size,
        concurrency=concurrency,
        progress=not as_json,
    )
    if as_json:
        print_json(
            {"model": result.model, "model_version": result.model_version, "rows": result.rows, "output": output}
        )
    else:
        console.print(f"{result.model} {result.model_version}: {result.rows:,} rows -> {output}", highlight=False)


def _prediction_dict(prediction: Any) -> dict[str, Any]:
    return {
        "labels": [{"label": s.label, "score": s.score} for s in prediction.labels],
        "predicted": prediction.predicted,
    }


def _ray_address_optional(args: list[str]) -> list[str]:
    """`predict ... --ray` with no ADDRESS (last, or before another option) means a local Ray instance. Click's own
    optional option values do not survive Typer, so the missing value is filled in here."""
    if "predict" not in args:
        return args
    out = list(args)
    for i, arg in enumerate(out):
        if arg == "--ray" and (i + 1 == len(out) or out[i + 1].startswith("-")):
            out.insert(i + 1, RAY_LOCAL)
    return out


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; any `LabelwiseError`, `LabelwiseAPIError` or file problem becomes one line on stderr, exit 1."""
    try:
        app(args=_ray_address_optional(sys.argv[1:] if argv is None else argv), standalone_mode=True)
    except LabelwiseError as exc:
        fail(exc.message)
    except LabelwiseAPIError as exc:  # from the API client (`classify`): the server's code, message, request id
        fail(str(exc))
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        fail(f"{exc.strerror}: {exc.filename}")
    except KeyboardInterrupt:
        fail("interrupted", code=130)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
