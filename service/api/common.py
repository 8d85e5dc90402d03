"""What several routers read from a stored study: its objectives, budget and progress."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from service.schemas import BestValue, Progress, StudyDetail, StudyOut
from studies import repository
from studies.catalog import FINAL_METRICS
from studies.db import FINISHED_TRIAL_STATES, Study
from studies.errors import InvalidQuery


def objectives(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(metric, mode) of each objective of a stored spec (stored validated, modes filled in)."""
    return [(o["metric"], o["mode"]) for o in spec.get("objectives", [])]


def budget(spec: dict[str, Any]) -> int:
    """Training runs the study asks for: n_trials × seeds."""
    return int(spec["search"]["n_trials"]) * int(spec.get("seeds", 1))


def metric_mode(metric: str, mode: str | None, parameter: str) -> str:
    """An explicit mode, else the metric's natural direction; InvalidQuery when it has none."""
    if mode is not None:
        return mode
    natural = FINAL_METRICS.get(metric)
    if natural is None:
        raise InvalidQuery(f"{parameter}: {metric!r} has no natural direction; give one")
    return natural


def study_detail(session: Session, study: Study) -> StudyDetail:
    """A study with its progress and the best value of each objective so far."""
    counts = repository.count_trials_by_state(session=session, study_id=study.id)
    wanted = objectives(study.spec)
    best = repository.best_trials(session=session, study_id=study.id, objectives=wanted)
    values = [
        BestValue(
            metric=metric,
            mode=mode,
            trial=None if (trial := best[metric]) is None else trial.number,
            value=None if trial is None else repository.trial_metric(trial, metric),
        )
        for metric, mode in wanted
    ]
    progress = Progress(
        budget=budget(study.spec),
        finished=sum(counts[state] for state in FINISHED_TRIAL_STATES),
        counts=counts,
    )
    out = StudyOut.model_validate(study)
    return StudyDetail(**out.model_dump(), progress=progress, best=values)
