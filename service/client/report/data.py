"""What a report shows, fetched through the REST API.

Everything comes from GET /studies/{id}, /trials, /trials/{n}, /trials/{n}/metrics, /best,
/pareto and /effects, so a report can be drawn from a remote service. Only completed trials that
did not diverge enter the figures; the header counts every trial by state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.client.api import ApiClient
from service.client.report.importance import final_metric
from studies.analysis import best_index
from studies.states import TrialState

PAGE = 1000  # the API's largest page
CURVE_METRICS = ("val_acc", "weight_norm")
# curves fetched per (family, schedule): one request per trial, so a big study is sampled
MAX_CURVES_PER_GROUP = 50
EFFECT_METRICS = ("val_acc", "sparsity", "weight_norm")

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
    return [
        t for t in trials if t["state"] == TrialState.COMPLETED and t.get("diverged_epoch") is None
    ]


def by_number(trials: Sequence[Json]) -> list[Json]:
    """The trials in number order, as the API lists them (the order its ties are broken in)."""
    return sorted(trials, key=lambda t: t["number"])


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
    for trial in by_number(trials):
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
        group = by_number([t for t in trials if t.get("family") == family])
        pick = best_index([final_metric(t, "val_acc") for t in group], "max")
        if pick is not None:
            chosen.append(group[pick])
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
