"""`decaylab report`: the figures a researcher looks at and one self-contained index.html.

Everything comes from the REST API (GET /studies/{id}, /trials, /trials/{n}, /trials/{n}/metrics,
/best, /pareto, /effects), so a report can be drawn from a remote service; several studies (the
arms of one comparison) can share one report (service/report_merge.py). Only completed trials that
did not diverge enter the figures; the header counts every trial by state.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service import report_plots as plots
from service.client import ApiClient
from service.report_html import render_html
from service.report_importance import final_metric

PAGE = 1000  # the API's largest page
CURVE_METRICS = ("val_acc", "weight_norm")
# curves fetched per (family, schedule): one request per trial, so a big study is sampled
MAX_CURVES_PER_GROUP = 50
EFFECT_METRICS = ("val_acc", "sparsity", "weight_norm")
FIGURE_NAMES = (
    "accuracy_vs_sparsity",
    "p_effects",
    "curves_by_schedule",
    "weight_histogram",
    "importance",
)

Json = dict[str, Any]


@dataclass(frozen=True)
class ReportData:
    """What the report shows, as the API returned it."""

    study: Json
    trials: list[Json]
    best: list[Json]
    pareto: Json
    front: Json  # the accuracy-sparsity front the first figure rings
    effects: dict[str, dict[str, Json]]  # factor -> metric -> /effects answer
    curves: dict[int, dict[str, list[tuple[int, float | None]]]]
    histograms: list[tuple[Json, Json]]  # (trial, its final |w| histogram)

    @property
    def usable(self) -> list[Json]:
        """Completed trials that did not diverge: the ones the figures show."""
        return usable_trials(self.trials)


def usable_trials(trials: Sequence[Json]) -> list[Json]:
    """Completed trials without a divergence."""
    return [t for t in trials if t["state"] == "completed" and t.get("diverged_epoch") is None]


def all_trials(client: ApiClient, study_id: str) -> list[Json]:
    """Every trial of a study, page by page."""
    items: list[Json] = []
    while True:
        page = client.get(f"/studies/{study_id}/trials", limit=PAGE, offset=len(items))
        items.extend(page["items"])
        if not page["items"] or len(items) >= page["total"]:
            return items


def curve_sample(trials: Sequence[Json]) -> list[Json]:
    """The first MAX_CURVES_PER_GROUP trials (by number) of each family and schedule."""
    taken: dict[tuple[str, str], int] = {}
    sample = []
    for trial in sorted(trials, key=lambda t: t["number"]):
        key = (str(trial.get("family")), str(trial.get("schedule")))
        if taken.get(key, 0) < MAX_CURVES_PER_GROUP:
            taken[key] = taken.get(key, 0) + 1
            sample.append(trial)
    return sample


def fetch_curves(
    client: ApiClient, study_id: str, trials: Sequence[Json]
) -> dict[int, dict[str, list[tuple[int, float | None]]]]:
    """The val_acc and weight_norm curves of each trial: {number: {metric: [(epoch, value)]}}."""
    curves = {}
    for trial in trials:
        number = int(trial["number"])
        answer = client.get(
            f"/studies/{study_id}/trials/{number}/metrics", name=list(CURVE_METRICS)
        )
        curves[number] = {
            name: [(int(p["epoch"]), p["value"]) for p in points]
            for name, points in answer.items()
        }
    return curves


def fetch_effects(client: ApiClient, study_id: str, trials: Sequence[Json]) -> dict[str, Any]:
    """/effects of the schedule, and of the family when the study has several, per metric."""
    factors = ["schedule"]
    if len({t.get("family") for t in trials}) > 1:
        factors.append("family")
    return {
        factor: {
            metric: client.get(f"/studies/{study_id}/effects", factor=factor, metric=metric)
            for metric in EFFECT_METRICS
        }
        for factor in factors
    }


def best_by_family(trials: Sequence[Json], families: Sequence[str]) -> list[Json]:
    """The most accurate (val_acc) usable trial of each family that has one, in that order."""
    chosen = []
    for family in families:
        group = [
            t
            for t in trials
            if t.get("family") == family and final_metric(t, "val_acc") is not None
        ]
        if group:
            chosen.append(max(group, key=lambda t: (final_metric(t, "val_acc"), -t["number"])))
    return chosen


def histogram_trials(trials: Sequence[Json]) -> list[Json]:
    """The most accurate pWD trial, with p < 1 when there is one (the sparse regime the pWD
    paper pictures), and the most accurate decoupled trial."""
    below_one = [t for t in trials if t.get("family") == "pwd" and float(t.get("p") or 2) < 1]
    pwd = best_by_family(below_one, ("pwd",)) or best_by_family(trials, ("pwd",))
    return pwd + best_by_family(trials, ("decoupled",))


def fetch_histograms(
    client: ApiClient, study_id: str, trials: Sequence[Json]
) -> list[tuple[Json, Json]]:
    """(trial, final |w| histogram) of the best pWD and best decoupled trial that have one."""
    pairs = []
    for trial in histogram_trials(trials):
        detail = client.get(f"/studies/{study_id}/trials/{trial['number']}")
        if detail.get("weight_histogram"):
            pairs.append((trial, detail["weight_histogram"]))
    return pairs


def fetch_report_data(client: ApiClient, study_id: str) -> ReportData:
    """Everything the report needs, through the REST API."""
    base = f"/studies/{study_id}"
    study = client.get(base)
    trials = all_trials(client, study_id)
    return ReportData(
        study=study,
        trials=trials,
        best=client.get(f"{base}/best"),
        pareto=client.get(f"{base}/pareto"),
        front=client.get(f"{base}/pareto", x="val_acc", y="sparsity", x_mode="max", y_mode="max"),
        effects=fetch_effects(client, study_id, trials),
        curves=fetch_curves(client, study_id, curve_sample(usable_trials(trials))),
        histograms=fetch_histograms(client, study_id, usable_trials(trials)),
    )


def build_plots(data: ReportData) -> list[plots.Plot]:
    """The five figures, each drawn or replaced by a note."""
    usable = data.usable
    front = [item["trial"] for item in data.front["items"]]
    epochs = int(data.study["spec"]["task"]["epochs"])
    return [
        plots.accuracy_vs_sparsity(usable, front),
        plots.p_effects(usable),
        plots.curves_by_schedule(usable, data.curves, epochs),
        plots.weight_histograms(data.histograms),
        plots.importance(data.study["spec"], usable),
    ]


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def fetch_studies(client: ApiClient, study_ids: str | Sequence[str]) -> ReportData:
    """One study's report data, or several studies' merged into one report."""
    ids = [study_ids] if isinstance(study_ids, str) else list(study_ids)
    parts = [fetch_report_data(client, study_id) for study_id in ids]
    if len(parts) == 1:
        return parts[0]
    from service.report_merge import merge_report_data  # it builds on this module

    return merge_report_data(parts)


def write_report(client: ApiClient, study_ids: str | Sequence[str], output_dir: Path) -> Path:
    """Write the PNG figures and a self-contained index.html of one or several studies.

    Returns the html's path.
    """
    data = fetch_studies(client, study_ids)
    figures = build_plots(data)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for figure in figures:
        path = output_dir / f"{figure.name}.png"
        if figure.png is not None:
            path.write_bytes(figure.png)
        else:  # a figure from an earlier report of this directory would now mislead
            path.unlink(missing_ok=True)
    index = output_dir / "index.html"
    html = render_html(data, figures, source=client.base_url, image=data_uri)
    index.write_text(html, encoding="utf-8")
    return index
