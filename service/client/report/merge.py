"""Several studies in one report: the arms of one comparison (pWD against AdamW as two studies
with the same task and budget) drawn side by side.

Each study's data comes from the API as for a single report; the trials are renumbered one
after the other (the title says which numbers belong to which study) and everything that
compares trials across studies (best, Pareto fronts, effects, the histogram pair) is computed
again over all of them by the functions behind the API's own answers (studies.analysis).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from service.client.report.data import (
    EFFECT_METRICS,
    Json,
    ReportData,
    by_number,
    histogram_trials,
    usable_trials,
)
from service.client.report.importance import final_metric
from studies.analysis import best_index, effects_answer, ranked_front

ACCURACY_SPARSITY = (("val_acc", "max"), ("sparsity", "max"))


def _renumbered(part: ReportData, offset: int) -> ReportData:
    def shift(trial: Json) -> Json:
        return {**trial, "number": trial["number"] + offset, "study": part.study["name"]}

    return ReportData(
        study=part.study,
        trials=[shift(t) for t in part.trials],
        best=part.best,
        pareto=part.pareto,
        front=part.front,
        effects=part.effects,
        curves={number + offset: c for number, c in part.curves.items()},
        histograms=[(shift(t), h) for t, h in part.histograms],
    )


def local_front(trials: Sequence[Json], axes: Sequence[tuple[str, str]]) -> Json:
    """What GET /pareto answers, over the given trials."""
    metrics, modes = [m for m, _ in axes], [d for _, d in axes]
    ordered = by_number(trials)
    points = [[final_metric(t, m) for m in metrics] for t in ordered]
    members, considered = ranked_front(points, modes)
    items = [
        {"values": dict(zip(metrics, points[i], strict=True)), "trial": ordered[i]}
        for i in members
    ]
    return {"metrics": metrics, "modes": modes, "considered": considered, "items": items}


def local_effects(trials: Sequence[Json], factor: str, metric: str) -> Json:
    """What GET /effects answers for a category factor, over the given trials."""
    factors = [t.get(factor) for t in trials]
    return effects_answer(factor, metric, factors, [final_metric(t, metric) for t in trials])


def local_best(trials: Sequence[Json], objectives: Sequence[tuple[str, str]]) -> list[Json]:
    """What GET /best answers, over the given trials."""
    ordered = by_number(trials)
    answers = []
    for metric, mode in objectives:
        pick = best_index([final_metric(t, metric) for t in ordered], mode)
        answers.append(
            {"metric": metric, "mode": mode, "trial": None if pick is None else ordered[pick]}
        )
    return answers


def _merged_study(parts: Sequence[ReportData], families: list[str]) -> Json:
    first = parts[0].study
    spec = {**first["spec"], "space": dict(first["spec"].get("space") or {})}
    if len(families) > 1:
        spec["space"]["family"] = {"type": "categorical", "choices": families}
    counts: Counter[str] = Counter()
    for part in parts:
        counts.update(part.study["progress"]["counts"])
    numbered = []
    for part in parts:
        numbers = [t["number"] for t in part.trials]
        span = f" #{min(numbers)}–#{max(numbers)}" if numbers else ""
        numbered.append(f"{part.study['name']}{span}")
    return {
        "id": ", ".join(p.study["id"] for p in parts),
        "name": " + ".join(numbered),
        "status": ", ".join(sorted({p.study["status"] for p in parts})),
        "error": "; ".join(p.study["error"] for p in parts if p.study.get("error")) or None,
        "spec": spec,
        "progress": {
            "budget": sum(p.study["progress"]["budget"] for p in parts),
            "finished": sum(p.study["progress"]["finished"] for p in parts),
            "counts": dict(counts),
        },
    }


def merge_report_data(parts: Sequence[ReportData]) -> ReportData:
    """One ReportData over several studies' (the first study's objectives and task)."""
    shifted, offset = [], 0
    for part in parts:
        shifted.append(_renumbered(part, offset))
        offset += max((t["number"] for t in part.trials), default=-1) + 1
    trials = [t for part in shifted for t in part.trials]
    usable = usable_trials(trials)
    families = list(dict.fromkeys(str(t.get("family")) for t in trials))
    objectives: list[Any] = [
        (o["metric"], o["mode"]) for o in parts[0].study["spec"]["objectives"]
    ]
    candidates = [pair for part in shifted for pair in part.histograms]
    chosen = histogram_trials([t for t, _ in candidates])
    factors = ["schedule", "family"] if len(families) > 1 else ["schedule"]
    return ReportData(
        study=_merged_study(shifted, families),
        trials=trials,
        best=local_best(usable, objectives),
        pareto=local_front(usable, objectives),
        front=local_front(usable, ACCURACY_SPARSITY),
        effects={f: {m: local_effects(usable, f, m) for m in EFFECT_METRICS} for f in factors},
        curves={n: c for part in shifted for n, c in part.curves.items()},
        histograms=[(t, h) for t, h in candidates if t in chosen],
    )
