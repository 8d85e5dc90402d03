"""The study spec: the contract between client, service and workers (docs/architecture.md).

Validation happens in two layers. Each model checks its own fields (types, ranges, names); the
StudySpec then checks what needs several sections at once (conditional parameters, samplers).
Every error carries the `loc` of the field a user has to change, also for the cross-field
checks, which raise a ValidationError built from (loc, message) pairs.

A spec validates its shape only: types are strict (no "30" for 30, no true for 1), every list,
mapping and string is capped, so that checking costs time linear in a body of bounded size. What
a service lets one study ask for (budgets, resources, model size) is its policy, applied at submit
by `studies.policy`; a stored spec is loaded without it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from studies.catalog import (
    BASE_OPTIMIZERS,
    DATASET_NAMES,
    DECAY_SCALES,
    DECAY_SCHEDULES,
    FAMILIES,
    FINAL_METRICS,
    LR_SCHEDULES,
    MODEL_NAMES,
    SAMPLER_NAMES,
    SCHEDULER_NAMES,
    api_name,
)
from studies.errors import InvalidSpec
from studies.schedules import DecaySchedule
from studies.spec_checks import MAX_GRID_POINTS, find_problems

# Caps on the size of a spec: generous for any real study, and what keeps checking one cheap
MAX_SPACE = 16  # searched parameters (ten names are searchable)
MAX_CHOICES = 1000  # choices of one categorical parameter, values of one `when` condition
MAX_WHEN = 8  # conditions of one parameter
MAX_OBJECTIVES = 8
MAX_MODEL_OPTIONS = 32
MAX_TEXT = 200  # characters of a string value
# Integers beyond float64's exact range would overflow the float arithmetic of ranges and grids
MAX_INT = 2**53


def _scalar(value: Any) -> bool | int | float | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT or "\x00" in value:
            raise _invalid(f"must be at most {MAX_TEXT} characters, none of them NUL")
        return value
    if not isinstance(value, int | float):
        raise _invalid(f"must be a valid number, string or boolean, got {type(value).__name__}")
    return _number(value)


def _number(value: Any) -> int | float:
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > MAX_INT:
            raise _invalid(f"an integer must be within ±2**53, got {len(str(value))} digits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _invalid(f"must be a finite number, got {value}")
        return value
    raise _invalid(f"must be a number, got {type(value).__name__}")


def _invalid(message: str) -> PydanticCustomError:
    # the message goes in as context so braces in it are never read as a template
    return PydanticCustomError("invalid_spec", "{reason}", {"reason": message})


Name = Annotated[str, StringConstraints(max_length=MAX_TEXT, pattern=r"^[^\x00]*$")]
# one validator each, so that a wrong value gets one message and not one per member of a union
Scalar = Annotated[
    bool | int | float | str,
    PlainValidator(_scalar, json_schema_input_type=bool | int | float | str),
]
Number = Annotated[int | float, PlainValidator(_number, json_schema_input_type=int | float)]
Loc = tuple[str | int, ...]


def _raise_at(title: str, problems: list[tuple[Loc, str, Any]]) -> NoReturn:
    """Raise one ValidationError whose errors point at the given fields."""
    details = [
        InitErrorDetails(
            type=_invalid(msg),
            loc=loc,
            input=value,
        )
        for loc, msg, value in problems
    ]
    raise ValidationError.from_exception_data(title, details)


def _one_of(names: tuple[str, ...], what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in names:
            raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(names)}")
        return value

    return check


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        allow_inf_nan=False,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class TaskSpec(_Model):
    """What to train and how (everything that is not the regularizer)."""

    dataset: str
    model: str
    model_options: dict[Name, Scalar] = Field(default_factory=dict, max_length=MAX_MODEL_OPTIONS)
    epochs: int = Field(default=10, ge=1, le=10**6)
    batch_size: int = Field(default=128, ge=1, le=2**20)
    optimizer: str = "adam"
    lr: float = Field(default=1e-3, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    nesterov: bool = False
    lr_schedule: str = "constant"
    warmup: float = Field(default=0.0, ge=0, lt=1)
    val_fraction: float = Field(default=0.1, gt=0, lt=1)
    download: bool = False
    augment: bool = False
    amp: bool = Field(default=False, description="bf16 autocast on CUDA (ignored on the CPU)")

    _dataset = field_validator("dataset")(_one_of(DATASET_NAMES, "dataset"))
    _model = field_validator("model")(_one_of(MODEL_NAMES, "model"))
    _optimizer = field_validator("optimizer")(_one_of(BASE_OPTIMIZERS, "optimizer"))
    _lr_schedule = field_validator("lr_schedule")(_one_of(LR_SCHEDULES, "lr_schedule"))


class RegularizerSpec(_Model):
    """The weight-decay family and its fixed values (a searched value overrides its fixed one)."""

    family: str = "none"
    lam: float = Field(default=0.0, ge=0, alias=api_name("lam"))
    p: float = Field(default=2.0, gt=0)
    schedule: str = "full"
    until: float | None = Field(default=None, gt=0, lt=1)
    start: float | None = Field(default=None, gt=0, lt=1, alias=api_name("start"))
    decay_scale: str = "lr"
    decay_all_params: bool = False

    _family = field_validator("family")(_one_of(FAMILIES, "family"))
    _schedule = field_validator("schedule")(_one_of(DECAY_SCHEDULES, "schedule"))
    _decay_scale = field_validator("decay_scale")(_one_of(DECAY_SCALES, "decay_scale"))


class ParamSpec(_Model):
    """One searched parameter: a float or int range, or categorical choices; `when` conditions it.

    Args:
        when: {other categorical parameter: value or list of values}; the parameter is suggested
            only in trials where every named parameter took one of those values.
    """

    type: Literal["float", "int", "categorical"]
    low: Number | None = None
    high: Number | None = None
    log: bool = False
    step: Number | None = None
    choices: Annotated[list[Scalar], Field(max_length=MAX_CHOICES)] | None = None
    when: dict[Name, Scalar | Annotated[list[Scalar], Field(max_length=MAX_CHOICES)]] = Field(
        default_factory=dict, max_length=MAX_WHEN
    )

    @model_validator(mode="after")
    def _check_shape(self) -> ParamSpec:
        problems = list(self._categorical_problems() if self.is_categorical else [])
        problems += [] if self.is_categorical else list(self._range_problems())
        problems += [
            (("when", key), "needs at least one value", value)
            for key, value in self.when.items()
            if value == []
        ]
        if problems:
            _raise_at("ParamSpec", problems)
        return self

    @property
    def is_categorical(self) -> bool:
        return self.type == "categorical"

    def condition(self) -> dict[str, list[Scalar]]:
        """`when` with every value as a list."""
        return {k: v if isinstance(v, list) else [v] for k, v in self.when.items()}

    def values(self) -> list[Scalar]:
        """The values a categorical parameter can take, or the ends of a range."""
        if self.choices is not None:
            return list(self.choices)
        return [v for v in (self.low, self.high) if v is not None]

    def grid_count(self) -> int | None:
        """How many points a grid over this parameter has (None: a continuous range).

        Counted, never built; a count over MAX_GRID_POINTS is returned as MAX_GRID_POINTS + 1.
        """
        if self.choices is not None:
            return len(self.choices)
        step = self.step if self.step is not None else (1 if self.type == "int" else None)
        if step is None or self.low is None or self.high is None:
            return None
        intervals = (self.high - self.low) / step  # inf for a range across the float limits
        if not intervals < MAX_GRID_POINTS:
            return MAX_GRID_POINTS + 1
        # the epsilon keeps (0.5 - 0.1) / 0.1 = 3.9999999999999996 from losing the last point
        return math.floor(intervals + 1e-9) + 1

    def grid_values(self) -> list[Scalar]:
        """The points of a grid over this parameter: its choices, or low, low + step, ... high."""
        if self.choices is not None:
            return list(self.choices)
        count, low, step = self.grid_count(), self.low, self.step or 1
        if count is None or low is None:
            return []
        if self.type == "int":
            return [int(low) + i * int(step) for i in range(count)]
        # rounding keeps 0.1 + 2 * 0.1 on the value Optuna's step check accepts
        return [round(low + i * step, 12) for i in range(count)]

    def _categorical_problems(self) -> Iterator[tuple[Loc, str, Any]]:
        if not self.choices:
            yield ("choices",), "a categorical parameter needs a non-empty list of choices", None
        elif len(set(map(repr, self.choices))) < len(self.choices):
            yield ("choices",), "choices must not repeat", self.choices
        for name in ("low", "high", "step"):
            if getattr(self, name) is not None:
                yield (name,), f"{name} does not apply to a categorical parameter", None
        if self.log:
            yield ("log",), "log does not apply to a categorical parameter", True

    def _range_problems(self) -> Iterator[tuple[Loc, str, Any]]:
        if self.step is not None and self.step <= 0:
            yield ("step",), f"step must be greater than 0, got {self.step}", self.step
        if self.choices is not None:
            yield ("choices",), f"choices only apply to categorical, not {self.type}", self.choices
        if self.low is None or self.high is None:
            for name in ("low", "high"):
                if getattr(self, name) is None:
                    yield (name,), f"a {self.type} parameter needs {name}", None
            return
        if self.low >= self.high:
            yield ("high",), f"high ({self.high}) must be greater than low ({self.low})", self.high
        if self.log and self.low <= 0:
            yield ("low",), f"a log range needs low > 0, got {self.low}", self.low
        if self.log and self.step is not None:
            yield ("step",), "step and log cannot be combined (Optuna forbids it)", self.step
        if self.type == "int":
            for name in ("low", "high", "step"):
                value = getattr(self, name)
                if value is not None and value != int(value):
                    yield (name,), f"an int parameter needs an integer {name}", value


def _default_mode(data: Any) -> Any:
    if isinstance(data, dict) and "mode" not in data and isinstance(data.get("metric"), str):
        mode = FINAL_METRICS.get(data["metric"])
        return {**data, "mode": mode} if mode else data
    return data


class Objective(_Model):
    """A metric the search optimizes; `mode` defaults to the metric's natural direction."""

    metric: str
    mode: Literal["max", "min"]

    _defaults = model_validator(mode="before")(_default_mode)
    _metric = field_validator("metric")(_one_of(tuple(FINAL_METRICS), "metric"))


class SchedulerSpec(_Model):
    """Early stopping: `grace_period` in epochs, or "switch" for the latest decay switch epoch."""

    type: str = "none"
    grace_period: Annotated[int, Field(ge=1)] | Literal["switch"] = 1
    reduction_factor: float = Field(default=3.0, gt=1)

    _type = field_validator("type")(_one_of(SCHEDULER_NAMES, "scheduler"))


class SearchSpec(_Model):
    """How Optuna searches; without a `sampler`, decaylab's default (a stratified start, then
    multivariate TPE: studies.search_space.make_sampler, chosen by bench/search.py).

    Args:
        n_trials: configurations to try; each runs `seeds` times.
        max_failures: retries of a trial whose worker died (Tune's FailureConfig).
    """

    sampler: str | None = None
    n_trials: int = Field(default=20, ge=1)
    max_concurrent: int = Field(default=2, ge=1)
    seed: int = Field(default=0, ge=0, lt=2**32)
    scheduler: SchedulerSpec = SchedulerSpec()
    max_failures: int = Field(default=2, ge=0, le=100)

    @field_validator("sampler")
    @classmethod
    def _sampler(cls, value: str | None) -> str | None:
        return None if value is None else _one_of(SAMPLER_NAMES, "sampler")(value)


class Resources(_Model):
    """Per-trial resources; a GPU may be shared (0.25 = four trials per GPU)."""

    cpu: float = Field(default=1.0, gt=0)
    gpu: float = Field(default=0.0, ge=0)

    @field_validator("cpu", "gpu")
    @classmethod
    def _whole_above_one(cls, value: float) -> float:
        if value > 1 and value != int(value):
            raise ValueError(f"more than one unit must be a whole number, got {value}")
        return value


def _default_objectives() -> list[Objective]:
    return [Objective(metric="val_acc", mode="max")]


class StudySpec(_Model):
    """A whole study: task, regularizer, search space, objectives, budget and resources."""

    schema_version: Literal[1] = 1
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    # no NUL: PostgreSQL cannot store it in text (the name's pattern already excludes it)
    description: str = Field(default="", max_length=2000, pattern=r"^[^\x00]*$")
    task: TaskSpec
    regularizer: RegularizerSpec = RegularizerSpec()
    space: dict[Name, ParamSpec] = Field(default_factory=dict, max_length=MAX_SPACE)
    objectives: list[Objective] = Field(
        default_factory=_default_objectives, min_length=1, max_length=MAX_OBJECTIVES
    )
    search: SearchSpec = SearchSpec()
    seeds: int = Field(default=1, ge=1, le=10**4)
    resources: Resources = Resources()
    priority: int = Field(
        default=0, ge=-1000, le=1000, description="Among waiting studies, higher starts first."
    )

    @model_validator(mode="after")
    def _check_across_sections(self) -> StudySpec:
        problems = find_problems(self)
        if problems:
            _raise_at("StudySpec", problems)
        return self

    @property
    def sampler_name(self) -> str:
        """The sampler named, else "tpe", which the default ends in (for the checks that hold
        for a named sampler: cmaes, qmc and grid have rules of their own)."""
        return self.search.sampler or "tpe"

    @property
    def is_multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def possible(self, name: str) -> list[Scalar]:
        """Values a categorical-like setting (family, schedule) can take in this study."""
        if name in self.space:
            return self.space[name].values()
        fixed = {"family": self.regularizer.family, "schedule": self.regularizer.schedule}
        return [fixed[name]]

    def suggestion_order(self) -> list[str]:
        """Space names ordered so that every `when` names parameters suggested before it.

        Kahn's topological sort in rounds, linear in the number of conditions; within a round
        the space's own order.
        """
        waiting = {
            name: {k for k in param.when if k in self.space and k != name}
            for name, param in self.space.items()
        }
        children: dict[str, list[str]] = {name: [] for name in self.space}
        for name, parents in waiting.items():
            for parent in parents:
                children[parent].append(name)
        position = {name: i for i, name in enumerate(self.space)}
        ready = [name for name, parents in waiting.items() if not parents]
        order: list[str] = []
        while ready:
            order += ready
            unlocked = []
            for name in ready:
                for child in children[name]:
                    waiting[child].discard(name)
                    if not waiting[child]:
                        unlocked.append(child)
            ready = sorted(unlocked, key=position.__getitem__)
        if len(order) < len(self.space):
            cycle = [name for name in self.space if name not in order]
            raise ValueError(f"conditions form a cycle among {', '.join(cycle)}")
        return order

    def switch_epoch(self) -> int | None:
        """The latest epoch at which any trial's decay schedule can switch (None: never)."""
        epochs: list[int] = []
        for kind, name, fixed in (
            ("early", "until", self.regularizer.until),
            ("late", "from", self.regularizer.start),
        ):
            if kind not in self.possible("schedule"):
                continue
            searched = self.space[name].values() if name in self.space else []
            fractions = [float(v) for v in searched if not isinstance(v, str)]
            for fraction in fractions + ([fixed] if fixed is not None else []):
                schedule = DecaySchedule.from_params({"schedule": kind, name: fraction})
                epochs.append(schedule.switch_step(self.task.epochs) or 0)
        return max(epochs, default=None)

    def grace_period_epochs(self) -> int:
        """The scheduler's grace period in epochs, with "switch" resolved."""
        grace = self.search.scheduler.grace_period
        if grace == "switch":
            return max(1, self.switch_epoch() or 1)
        return grace

    def to_json_dict(self) -> dict[str, Any]:
        """The spec as plain JSON data, with the spec's own names (`lambda`, `from`)."""
        return self.model_dump(mode="json", by_alias=True)


# YAML 1.1 reads 1e-3 (no dot) as a string; YAML 1.2 and JSON read it as a number
_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader (never constructs objects) that also reads 1e-3 as a float, and refuses
    duplicate keys and aliases (a spec needs neither; aliases can multiply a small document)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, "aliases are not allowed", mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789"))
# ValueError: an integer of over 4,300 digits; RecursionError: nesting deeper than the stack
_PARSE_ERRORS = (ValueError, RecursionError)


def parse_spec_text(text: str) -> Any:
    """Parse YAML (or JSON, a subset) text into plain data; InvalidSpec on any parse error."""
    try:
        return yaml.load(text, Loader=_SpecLoader)
    except (yaml.YAMLError, *_PARSE_ERRORS) as error:
        raise InvalidSpec(f"the spec is not valid YAML: {_parse_message(error)}") from error


def parse_spec_json(text: str) -> Any:
    """Parse JSON text into plain data: no duplicate keys, no NaN or Infinity."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except _PARSE_ERRORS as error:  # JSONDecodeError is a ValueError
        raise InvalidSpec(f"the spec is not valid JSON: {_parse_message(error)}") from error


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for key, value in pairs:
        if key in mapping:
            raise ValueError(f"duplicate key {key[:MAX_TEXT]!r}")
        mapping[key] = value
    return mapping


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_message(error: Exception) -> str:
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return str(error)[:500]


def validate_spec(data: Any) -> StudySpec:
    """Validate plain data into a StudySpec; InvalidSpec lists every error with its field."""
    if not isinstance(data, Mapping):
        raise InvalidSpec(f"a spec must be a mapping, got {type(data).__name__}")
    try:
        return StudySpec.model_validate(data)
    except ValidationError as error:
        raise InvalidSpec.from_problems(
            "invalid study spec", [(e["loc"], e["msg"]) for e in error.errors()]
        ) from error


def load_spec(source: str | Path) -> StudySpec:
    """Load a spec from a path or from JSON/YAML text."""
    if isinstance(source, str) and not _looks_like_path(source):
        return validate_spec(parse_spec_text(source))
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidSpec(f"cannot read the spec file {str(source)!r}: {error}") from error
    return validate_spec(parse_spec_text(text))


def _looks_like_path(text: str) -> bool:
    if "\n" in text or text.lstrip().startswith(("{", "[")):
        return False
    try:
        return text.endswith((".yaml", ".yml", ".json")) or Path(text).is_file()
    except OSError:  # a name too long for the file system is text
        return False
