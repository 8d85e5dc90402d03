"""The report's index.html: header, tables and figures in one self-contained page."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from service.client.report.data import ReportData
from service.client.report.plots import Plot

Json = Mapping[str, Any]
# metrics that are fractions, shown as percentages
PERCENT_METRICS = ("val_acc", "train_acc", "test_acc", "pruned_val_acc", "sparsity", "zero_frac")
TRIAL_METRICS = ("val_acc", "test_acc", "sparsity", "pruned_val_acc", "weight_norm")
EFFECT_TITLES = {"schedule": "Effects by decay schedule", "family": "Effects by family"}
STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{margin-bottom:.2em} .meta{color:#555;margin:.2em 0}
.note{color:#8a5a00;background:#fff6e0;padding:.5em .8em;border-left:3px solid #e0a800}
table{border-collapse:collapse;margin:.6em 0 1.4em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right} th{background:#f2f2f2}
td.l,th.l{text-align:left} figure{margin:1.5em 0} img{max-width:100%;border:1px solid #ddd}
figcaption{color:#444;margin-top:.4em}
"""


def fmt(value: Any, metric: str | None = None) -> str:
    """A table cell: percentages for fractions, 4 significant digits otherwise, – for nothing."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return escape(str(value))
    if metric is not None and (metric in PERCENT_METRICS or metric.startswith("sparsity@")):
        return f"{100 * value:.2f}%"
    return f"{value:.4g}"


def schedule_text(trial: Json) -> str:
    """The schedule with its switch point: `early (until 0.3)`."""
    schedule = str(trial.get("schedule"))
    if schedule == "early" and trial.get("until") is not None:
        return f"early (until {trial['until']:.3g})"
    if schedule == "late" and trial.get("from") is not None:
        return f"late (from {trial['from']:.3g})"
    return schedule


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], left: int = 0) -> str:
    """An html table of already escaped cells; the first `left` columns are left-aligned."""

    def row(cells: Sequence[str], tag: str) -> str:
        return (
            "<tr>"
            + "".join(
                f"<{tag}{' class=l' if i < left else ''}>{c}</{tag}>" for i, c in enumerate(cells)
            )
            + "</tr>"
        )

    body = "".join(row(r, "td") for r in rows)
    return f"<table>{row([escape(h) for h in headers], 'th')}{body}</table>"


def trial_cells(trial: Json) -> list[str]:
    """#, family, p, λ, schedule, lr and seed of a trial."""
    return [
        f"#{trial['number']}",
        fmt(trial.get("family")),
        fmt(trial.get("p")),
        fmt(trial.get("lambda")),
        escape(schedule_text(trial)),
        fmt(trial.get("lr")),
        fmt(trial.get("seed")),
    ]


TRIAL_HEADERS = ["trial", "family", "p", "λ", "schedule", "lr", "seed"]


def families(spec: Json) -> str:
    """The study's family, or the families it searches."""
    searched = (spec.get("space") or {}).get("family")
    if searched and searched.get("choices"):
        return "families " + ", ".join(str(c) for c in searched["choices"])
    return f"family {spec['regularizer']['family']}"


def header(study: Json, trials: Sequence[Json], usable: int) -> str:
    """Name, id, status, what is trained and searched, and progress by trial state."""
    spec, progress = study["spec"], study["progress"]
    task = spec["task"]
    counts = " · ".join(f"{state} {n}" for state, n in progress["counts"].items())
    objectives = ", ".join(f"{o['metric']} ({o['mode']})" for o in spec["objectives"])
    lines = [
        f"study <code>{escape(study['id'])}</code> · status <b>{escape(study['status'])}</b>"
        + (f" · error: {escape(study['error'])}" if study.get("error") else ""),
        f"{escape(task['dataset'])} · {escape(task['model'])} · {task['epochs']} epochs · "
        f"{escape(task['optimizer'])} lr {task['lr']:g} ({escape(task['lr_schedule'])}) · "
        f"{escape(families(spec))} · searched: "
        f"{escape(', '.join(spec.get('space', {})) or 'nothing')} · objectives: "
        f"{escape(objectives)} · seeds {spec.get('seeds', 1)}",
        f"progress: {progress['finished']} of {progress['budget']} training runs finished "
        f"({escape(counts)}); the figures use the {usable} completed trials that did not "
        f"diverge, of {len(trials)}",
    ]
    title = f"<h1>{escape(study['name'])}</h1>"
    return title + "".join(f"<p class=meta>{line}</p>" for line in lines)


def best_section(best: Sequence[Json]) -> str:
    """The best completed trial per objective."""
    rows = [
        [
            escape(f"{b['metric']} ({b['mode']})"),
            *trial_cells(b["trial"]),
            *(fmt((b["trial"]["final_metrics"] or {}).get(m), m) for m in TRIAL_METRICS),
        ]
        for b in best
        if b.get("trial") is not None
    ]
    if not rows:
        return "<h2>Best trials</h2><p class=note>no completed trial yet</p>"
    headers = ["objective", *TRIAL_HEADERS, *TRIAL_METRICS]
    return "<h2>Best trials</h2>" + table(headers, rows, left=6)


def pareto_section(pareto: Json) -> str:
    """The non-dominated trials over the study's objectives."""
    metrics = pareto["metrics"]
    axes = ", ".join(f"{m} ({d})" for m, d in zip(metrics, pareto["modes"], strict=True))
    title = f"<h2>Pareto front over {escape(axes)}</h2>"
    if not pareto["items"]:
        return title + "<p class=note>no completed trial reports every objective yet</p>"
    rows = [
        [*trial_cells(i["trial"]), *(fmt(i["values"][m], m) for m in metrics)]
        for i in pareto["items"]
    ]
    summary = f"<p>{len(rows)} of {pareto['considered']} completed trials are non-dominated.</p>"
    return title + summary + table([*TRIAL_HEADERS, *metrics], rows, left=5)


def effects_section(factor: str, by_metric: Mapping[str, Json]) -> str:
    """Mean [95% CI] (n) of each metric per level of a factor."""
    levels = sorted({lv["level"] for e in by_metric.values() for lv in e["levels"]})
    title = f"<h2>{escape(EFFECT_TITLES.get(factor, factor))}</h2>"
    if not levels:
        return title + "<p class=note>no completed trial to summarize yet</p>"
    cells = {(m, lv["level"]): lv for m, e in by_metric.items() for lv in e["levels"]}

    def cell(metric: str, level: str) -> str:
        lv = cells.get((metric, level))
        if lv is None or lv["mean"] is None:
            return "–"
        interval = (
            f" [{fmt(lv['ci_low'], metric)}, {fmt(lv['ci_high'], metric)}]"
            if lv["ci_low"] is not None
            else ""
        )
        return f"{fmt(lv['mean'], metric)}{interval} (n={lv['count']})"

    rows = [[escape(level), *(cell(m, level) for m in by_metric)] for level in levels]
    note = "<p>mean [95% t-interval] (n = completed trials, every seed counted).</p>"
    return title + note + table([factor, *by_metric], rows, left=1)


def figure_section(plot: Plot, image: Callable[[bytes], str]) -> str:
    """A figure with its caption and file name, or the note saying why it is missing."""
    title = f"<h3>{escape(plot.title)}</h3>"
    if plot.png is None:
        return title + f"<p class=note>not drawn: {escape(plot.note or 'no data')}</p>"
    file = f"{plot.name}.png"
    return (
        f'{title}<figure><img src="{image(plot.png)}" alt="{escape(plot.title)}">'
        f'<figcaption>{escape(plot.caption)} (<a href="{file}">{file}</a>)</figcaption>'
        "</figure>"
    )


def render_html(
    data: ReportData, figures: Sequence[Plot], *, source: str, image: Callable[[bytes], str]
) -> str:
    """The whole page; `image` turns PNG bytes into the img src (a data URI)."""
    parts = [
        header(data.study, data.trials, len(data.usable)),
        best_section(data.best),
        "<h2>Figures</h2>",
        *(figure_section(figure, image) for figure in figures),
        pareto_section(data.pareto),
        *(effects_section(factor, by) for factor, by in data.effects.items()),
        f"<p class=meta>drawn by decaylab report from {escape(source)} on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p>",
    ]
    title = escape(f"decaylab report: {data.study['name']}")
    return (
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{title}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
    )
