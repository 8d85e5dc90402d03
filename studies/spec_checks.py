"""The rules of a StudySpec that span several sections: what may be searched, and how.

Each check takes the already field-validated spec and yields (loc, message, value) problems; the
StudySpec turns them into one ValidationError, so every message names the field to change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from studies.catalog import (
    DECAY_SCHEDULES,
    FAMILIES,
    FAMILIES_WITH_LAMBDA,
    FAMILIES_WITH_P,
)
from studies.model_catalog import model_option_problems

if TYPE_CHECKING:
    from studies.spec import StudySpec

MAX_GRID_POINTS = 100_000  # the grid sampler holds every point in memory
Loc = tuple[str | int, ...]
Problem = tuple[Loc, str, Any]
ValueCheck = Callable[[Any], str | None]


def _number(desc: str, ok: Callable[[float], bool], *, integer: bool = False) -> ValueCheck:
    def check(value: Any) -> str | None:
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not is_number or (integer and not float(value).is_integer()):
            return f"must be {'an integer' if integer else 'a number'} {desc}, got {value!r}"
        return None if ok(value) else f"must be {desc}, got {value!r}"

    return check


def _name_in(names: tuple[str, ...]) -> ValueCheck:
    def check(value: Any) -> str | None:
        return None if value in names else f"must be one of {', '.join(names)}, got {value!r}"

    return check


@dataclass(frozen=True)
class Searchable:
    """A parameter the space may search: the ParamSpec types it allows and its valid values."""

    types: tuple[str, ...]
    check: ValueCheck


_NUMERIC = ("float", "categorical")
_FRACTION = _number("in (0, 1)", lambda v: 0 < v < 1)
SEARCHABLE: dict[str, Searchable] = {
    "p": Searchable(_NUMERIC, _number("> 0", lambda v: v > 0)),
    "lambda": Searchable(_NUMERIC, _number(">= 0", lambda v: v >= 0)),
    "lr": Searchable(_NUMERIC, _number("> 0", lambda v: v > 0)),
    "schedule": Searchable(("categorical",), _name_in(DECAY_SCHEDULES)),
    "until": Searchable(_NUMERIC, _FRACTION),
    "from": Searchable(_NUMERIC, _FRACTION),
    "family": Searchable(("categorical",), _name_in(FAMILIES)),
    "momentum": Searchable(_NUMERIC, _number("in [0, 1)", lambda v: 0 <= v < 1)),
    "batch_size": Searchable(
        ("int", "categorical"), _number("in [1, 2**20]", lambda v: 1 <= v <= 2**20, integer=True)
    ),
    "warmup": Searchable(_NUMERIC, _FRACTION),
}


def _space_names(spec: StudySpec) -> Iterator[Problem]:
    for name, param in spec.space.items():
        rule = SEARCHABLE.get(name)
        if rule is None:
            yield (
                ("space", name),
                f"{name!r} cannot be searched; searchable: {', '.join(SEARCHABLE)}",
                name,
            )
        elif param.type not in rule.types:
            allowed = " or ".join(rule.types)
            yield ("space", name, "type"), f"{name} must be searched as {allowed}", param.type


def _space_values(spec: StudySpec) -> Iterator[Problem]:
    for name, param in spec.space.items():
        rule = SEARCHABLE.get(name)
        if rule is None or param.type not in rule.types:
            continue
        located: list[tuple[Loc, Any]]
        if param.choices is not None:
            located = [(("space", name, "choices", i), v) for i, v in enumerate(param.choices)]
        else:
            located = [(("space", name, end), getattr(param, end)) for end in ("low", "high")]
        for loc, value in located:
            message = rule.check(value)
            if message:
                yield loc, f"{name} {message}", value


def _conditions(spec: StudySpec) -> Iterator[Problem]:
    for name, param in spec.space.items():
        for key, values in param.condition().items():
            loc = ("space", name, "when", key)
            parent = spec.space.get(key)
            if key == name or parent is None or not parent.is_categorical:
                yield (
                    loc,
                    f"when may only name another categorical parameter of the space, not {key!r}",
                    key,
                )
                continue
            choices = set(parent.values())
            for value in values:
                if value not in choices:
                    yield loc, f"{value!r} is not a choice of {key}", value
    try:
        spec.suggestion_order()
    except ValueError as error:
        yield ("space",), str(error), None


def _condition_values(spec: StudySpec, name: str, key: str) -> list[Any]:
    """The values of `key` under which the searched `name` is suggested."""
    return spec.space[name].condition().get(key, spec.possible(key))


def _schedule_fractions(spec: StudySpec) -> Iterator[Problem]:
    schedules = spec.possible("schedule")
    for kind, name in (("early", "until"), ("late", "from")):
        fixed = spec.regularizer.until if name == "until" else spec.regularizer.start
        if kind not in schedules:
            message = f"{name} only applies to schedule {kind!r}, which this study never uses"
            if name in spec.space:
                yield ("space", name), message, None
            if fixed is not None:
                yield ("regularizer", name), message, fixed
        elif name in spec.space:
            if any(v != kind for v in _condition_values(spec, name, "schedule")):
                message = (
                    f"{name} only applies to schedule {kind!r}: add when: {{schedule: {kind}}}"
                )
                yield ("space", name, "when"), message, None
        elif fixed is None:
            message = f"schedule {kind!r} needs {name}: set regularizer.{name} or search it"
            yield ("regularizer", name), message, None


def _families(spec: StudySpec) -> Iterator[Problem]:
    families = spec.possible("family")
    with_p = ", ".join(FAMILIES_WITH_P)
    if not any(f in FAMILIES_WITH_P for f in families):
        message = f"p only applies to the families {with_p}; this study uses {families}"
        if "p" in spec.space:
            yield ("space", "p"), message, None
        elif spec.regularizer.p != type(spec.regularizer).model_fields["p"].default:
            # compared with the default, not model_fields_set: a stored spec spells out every field
            yield ("regularizer", "p"), message, spec.regularizer.p
    elif "p" in spec.space and any(
        f not in FAMILIES_WITH_P for f in _condition_values(spec, "p", "family")
    ):
        message = f"p only applies to {with_p}: add when: {{family: [{with_p}]}}"
        yield ("space", "p", "when"), message, None
    if not any(f in FAMILIES_WITH_LAMBDA for f in families):
        if "lambda" in spec.space:
            yield ("space", "lambda"), f"lambda has no effect with family {families}", None
        elif spec.regularizer.lam > 0:
            message = "lambda is set but family 'none' never decays: choose a family"
            yield ("regularizer", "family"), message, "none"


def _optimizer_settings(spec: StudySpec) -> Iterator[Problem]:
    task, space = spec.task, spec.space
    if task.optimizer != "sgd":
        if "momentum" in space:
            yield ("space", "momentum"), "momentum only applies to optimizer sgd", None
        if task.nesterov:
            yield ("task", "nesterov"), "nesterov only applies to optimizer sgd", True
    elif task.nesterov:
        values = space["momentum"].values() if "momentum" in space else [task.momentum]
        lowest = min((v for v in values if isinstance(v, int | float)), default=None)
        if lowest == 0:
            loc = ("space", "momentum") if "momentum" in space else ("task", "momentum")
            yield loc, "nesterov needs momentum > 0", lowest
    if task.lr_schedule != "warmup_cosine":
        message = "warmup only applies to lr_schedule warmup_cosine"
        if "warmup" in space:
            yield ("space", "warmup"), message, None
        elif task.warmup > 0:
            yield ("task", "warmup"), message, task.warmup
    elif "warmup" not in space and task.warmup == 0:
        yield ("task", "warmup"), "lr_schedule warmup_cosine needs warmup in (0, 1)", 0.0


def _model(spec: StudySpec) -> Iterator[Problem]:
    task = spec.task
    yield from model_option_problems(task.model, task.model_options, task.dataset)


def _objectives(spec: StudySpec) -> Iterator[Problem]:
    seen: set[str] = set()
    for i, objective in enumerate(spec.objectives):
        if objective.metric in seen:
            message = f"objective {objective.metric!r} is listed twice"
            yield ("objectives", i, "metric"), message, objective.metric
        seen.add(objective.metric)


def _scheduler(spec: StudySpec) -> Iterator[Problem]:
    grace = spec.search.scheduler.grace_period
    loc = ("search", "scheduler", "grace_period")
    if grace == "switch" and spec.switch_epoch() is None:
        message = "'switch' needs an early or late decay schedule; give a number of epochs"
        yield loc, message, grace
    elif isinstance(grace, int) and grace > spec.task.epochs:
        yield loc, f"grace_period {grace} is longer than task.epochs {spec.task.epochs}", grace


def _sampler(spec: StudySpec) -> Iterator[Problem]:
    sampler = spec.sampler_name
    if sampler == "cmaes" and spec.is_multi_objective:
        message = "cmaes optimizes a single objective; use nsga2 or tpe"
        yield ("search", "sampler"), message, sampler
    if sampler in ("cmaes", "qmc"):
        # Optuna would silently sample these at random instead: say so before any trial runs
        for name, param in spec.space.items():
            if param.is_categorical:
                message = f"{sampler} samples only float and int ranges; use tpe or a range"
                yield ("space", name, "type"), message, param.type
            elif param.when:
                message = f"{sampler} cannot sample conditional parameters; use tpe"
                yield ("space", name, "when"), message, None
    if sampler == "grid":
        yield from _grid(spec)


def _grid(spec: StudySpec) -> Iterator[Problem]:
    counts = [param.grid_count() for param in spec.space.values()]
    for (name, _), count in zip(spec.space.items(), counts, strict=True):
        if count is None:
            message = "the grid sampler needs a step or categorical choices"
            yield ("space", name, "step"), message, None
    if all(c is not None for c in counts):
        size = math.prod(c for c in counts if c is not None)
        if size > MAX_GRID_POINTS:
            message = f"the grid has more than {MAX_GRID_POINTS:,} points: use larger steps"
            yield ("search", "sampler"), message, "grid"
        elif spec.search.n_trials > size:
            message = f"n_trials {spec.search.n_trials} is more than the grid's {size} points"
            yield ("search", "n_trials"), message, spec.search.n_trials


# the relations below do arithmetic on the values, so they run only once the values are valid
_VALUE_CHECKS = (_space_names, _space_values)
_RELATION_CHECKS = (
    _model,
    _conditions,
    _schedule_fractions,
    _families,
    _optimizer_settings,
    _objectives,
    _scheduler,
    _sampler,
)


def find_problems(spec: StudySpec) -> list[Problem]:
    """Every cross-section problem of `spec`, each with the loc of the field to change."""
    problems = [problem for check in _VALUE_CHECKS for problem in check(spec)]
    if problems:
        return problems
    return [problem for check in _RELATION_CHECKS for problem in check(spec)]
