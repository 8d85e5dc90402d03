"""Every query and write of the decaylab tables, as keyword-only functions.

Functions flush but never commit: the caller owns the transaction
(`with factory.begin() as session: ...`), so a callback can write a trial's state and its
metrics atomically. Writes a driver may repeat after a crash (start_trial, record_metrics) are
idempotent, using the dialect's INSERT ... ON CONFLICT (SQLite and PostgreSQL).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Select,
    case,
    delete,
    func,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from studies.catalog import COLUMN_NAMES, FAMILIES_WITH_LAMBDA, FAMILIES_WITH_P, FINAL_METRICS
from studies.db import (
    FINAL_METRIC_COLUMNS,
    Metric,
    Study,
    Trial,
    new_study_id,
    utcnow,
)
from studies.errors import InvalidQuery, InvalidTransition, StudyNotFound, TrialNotFound
from studies.spec import StudySpec
from studies.states import (
    FINISHED_TRIAL_STATES,
    TERMINAL_STUDY_STATES,
    StudyState,
    TrialState,
    can_move,
)

MAX_PAGE = 1000
# SQL's OFFSET is a 64-bit integer on both backends: a larger one is an overflow, not a page
MAX_OFFSET = 2**63 - 1
# dl_trial.number is an INTEGER column: PostgreSQL refuses to compare it with a larger value
MAX_TRIAL_NUMBER = 2**31 - 1
# every id new_study_id makes (a UUID) matches, and so does any other string of the same
# alphabet and length: an id that cannot exist (NUL, space, 37+ characters) is a bad request,
# a well-formed one that does not exist is "not found"
STUDY_ID_PATTERN = r"^[A-Za-z0-9-]{1,36}$"


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of rows and the number of rows all pages hold."""

    items: list[T]
    total: int


def _finite(value: Any) -> float | None:
    """A metric as stored: a float, or None when missing or not finite."""
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidQuery(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidQuery(f"offset must be between 0 and {MAX_OFFSET}, got {offset}")


def _insert(session: Session, table: Any) -> Any:
    """The dialect's INSERT, which has on_conflict_do_nothing/do_update."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"decaylab supports SQLite and PostgreSQL, not {dialect}")


# ---------------------------------------------------------------- studies


def create_study(*, session: Session, spec: StudySpec) -> Study:
    """Insert a queued study holding the validated spec."""
    study_id = new_study_id()
    study = Study(
        id=study_id,
        name=spec.name,
        spec=spec.to_json_dict(),
        status=StudyState.QUEUED.value,
        optuna_study_name=f"decaylab-{study_id}",
    )
    session.add(study)
    session.flush()
    return study


def get_study(*, session: Session, study_id: str, for_update: bool = False) -> Study:
    """The study with this id; StudyNotFound otherwise."""
    if not re.fullmatch(STUDY_ID_PATTERN, study_id):  # e.g. a NUL, which PostgreSQL refuses
        raise StudyNotFound(study_id)
    study = session.get(Study, study_id, with_for_update=for_update)
    if study is None:
        raise StudyNotFound(study_id)
    return study


def list_studies(
    *, session: Session, status: str | None = None, limit: int = 50, offset: int = 0
) -> Page[Study]:
    """Studies, newest first, optionally of one status."""
    _check_page(limit, offset)
    query = select(Study)
    if status is not None:
        if status not in tuple(StudyState):
            choices = ", ".join(StudyState)
            raise InvalidQuery(f"status: unknown {status!r}; choose one of {choices}")
        query = query.where(Study.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = query.order_by(Study.created_at.desc(), Study.id).limit(limit).offset(offset)
    return Page(list(session.scalars(page)), total)


def set_study_status(
    *,
    session: Session,
    study_id: str,
    status: str,
    error: str | None = None,
    ray_job_id: str | None = None,
) -> Study:
    """Move a study to `status` (InvalidTransition when STUDY_TRANSITIONS forbids it)."""
    study = get_study(session=session, study_id=study_id, for_update=True)
    if status not in tuple(StudyState):
        raise InvalidTransition(f"unknown study status {status!r}")
    if not can_move(study.status, status):
        raise InvalidTransition(f"study {study_id} cannot go from {study.status} to {status}")
    now = utcnow()
    if status in TERMINAL_STUDY_STATES:
        study.finished_at = study.finished_at if status == study.status else now
        study.error = error if error is not None else study.error
    else:  # queued or running again: a resume clears what the last run left
        study.finished_at, study.error = None, None
        if status == StudyState.RUNNING and study.started_at is None:
            study.started_at = now
    if ray_job_id is not None:
        study.ray_job_id = ray_job_id
    study.status = str(status)
    session.flush()
    return study


def delete_study(*, session: Session, study_id: str) -> None:
    """Delete a study with its trials and metrics; a running study must be cancelled first."""
    study = get_study(session=session, study_id=study_id, for_update=True)
    if study.status == StudyState.RUNNING:
        raise InvalidTransition(f"study {study_id} is running: cancel it before deleting it")
    trial_ids = select(Trial.id).where(Trial.study_id == study_id).scalar_subquery()
    # explicit deletes rather than ON DELETE CASCADE alone: correct even on an engine that
    # left SQLite's foreign keys off
    session.execute(delete(Metric).where(Metric.trial_id.in_(trial_ids)))
    session.execute(delete(Trial).where(Trial.study_id == study_id))
    session.delete(study)
    session.flush()


# ---------------------------------------------------------------- trials


def _typed_columns(config: Mapping[str, Any]) -> dict[str, Any]:
    """The core parameters of a resolved trial config, as dl_trial's typed columns.

    p is NULL for families without p and λ for `none`, so SQL groups compare like with like.
    """
    family = config.get("family")
    return {
        "family": family,
        "p": _finite(config.get("p")) if family in FAMILIES_WITH_P else None,
        "lam": _finite(config.get("lam")) if family in FAMILIES_WITH_LAMBDA else None,
        "schedule": config.get("schedule"),
        "until": _finite(config.get("until")),
        "start": _finite(config.get("start")),
        "lr": _finite(config.get("lr")),
        "seed": config.get("seed"),
    }


def start_trial(
    *,
    session: Session,
    study_id: str,
    config: Mapping[str, Any],
    params: Mapping[str, Any] | None = None,
    number: int | None = None,
    tune_trial_id: str | None = None,
    replicate: int = 0,
    config_id: int | None = None,
    optuna_trial_number: int | None = None,
    node: str | None = None,
    decayed_param_count: int | None = None,
    non_decayed_param_count: int | None = None,
) -> Trial:
    """Insert a running trial, or return the one this study already has for it.

    The same trial is the same `tune_trial_id` when given, else the same `number`; a new
    trial without a number gets the study's next one (0, 1, ...).

    Args:
        config: the resolved flat config (search_space.resolve_config); the typed columns
            come from it.
        params: the searched parameters only, under the spec's names.
    """
    get_study(session=session, study_id=study_id)
    existing = _existing_trial(session, study_id, number, tune_trial_id)
    if existing is not None:
        return existing
    if number is None:
        last = session.scalar(select(func.max(Trial.number)).where(Trial.study_id == study_id))
        number = 0 if last is None else last + 1
    values = {
        "study_id": study_id,
        "number": number,
        "tune_trial_id": tune_trial_id,
        "optuna_trial_number": optuna_trial_number,
        "replicate": replicate,
        "config_id": config_id,
        "state": TrialState.RUNNING.value,
        "params": dict(params or {}),
        "config": dict(config),
        "node": node,
        "decayed_param_count": decayed_param_count,
        "non_decayed_param_count": non_decayed_param_count,
        **_typed_columns(config),
    }
    insert = _insert(session, Trial).values(**values)
    session.execute(insert.on_conflict_do_nothing(index_elements=["study_id", "number"]))
    return get_trial(session=session, study_id=study_id, number=number)


def _existing_trial(
    session: Session, study_id: str, number: int | None, tune_trial_id: str | None
) -> Trial | None:
    if tune_trial_id is not None:
        key: ColumnElement[bool] = Trial.tune_trial_id == tune_trial_id
    elif number is not None:
        key = Trial.number == number
    else:
        return None
    query = select(Trial).where(Trial.study_id == study_id, key)
    return session.scalars(query.execution_options(populate_existing=True)).one_or_none()


def update_trial_info(
    *,
    session: Session,
    trial_id: int,
    node: str | None = None,
    decayed_param_count: int | None = None,
    non_decayed_param_count: int | None = None,
    provenance: Mapping[str, Any] | None = None,
    weight_histogram: Mapping[str, Any] | None = None,
) -> Trial:
    """Fill in what a running trial learns (node, counts, provenance, |w| histogram)."""
    trial = session.get(Trial, trial_id)
    if trial is None:
        raise TrialNotFound(trial_id)
    updates = {
        "node": node,
        "decayed_param_count": decayed_param_count,
        "non_decayed_param_count": non_decayed_param_count,
        "provenance": dict(provenance) if provenance is not None else None,
        "weight_histogram": dict(weight_histogram) if weight_histogram is not None else None,
    }
    for name, value in updates.items():
        if value is not None:
            setattr(trial, name, value)
    session.flush()
    return trial


def get_trial(*, session: Session, study_id: str, number: int) -> Trial:
    """The trial `number` of a study; TrialNotFound otherwise."""
    if not 0 <= number <= MAX_TRIAL_NUMBER:  # no such row, and PostgreSQL would overflow
        raise TrialNotFound(f"{number} of study {study_id}")
    query = select(Trial).where(Trial.study_id == study_id, Trial.number == number)
    trial = session.scalars(query.execution_options(populate_existing=True)).one_or_none()
    if trial is None:
        raise TrialNotFound(f"{number} of study {study_id}")
    return trial


def finish_trial(
    *,
    session: Session,
    trial_id: int,
    state: str,
    final_metrics: Mapping[str, Any] | None = None,
    error: str | None = None,
    diverged_epoch: int | None = None,
    finished_at: datetime | None = None,
) -> Trial:
    """End a running trial in `state` with its final metrics; repeating the same end is a no-op."""
    if state not in FINISHED_TRIAL_STATES:
        raise InvalidTransition(f"{state!r} is not a finished trial state {FINISHED_TRIAL_STATES}")
    trial = session.get(Trial, trial_id, with_for_update=True, populate_existing=True)
    if trial is None:
        raise TrialNotFound(trial_id)
    if trial.state != TrialState.RUNNING:
        if trial.state == state:
            return trial
        raise InvalidTransition(f"trial {trial_id} is {trial.state}, it cannot become {state}")
    metrics = {name: _finite(value) for name, value in (final_metrics or {}).items()}
    for column in FINAL_METRIC_COLUMNS:
        if column in metrics:
            setattr(trial, column, metrics[column])
    trial.final_metrics = {**trial.final_metrics, **metrics}
    val_acc = metrics.get("val_acc")
    if val_acc is not None and (trial.best_val_acc is None or val_acc > trial.best_val_acc):
        trial.best_val_acc = val_acc
    trial.state, trial.error, trial.diverged_epoch = str(state), error, diverged_epoch
    trial.finished_at = finished_at or utcnow()
    session.flush()
    return trial


def mark_running_trials(
    *, session: Session, study_id: str, state: str, error: str | None = None
) -> int:
    """End every still-running trial of a study (a lost driver, a cancel); returns how many."""
    if state not in FINISHED_TRIAL_STATES:
        raise InvalidTransition(f"{state!r} is not a finished trial state {FINISHED_TRIAL_STATES}")
    result = session.execute(
        update(Trial)
        .where(Trial.study_id == study_id, Trial.state == TrialState.RUNNING)
        .values(state=str(state), error=error, finished_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    session.expire_all()
    return cast(CursorResult[Any], result).rowcount


# the Optuna user attr of a suggestion never trained: it repeats an earlier configuration
DUPLICATE_ATTR = "duplicate_of"


# databases whose Optuna tables were seen: they are never dropped, so each is looked up once
# rather than on every GET of a study (a watching CLI polls it)
_OPTUNA_TABLES_SEEN: set[str] = set()


def count_duplicates(*, session: Session, optuna_study_name: str) -> int:
    """Suggestions of a study's search that were not trained again (read from Optuna's tables,
    which exist once the service or a driver has started)."""
    bind = session.get_bind()
    database = bind.engine.url.render_as_string(hide_password=True)
    if database not in _OPTUNA_TABLES_SEEN:
        if not inspect(bind).has_table("trial_user_attributes"):
            return 0
        _OPTUNA_TABLES_SEEN.add(database)
    query = text(
        "SELECT count(*) FROM trial_user_attributes a"
        " JOIN trials t ON t.trial_id = a.trial_id"
        " JOIN studies s ON s.study_id = t.study_id"
        " WHERE s.study_name = :name AND a.key = :key"
    )
    found = session.scalar(query, {"name": optuna_study_name, "key": DUPLICATE_ATTR})
    return int(found or 0)


def count_trials_by_state(*, session: Session, study_id: str) -> dict[str, int]:
    """How many trials of a study are in each state (every state present, zeros included)."""
    rows = session.execute(
        select(Trial.state, func.count()).where(Trial.study_id == study_id).group_by(Trial.state)
    )
    counts = {str(state): 0 for state in TrialState}
    counts.update({state: count for state, count in rows})
    return counts


# ---------------------------------------------------------------- trial queries

# numeric columns a trial list can filter by range and sort on, under API and column names
NUMERIC_FIELDS: dict[str, Any] = {
    "number": Trial.number,
    "replicate": Trial.replicate,
    "config_id": Trial.config_id,
    "p": Trial.p,
    "until": Trial.until,
    "lr": Trial.lr,
    "seed": Trial.seed,
    "epochs_done": Trial.epochs_done,
    "best_val_acc": Trial.best_val_acc,
    "diverged_epoch": Trial.diverged_epoch,
    **{name: getattr(Trial, name) for name in FINAL_METRIC_COLUMNS},
    # a renamed parameter answers to its API name and to its column's
    **{name: getattr(Trial, column) for name, column in COLUMN_NAMES.items()},
    **{column: getattr(Trial, column) for column in COLUMN_NAMES.values()},
}
CATEGORY_FIELDS: dict[str, Any] = {
    "state": Trial.state,
    "family": Trial.family,
    "schedule": Trial.schedule,
    "node": Trial.node,
}
TIME_FIELDS: dict[str, Any] = {"started_at": Trial.started_at, "finished_at": Trial.finished_at}


def check_numeric(name: str, parameter: str) -> None:
    """InvalidQuery naming `parameter` unless `name` is a numeric field or a final metric."""
    if name in NUMERIC_FIELDS or name in FINAL_METRICS:
        return
    if name in CATEGORY_FIELDS or name in TIME_FIELDS:
        hint = "a final metric or a numeric parameter"
        raise InvalidQuery(f"{parameter}: {name!r} is not a number; use {hint}")
    metrics = ", ".join(FINAL_METRICS)
    params = ", ".join(n for n in NUMERIC_FIELDS if n not in FINAL_METRICS)
    hint = f"a final metric ({metrics}) or a numeric parameter ({params})"
    raise InvalidQuery(f"{parameter}: unknown field {name!r}; use {hint}")


def _numeric(name: str, parameter: str) -> ColumnElement[Any]:
    """A typed column, or a final metric read from the final_metrics JSON."""
    check_numeric(name, parameter)
    if name in NUMERIC_FIELDS:
        return cast(ColumnElement[Any], NUMERIC_FIELDS[name])
    return cast(ColumnElement[Any], Trial.final_metrics[name].as_float())


def _filtered(
    query: Select[Any],
    ranges: Mapping[str, tuple[float | None, float | None]],
    one_of: Mapping[str, Sequence[Any]],
) -> Select[Any]:
    for name, (low, high) in ranges.items():
        column = _numeric(name, f"{name}_min/_max")
        query = query.where(column >= low) if low is not None else query
        query = query.where(column <= high) if high is not None else query
    for name, values in one_of.items():
        if name not in CATEGORY_FIELDS:
            raise InvalidQuery(
                f"{name}: cannot filter trials by it; use {', '.join(CATEGORY_FIELDS)}"
            )
        query = query.where(CATEGORY_FIELDS[name].in_(list(values)))
    return query


def list_trials(
    *,
    session: Session,
    study_id: str,
    states: Sequence[str] | None = None,
    ranges: Mapping[str, tuple[float | None, float | None]] | None = None,
    one_of: Mapping[str, Sequence[Any]] | None = None,
    sort_by: str = "number",
    descending: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> Page[Trial]:
    """A page of a study's trials, filtered and sorted; rows missing the sort key come last.

    Args:
        ranges: {field: (low, high)} inclusive, either end None; fields are the typed
            parameters (p, lambda, until, from, lr, seed, ...) and any final metric.
        one_of: {state|family|schedule|node: allowed values}.
        sort_by: any range field, started_at or finished_at.
    """
    _check_page(limit, offset)
    get_study(session=session, study_id=study_id)
    filters = dict(one_of or {})
    if states is not None:
        filters["state"] = states
    numbered = select(Trial.number).where(Trial.study_id == study_id)
    query = _filtered(numbered, ranges or {}, filters)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    key = TIME_FIELDS[sort_by] if sort_by in TIME_FIELDS else _numeric(sort_by, "sort")
    ordering = (key.is_(None), key.desc() if descending else key.asc(), Trial.number)
    # a deferred join: sort the narrow entries of ix_dl_trial_covering, then read only the
    # page's wide rows (sorting whole rows costs ~10x more on a study of 10,000 trials)
    numbers = query.order_by(*ordering).limit(limit).offset(offset).subquery()
    page = select(Trial).where(Trial.study_id == study_id, Trial.number.in_(select(numbers)))
    return Page(list(session.scalars(page.order_by(*ordering))), total)


# ---------------------------------------------------------------- metrics


def _touch_trial(session: Session, trial_id: int, epoch: int, val_acc: float | None) -> int:
    """Advance epochs_done and best_val_acc of a trial; returns 0 when it does not exist."""
    values: dict[str, Any] = {
        "epochs_done": case((Trial.epochs_done < epoch, epoch), else_=Trial.epochs_done)
    }
    if val_acc is not None:
        better = or_(Trial.best_val_acc.is_(None), Trial.best_val_acc < val_acc)
        values["best_val_acc"] = case((better, val_acc), else_=Trial.best_val_acc)
    result = session.execute(
        update(Trial).where(Trial.id == trial_id).values(**values),
        execution_options={"synchronize_session": False},
    )
    return cast(CursorResult[Any], result).rowcount


def _upsert_metrics(session: Session, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    insert = _insert(session, Metric.__table__)
    upsert = insert.on_conflict_do_update(
        index_elements=["trial_id", "name", "epoch"], set_={"value": insert.excluded.value}
    )
    session.execute(upsert, rows)  # one executemany


def record_metrics(
    *, session: Session, trial_id: int, epoch: int, metrics: Mapping[str, Any]
) -> int:
    """Store one epoch's metrics of a trial; re-delivering the epoch overwrites, never adds.

    Epoch 0 is before training, epoch k after k epochs. Non-finite values are stored as NULL.
    Returns the number of metric rows written.
    """
    rows = [
        {"trial_id": trial_id, "epoch": epoch, "name": name, "value": _finite(value)}
        for name, value in metrics.items()
    ]
    if _touch_trial(session, trial_id, epoch, _finite(metrics.get("val_acc"))) == 0:
        raise TrialNotFound(trial_id)
    _upsert_metrics(session, rows)
    session.expire_all()  # epochs_done changed underneath loaded trials
    return len(rows)


def trial_metrics(
    *, session: Session, trial_id: int, names: Sequence[str] | None = None
) -> dict[str, list[tuple[int, float | None]]]:
    """A trial's metrics over time: {name: [(epoch, value), ...]} in epoch order."""
    if session.get(Trial, trial_id) is None:
        raise TrialNotFound(trial_id)
    query = select(Metric.name, Metric.epoch, Metric.value).where(Metric.trial_id == trial_id)
    if names is not None:
        query = query.where(Metric.name.in_(list(names)))
    curves: dict[str, list[tuple[int, float | None]]] = {}
    for name, epoch, value in session.execute(query.order_by(Metric.name, Metric.epoch)):
        curves.setdefault(name, []).append((epoch, value))
    return curves


# ---------------------------------------------------------------- service queries


def set_ray_job_id(*, session: Session, study_id: str, ray_job_id: str | None) -> Study:
    """Record the Ray job running a study, leaving its status to the driver (None: it waits
    for a slot to start)."""
    study = get_study(session=session, study_id=study_id, for_update=True)
    study.ray_job_id = ray_job_id
    session.flush()
    return study


def trial_metric(trial: Trial, name: str) -> float | None:
    """A final metric of a loaded trial: its typed column, else its final_metrics entry."""
    if name in FINAL_METRIC_COLUMNS:
        return cast(float | None, getattr(trial, name))
    return _finite(trial.final_metrics.get(name))


def best_trials(
    *, session: Session, study_id: str, objectives: Sequence[tuple[str, str]]
) -> dict[str, Trial | None]:
    """Per (metric, "max"|"min"), the best completed trial reporting it (lowest number on ties)."""
    get_study(session=session, study_id=study_id)
    best: dict[str, Trial | None] = {}
    for metric, mode in objectives:
        key = _numeric(metric, "metric")
        number = (  # found in ix_dl_trial_covering; only the winner's row is read
            select(Trial.number)
            .where(
                Trial.study_id == study_id, Trial.state == TrialState.COMPLETED, key.is_not(None)
            )
            .order_by(key.desc() if mode == "max" else key.asc(), Trial.number)
            .limit(1)
            .scalar_subquery()
        )
        query = select(Trial).where(Trial.study_id == study_id, Trial.number == number)
        best[metric] = session.scalars(query).first()
    return best


def trial_columns(
    *,
    session: Session,
    study_id: str,
    fields: Sequence[str],
    states: Sequence[str] | None = (TrialState.COMPLETED,),
    categories: Collection[str] = (),
) -> list[tuple[Any, ...]]:
    """(number, *fields) for each trial of a study in `states`, in number order.

    Args:
        fields: numeric fields or final metrics (as list_trials ranges); InvalidQuery for
            any other, so a caller computing with numbers never gets text.
        categories: those of `fields` that may also be a category field (family, ...).
    """
    get_study(session=session, study_id=study_id)
    columns = [
        CATEGORY_FIELDS[f] if f in categories and f in CATEGORY_FIELDS else _numeric(f, f)
        for f in fields
    ]
    query = select(Trial.number, *columns).where(Trial.study_id == study_id)
    if states is not None:
        query = query.where(Trial.state.in_(list(states)))
    session.flush()  # the Core connection below does not autoflush
    # plain Core rows fetched at once: no ORM bookkeeping, no driver round per row
    rows = session.connection().execute(query.order_by(Trial.number)).all()
    return [tuple(row) for row in rows]


def trials_by_numbers(*, session: Session, study_id: str, numbers: Iterable[int]) -> list[Trial]:
    """The trials of a study with these numbers, in number order."""
    query = select(Trial).where(Trial.study_id == study_id, Trial.number.in_(list(numbers)))
    return list(session.scalars(query.order_by(Trial.number)))


def iter_trial_rows(
    *, session: Session, study_id: str, columns: Sequence[str], batch_size: int = 2000
) -> Iterator[list[tuple[Any, ...]]]:
    """Columns (dl_trial attribute names) of a study's trials in number order, in batches.

    Plain rows, not ORM objects: an export of 10,000 trials should not build 10,000 of them.
    """
    unknown = [name for name in columns if name not in Trial.__table__.columns]
    if unknown:
        raise InvalidQuery(f"dl_trial has no column {unknown[0]!r}")
    query = (
        select(*(Trial.__table__.columns[name] for name in columns))
        .where(Trial.study_id == study_id)
        .order_by(Trial.number)
        .execution_options(yield_per=batch_size)
    )
    for partition in session.execute(query).partitions():
        yield [tuple(row) for row in partition]


def iter_epoch_metrics(
    *, session: Session, study_id: str, batch_size: int = 10_000
) -> Iterator[list[tuple[int, int, str, float | None]]]:
    """A study's metrics as (trial number, epoch, name, value), ordered, in batches."""
    query = (
        select(Trial.number, Metric.epoch, Metric.name, Metric.value)
        .join(Trial, Trial.id == Metric.trial_id)
        .where(Trial.study_id == study_id)
        .order_by(Trial.number, Metric.epoch, Metric.name)
        .execution_options(yield_per=batch_size)
    )
    for partition in session.execute(query).partitions():
        yield [(number, epoch, name, value) for number, epoch, name, value in partition]
