"""Factories of studies, trials and metrics, written through the repository like the driver."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from studies import repository as repo
from studies.db import Study, Trial, make_engine, session_factory
from studies.migrations import upgrade
from studies.spec import StudySpec, validate_spec

SPEC_DATA: dict[str, Any] = {
    "name": "quickstart",
    "task": {"dataset": "mnist1d", "model": "mlp", "epochs": 3},
    "regularizer": {"family": "pwd", "lambda": 1e-3},
    "space": {
        "p": {"type": "float", "low": 0.4, "high": 2.0},
        "lambda": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
        "schedule": {"type": "categorical", "choices": ["full", "early"]},
        "until": {"type": "float", "low": 0.1, "high": 0.6, "when": {"schedule": "early"}},
    },
    "objectives": [{"metric": "val_acc", "mode": "max"}, {"metric": "sparsity", "mode": "max"}],
    "search": {"n_trials": 4},
    "seeds": 2,
}
ALL_TABLES = "dl_metric, dl_trial, dl_study"


def spec_data(**overrides: Any) -> dict[str, Any]:
    """A valid spec as plain JSON data, with top-level keys replaced by `overrides`."""
    return {**copy.deepcopy(SPEC_DATA), **overrides}


def training_spec_data(*, n_trials: int, epochs: int, width: int = 32, **sections: Any) -> dict:
    """A small study that trains for real (pWD MLP on MNIST-1D, early or full decay) as JSON
    data; a dict in `sections` updates that section, anything else replaces it."""
    spec: dict[str, Any] = {
        "name": "small",
        "task": {
            "dataset": "mnist1d",
            "model": "mlp",
            "model_options": {"width": width},
            "epochs": epochs,
            "batch_size": 128,
            "lr": 3e-3,
        },
        "regularizer": {"family": "pwd"},
        "space": {
            "p": {"type": "float", "low": 0.5, "high": 2.0},
            "lambda": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "schedule": {"type": "categorical", "choices": ["full", "early"]},
            "until": {"type": "float", "low": 0.2, "high": 0.6, "when": {"schedule": "early"}},
        },
        "objectives": [{"metric": "val_acc", "mode": "max"}],
        "search": {"n_trials": n_trials, "max_concurrent": 2, "seed": 0},
    }
    for key, value in sections.items():
        spec[key] = {**spec[key], **value} if isinstance(value, dict) and key in spec else value
    return spec


def make_spec(**overrides: Any) -> StudySpec:
    return validate_spec(spec_data(**overrides))


def migrated_engine(url: str) -> Engine:
    """An engine on a migrated database holding no decaylab rows."""
    upgrade(url)
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {ALL_TABLES}"))
    return engine


@contextmanager
def database(url: str) -> Iterator[sessionmaker[Session]]:
    engine = migrated_engine(url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def make_study(session: Session, *, status: str | None = None, **spec_overrides: Any) -> Study:
    """A study of `make_spec(**spec_overrides)`, moved to `status` through its transitions."""
    study = repo.create_study(session=session, spec=make_spec(**spec_overrides))
    path = {"running": ["running"], "succeeded": ["running", "succeeded"]}.get(status or "", [])
    if status in ("failed", "cancelled"):
        path = ["running", status]
    for step in path:
        repo.set_study_status(session=session, study_id=study.id, status=step)
    return study


def make_trial(
    session: Session,
    study_id: str,
    *,
    state: str = "completed",
    family: str = "pwd",
    p: float | None = 1.0,
    lam: float | None = 1e-3,
    schedule: str = "full",
    until: float | None = None,
    lr: float = 1e-3,
    seed: int = 0,
    replicate: int = 0,
    config_id: int | None = None,
    final: Mapping[str, float | None] | None = None,
    curves: Mapping[str, Sequence[float | None]] | None = None,
    params: Mapping[str, Any] | None = None,
) -> Trial:
    """A trial with per-epoch `curves` (epochs 1, 2, ...) ending in `state` with `final`."""
    config = {"family": family, "p": p, "lam": lam, "schedule": schedule, "until": until,
              "lr": lr, "seed": seed}  # fmt: skip
    if params is None:
        params = {"p": p, "lambda": lam, "schedule": schedule}
    trial = repo.start_trial(
        session=session,
        study_id=study_id,
        config=config,
        params=params,
        replicate=replicate,
        config_id=config_id,
    )
    for epoch, values in enumerate(zip(*(curves or {}).values(), strict=True), start=1):
        metrics = dict(zip((curves or {}).keys(), values, strict=True))
        repo.record_metrics(session=session, trial_id=trial.id, epoch=epoch, metrics=metrics)
    if state != "running":
        repo.finish_trial(session=session, trial_id=trial.id, state=state, final_metrics=final)
    return trial
