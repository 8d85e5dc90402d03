"""The `decaylab` command line: `serve`, and a thin client of the REST API for everything else."""

from __future__ import annotations

import logging
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from service.client.api import DEFAULT_API, ApiClient, ApiError
from studies.states import TERMINAL_STUDY_STATES, StudyState

app = typer.Typer(
    help="decaylab: weight-decay studies on Ray Tune + Optuna, results in SQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# a pipe or a log file gets wide tables rather than columns cut to "…"
console = Console() if sys.stdout.isatty() else Console(width=200)
TERMINAL = tuple(TERMINAL_STUDY_STATES)
StudyId = Annotated[
    str, typer.Argument(help="the study's id, or a unique prefix of it (see `decaylab ls`)")
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"decaylab {version('decaylab')}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    api: Annotated[
        str, typer.Option(envvar="DECAYLAB_API_URL", help="API base URL")
    ] = DEFAULT_API,
    api_key: Annotated[str, typer.Option(envvar="DECAYLAB_API_KEY", help="bearer key")] = "",
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """decaylab: weight-decay studies on Ray Tune + Optuna, results in SQL."""
    ctx.obj = ApiClient(api.rstrip("/"), api_key)


def _client(ctx: typer.Context) -> ApiClient:
    client: ApiClient = ctx.obj
    return client


def _study(ctx: typer.Context, study_id: str) -> tuple[ApiClient, str]:
    """The client and the whole id of the study that `study_id` (an id or a prefix) names."""
    client = _client(ctx)
    return client, client.resolve_study_id(study_id)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_fmt(v) for v in row))
    console.print(table)


@app.command()
def serve() -> None:
    """Run the API (and, unless DECAYLAB_RAY_ADDRESS is set, a local Ray head) until Ctrl-C."""
    from pydantic import ValidationError

    from service.auth import check_exposure
    from service.server import serve as run_server
    from studies.settings import Settings

    try:
        settings = Settings()
        check_exposure(settings)
    except (ValidationError, ValueError) as error:  # a setting that is wrong or unsafe
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    run_server(settings)


@app.command()
def submit(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="study spec, YAML or JSON")],
    watch_it: Annotated[bool, typer.Option("--watch", help="then watch it to its end")] = False,
) -> None:
    """Submit a study; prints its id and where to follow it."""
    client = _client(ctx)
    study = client.submit(file)
    health = client.get("/health")
    console.print(f"study [bold]{study['id']}[/bold] ({study['name']}) {study['status']}")
    console.print(f"  API:            {client.base_url}/studies/{study['id']}")
    console.print(f"  API docs:       {client.base_url}/docs")
    if health.get("ray_dashboard"):
        console.print(f"  Ray dashboard:  {health['ray_dashboard']}/#/jobs/{study['ray_job_id']}")
    if watch_it:
        watch(ctx, study["id"])


def _best_text(detail: dict[str, Any]) -> str:
    parts = [f"{b['metric']} {_fmt(b['value'])}" for b in detail.get("best", [])]
    return "best " + ", ".join(parts) if parts else ""


@app.command()
def watch(ctx: typer.Context, study_id: StudyId, interval: float = 1.0) -> None:
    """A live progress bar until the study ends; exit status 0 only if it succeeded."""
    client, study_id = _study(ctx, study_id)
    detail = client.get(f"/studies/{study_id}")
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(detail["name"], total=detail["progress"]["budget"], status="")
        while True:
            counts = detail["progress"]["counts"]
            status = (
                f"{detail['status']} · running {counts.get('running', 0)} · failed "
                f"{counts.get('failed', 0) + counts.get('diverged', 0)} · pruned "
                f"{counts.get('pruned', 0)} · {_best_text(detail)}"
            )
            progress.update(task, completed=detail["progress"]["finished"], status=status)
            if detail["status"] in TERMINAL:
                break
            time.sleep(interval)
            detail = client.get(f"/studies/{study_id}")
    if detail.get("error"):
        console.print(f"[red]{detail['error']}[/red]")
    console.print(f"study {study_id} {detail['status']}")
    if detail["status"] != StudyState.SUCCEEDED:
        raise typer.Exit(1)


@app.command("ls")
def list_studies(ctx: typer.Context, status: str | None = None, limit: int = 50) -> None:
    """The studies, newest first."""
    page = _client(ctx).get("/studies", limit=limit, **({"status": status} if status else {}))
    rows = [[s["id"], s["name"], s["status"], s["created_at"][:19]] for s in page["items"]]
    _table(f"{page['total']} studies", ["id", "name", "status", "created"], rows)


@app.command()
def show(ctx: typer.Context, study_id: StudyId) -> None:
    """One study: status, progress by state, best values."""
    client, study_id = _study(ctx, study_id)
    detail = client.get(f"/studies/{study_id}")
    console.print(f"[bold]{detail['name']}[/bold] {detail['id']}: {detail['status']}")
    progress = detail["progress"]
    console.print(f"  {progress['finished']} of {progress['budget']} trials finished")
    console.print("  " + ", ".join(f"{k} {v}" for k, v in progress["counts"].items()))
    console.print(f"  {_best_text(detail)}")
    if detail.get("error"):
        console.print(f"  [red]{detail['error']}[/red]")


TRIAL_COLUMNS = ["number", "state", "family", "p", "lambda", "schedule", "until", "seed"]
METRIC_COLUMNS = ["val_acc", "test_acc", "sparsity"]


def _trial_row(trial: dict[str, Any]) -> list[Any]:
    metrics = trial.get("final_metrics", {})
    return [trial.get(c) for c in TRIAL_COLUMNS] + [metrics.get(m) for m in METRIC_COLUMNS]


@app.command()
def trials(
    ctx: typer.Context,
    study_id: StudyId,
    state: Annotated[list[str] | None, typer.Option(help="repeat for several")] = None,
    sort: str = "number",
    order: str = "asc",
    limit: int = 50,
    offset: int = 0,
) -> None:
    """A table of a study's trials, filtered and sorted."""
    params: dict[str, Any] = {"sort": sort, "order": order, "limit": limit, "offset": offset}
    if state:
        params["state"] = state
    client, study_id = _study(ctx, study_id)
    page = client.get(f"/studies/{study_id}/trials", **params)
    rows = [_trial_row(t) for t in page["items"]]
    title = f"trials {offset + 1}–{offset + len(rows)} of {page['total']}"
    _table(title, TRIAL_COLUMNS + METRIC_COLUMNS, rows)


@app.command()
def best(ctx: typer.Context, study_id: StudyId) -> None:
    """The best completed trial for each objective."""
    client, study_id = _study(ctx, study_id)
    items = client.get(f"/studies/{study_id}/best")
    rows = [[b["metric"], b["mode"], *_trial_row(b["trial"] or {})] for b in items]
    _table("best trials", ["objective", "mode", *TRIAL_COLUMNS, *METRIC_COLUMNS], rows)


@app.command()
def pareto(
    ctx: typer.Context, study_id: StudyId, x: str | None = None, y: str | None = None
) -> None:
    """The Pareto front over the study's objectives (or over metrics --x and --y)."""
    params = {k: v for k, v in (("x", x), ("y", y)) if v}
    client, study_id = _study(ctx, study_id)
    front = client.get(f"/studies/{study_id}/pareto", **params)
    names = front["metrics"]
    others = [m for m in METRIC_COLUMNS if m not in names]  # each metric once
    rows = [
        [
            *(p["values"].get(n) for n in names),
            *(p["trial"].get(c) for c in TRIAL_COLUMNS),
            *(p["trial"].get("final_metrics", {}).get(m) for m in others),
        ]
        for p in front["items"]
    ]
    title = f"Pareto front: {len(rows)} of {front['considered']} completed trials"
    _table(title, [*names, *TRIAL_COLUMNS, *others], rows)


@app.command()
def effects(
    ctx: typer.Context,
    study_id: StudyId,
    factor: str = "schedule",
    metric: str = "val_acc",
    buckets: int | None = None,
) -> None:
    """Mean, std, count and 95% CI of a metric per level of a factor."""
    params: dict[str, Any] = {"factor": factor, "metric": metric}
    if buckets:
        params["buckets"] = buckets
    client, study_id = _study(ctx, study_id)
    result = client.get(f"/studies/{study_id}/effects", **params)
    rows = [
        [lv["level"], lv["count"], lv["mean"], lv["std"], lv["ci_low"], lv["ci_high"]]
        for lv in result["levels"]
    ]
    title = f"{metric} by {factor} ({result['confidence']:.0%} CI)"
    _table(title, [factor, "n", "mean", "std", "ci low", "ci high"], rows)


@app.command()
def cancel(ctx: typer.Context, study_id: StudyId) -> None:
    """Stop a study's job; it ends as cancelled."""
    client, study_id = _study(ctx, study_id)
    study = client.post(f"/studies/{study_id}/cancel")
    console.print(f"study {study_id} {study['status']}")


@app.command()
def resume(ctx: typer.Context, study_id: StudyId) -> None:
    """Resume a failed, cancelled or orphaned study from the database."""
    client, study_id = _study(ctx, study_id)
    study = client.post(f"/studies/{study_id}/resume")
    console.print(f"study {study_id} {study['status']} (Ray job {study['ray_job_id']})")


@app.command()
def export(
    ctx: typer.Context,
    study_id: StudyId,
    output: Annotated[Path, typer.Option("-o", "--output", help="file to write")],
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
    per: Annotated[str, typer.Option(help="trial (final metrics) or epoch (curves)")] = "trial",
) -> None:
    """Download a study's results as CSV or Parquet."""
    client, study_id = _study(ctx, study_id)
    chunks = client.stream(f"/studies/{study_id}/export", format=fmt, per=per)
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
    console.print(f"wrote {output} ({output.stat().st_size} bytes)")


@app.command()
def report(
    ctx: typer.Context,
    study_ids: Annotated[
        list[str],
        typer.Argument(help="a study id (or unique prefix), or several to compare in one report"),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="directory")] = Path("report"),
) -> None:
    """Plots a person wants to look at (PNG) and an index.html with the best trials."""
    from service.client.report import write_report

    client = _client(ctx)
    index = write_report(client, [client.resolve_study_id(i) for i in study_ids], output)
    console.print(f"report: {index}")


def main() -> None:
    """Entry point of the `decaylab` console script: errors are one line, never a traceback."""
    try:
        code = app(standalone_mode=False)  # click returns typer.Exit's code instead of exiting
    except ApiError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except (typer.Exit, typer.Abort) as stop:
        sys.exit(getattr(stop, "exit_code", 1))
    except click.ClickException as error:  # usage errors: one line
        print(f"error: {error.format_message()}", file=sys.stderr)
        sys.exit(2)
    if isinstance(code, int) and code:
        sys.exit(code)
