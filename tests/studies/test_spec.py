"""StudySpec: every bad input is refused with the field it names; good specs round-trip."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from studies.errors import InvalidSpec
from studies.spec import ParamSpec, StudySpec, load_spec, validate_spec

BASE: dict[str, Any] = {
    "name": "pwd-mnist1d",
    "task": {"dataset": "mnist1d", "model": "mlp", "epochs": 20, "lr": 1e-3},
    "regularizer": {"family": "pwd"},
    "space": {
        "p": {"type": "float", "low": 0.5, "high": 2.0},
        "lambda": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
        "schedule": {"type": "categorical", "choices": ["full", "early"]},
        "until": {"type": "float", "low": 0.1, "high": 0.6, "when": {"schedule": "early"}},
    },
    "objectives": [{"metric": "val_acc", "mode": "max"}],
    "search": {"n_trials": 16, "scheduler": {"type": "asha", "grace_period": "switch"}},
}
DELETE = object()


def make(changes: dict[str, Any]) -> dict[str, Any]:
    """BASE with dotted paths set (or deleted with DELETE)."""
    spec = copy.deepcopy(BASE)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = spec
        for key in parents:
            node = node.setdefault(key, {})
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return spec


TWO_OBJECTIVES = [{"metric": "val_acc"}, {"metric": "sparsity"}]
NO_SCHEDULE_SEARCH = {"space.schedule": DELETE, "space.until": DELETE}
FLOAT = {"type": "float", "low": 0.1, "high": 0.5}

# (id, changes to BASE, loc the error must name, words the message must contain)
BAD_SPECS: list[tuple[str, dict[str, Any], tuple[Any, ...], str]] = [
    ("unknown top-level field", {"colour": "red"}, ("colour",), "Extra inputs"),
    ("unknown task field", {"task.epoch": 3}, ("task", "epoch"), "Extra inputs"),
    ("unknown space field", {"space.p.mean": 1.0}, ("space", "p", "mean"), "Extra inputs"),
    ("p = 0 fixed", {"regularizer.p": 0}, ("regularizer", "p"), "greater than 0"),
    ("p <= 0 searched", {"space.p.low": 0}, ("space", "p", "low"), "> 0"),
    ("negative lambda", {"regularizer.lambda": -0.1}, ("regularizer", "lambda"), "or equal to 0"),
    (
        "negative lambda searched",
        {"space.lambda": {"type": "float", "low": -1e-3, "high": 1e-3}},
        ("space", "lambda", "low"),
        ">= 0",
    ),
    ("low >= high", {"space.p.low": 2.0, "space.p.high": 1.0}, ("space", "p", "high"), "greater"),
    ("log range at 0", {"space.lambda.low": 0.0}, ("space", "lambda", "low"), "log range"),
    (
        "log range through 0",
        {"space.lr": {"type": "float", "low": -1.0, "high": 1.0, "log": True}},
        ("space", "lr", "low"),
        "log range",
    ),
    ("unknown dataset", {"task.dataset": "imagenet"}, ("task", "dataset"), "unknown dataset"),
    ("unknown model", {"task.model": "vit"}, ("task", "model"), "unknown model"),
    ("unknown sampler", {"search.sampler": "hyperband"}, ("search", "sampler"), "unknown"),
    ("unknown family", {"regularizer.family": "adamw"}, ("regularizer", "family"), "unknown"),
    (
        "unknown fixed schedule",
        {**NO_SCHEDULE_SEARCH, "regularizer.schedule": "weekly"},
        ("regularizer", "schedule"),
        "unknown schedule",
    ),
    (
        "unknown metric",
        {"objectives": [{"metric": "f1", "mode": "max"}]},
        ("objectives", 0, "metric"),
        "unknown metric",
    ),
    (
        "unknown mode",
        {"objectives": [{"metric": "val_acc", "mode": "up"}]},
        ("objectives", 0, "mode"),
        "'max'",
    ),
    (
        "metric without a natural mode",
        {"objectives": [{"metric": "angular_update"}]},
        ("objectives", 0, "mode"),
        "required",
    ),
    (
        "categorical without choices",
        {"space.schedule.choices": []},
        ("space", "schedule", "choices"),
        "non-empty",
    ),
    (
        "schedule choice not a schedule",
        {"space.schedule.choices": ["full", "weekly"]},
        ("space", "schedule", "choices", 1),
        "weekly",
    ),
    (
        "family choice not a family",
        {"space.family": {"type": "categorical", "choices": ["pwd", "adamw"]}},
        ("space", "family", "choices", 1),
        "adamw",
    ),
    (
        "until searched but no schedule can be early",
        {"space.schedule": DELETE, "space.until.when": {}},
        ("space", "until"),
        "never uses",
    ),
    (
        "until set but schedule is full",
        {**NO_SCHEDULE_SEARCH, "regularizer.until": 0.5, "search.scheduler": {"type": "none"}},
        ("regularizer", "until"),
        "never uses",
    ),
    (
        "until searched without its condition",
        {"space.until.when": {}},
        ("space", "until", "when"),
        "schedule: early",
    ),
    (
        "from conditioned on early",
        {
            "space.schedule.choices": ["full", "early", "late"],
            "space.from": {**FLOAT, "when": {"schedule": "early"}},
        },
        ("space", "from", "when"),
        "'late'",
    ),
    (
        "early schedule without until",
        {**NO_SCHEDULE_SEARCH, "regularizer.schedule": "early"},
        ("regularizer", "until"),
        "needs until",
    ),
    (
        "late among choices without from",
        {"space.schedule.choices": ["full", "late"], "space.until": DELETE},
        ("regularizer", "from"),
        "needs from",
    ),
    (
        "p searched for a family without p",
        {"regularizer.family": "decoupled"},
        ("space", "p"),
        "only applies",
    ),
    (
        "p set for a family without p",
        {"regularizer.family": "decoupled", "space.p": DELETE, "regularizer.p": 0.8},
        ("regularizer", "p"),
        "only applies",
    ),
    (
        "p not conditioned on a family with p",
        {"space.family": {"type": "categorical", "choices": ["pwd", "decoupled"]}},
        ("space", "p", "when"),
        "family",
    ),
    (
        "lambda with family none",
        {"regularizer": {"family": "none", "lambda": 0.1}, "space": {}},
        ("regularizer", "family"),
        "never decays",
    ),
    (
        "space param not searchable",
        {"space.epochs": FLOAT},
        ("space", "epochs"),
        "cannot be searched",
    ),
    (
        "when names a fixed setting",
        {"space.until.when": {"optimizer": "sgd"}},
        ("space", "until", "when", "optimizer"),
        "categorical parameter",
    ),
    (
        "when value not a choice",
        {"space.until.when": {"schedule": "late"}},
        ("space", "until", "when", "schedule"),
        "not a choice",
    ),
    (
        "conditions in a cycle",
        {
            "space.family": {
                "type": "categorical",
                "choices": ["pwd"],
                "when": {"schedule": "full"},
            },
            "space.schedule.when": {"family": "pwd"},
        },
        ("space",),
        "cycle",
    ),
    (
        "int range with a fractional end",
        {"space.batch_size": {"type": "int", "low": 16.5, "high": 256}},
        ("space", "batch_size", "low"),
        "integer",
    ),
    (
        "log with step",
        {"space.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True, "step": 1e-4}},
        ("space", "lr", "step"),
        "cannot be combined",
    ),
    (
        "batch_size searched as float",
        {"space.batch_size": FLOAT},
        ("space", "batch_size", "type"),
        "int",
    ),
    ("objectives empty", {"objectives": []}, ("objectives",), "at least 1"),
    (
        "objective twice",
        {"objectives": [{"metric": "val_acc"}, {"metric": "val_acc", "mode": "min"}]},
        ("objectives", 1, "metric"),
        "twice",
    ),
    (
        "cmaes with two objectives",
        {"search.sampler": "cmaes", "objectives": TWO_OBJECTIVES, **NO_SCHEDULE_SEARCH},
        ("search", "sampler"),
        "single objective",
    ),
    (
        "cmaes with a categorical",
        {"search.sampler": "cmaes"},
        ("space", "schedule", "type"),
        "float and int",
    ),
    (
        "qmc with a conditional",
        {"search.sampler": "qmc"},
        ("space", "until", "when"),
        "conditional",
    ),
    ("grid with a continuous range", {"search.sampler": "grid"}, ("space", "p", "step"), "grid"),
    (
        "grid smaller than n_trials",
        {
            "search.sampler": "grid",
            "space": {"p": {"type": "float", "low": 0.5, "high": 1.0, "step": 0.25}},
        },
        ("search", "n_trials"),
        "3 points",
    ),
    ("zero epochs", {"task.epochs": 0}, ("task", "epochs"), "greater than or equal to 1"),
    ("zero lr", {"task.lr": 0}, ("task", "lr"), "greater than 0"),
    ("momentum searched under adam", {"space.momentum": FLOAT}, ("space", "momentum"), "sgd"),
    ("warmup without warmup_cosine", {"task.warmup": 0.1}, ("task", "warmup"), "warmup_cosine"),
    (
        "warmup_cosine without warmup",
        {"task.lr_schedule": "warmup_cosine"},
        ("task", "warmup"),
        "needs",
    ),
    (
        "nesterov without momentum",
        {"task.optimizer": "sgd", "task.nesterov": True, "task.momentum": 0.0},
        ("task", "momentum"),
        "nesterov",
    ),
    (
        "grace period past the last epoch",
        {"search.scheduler.grace_period": 50},
        ("search", "scheduler", "grace_period"),
        "longer than",
    ),
    (
        "grace period 'switch' without a switch",
        NO_SCHEDULE_SEARCH,
        ("search", "scheduler", "grace_period"),
        "early or late",
    ),
    ("fractional GPUs above one", {"resources.gpu": 1.5}, ("resources", "gpu"), "whole number"),
    (
        "nested model option",
        {"task.model_options": {"width": {"a": 1}}},
        ("task", "model_options", "width"),
        "valid",
    ),
    ("schema version from the future", {"schema_version": 2}, ("schema_version",), "1"),
    ("name with spaces", {"name": "my study"}, ("name",), "pattern"),
]


def _error_locs(error: ValidationError) -> list[tuple[Any, ...]]:
    return [tuple(e["loc"]) for e in error.errors()]


def test_the_table_is_big_and_the_base_is_valid() -> None:
    assert len(BAD_SPECS) >= 25
    StudySpec.model_validate(BASE)


@pytest.mark.parametrize(
    ("changes", "loc", "words"), [c[1:] for c in BAD_SPECS], ids=[c[0] for c in BAD_SPECS]
)
def test_bad_spec_names_the_field(
    changes: dict[str, Any], loc: tuple[Any, ...], words: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        StudySpec.model_validate(make(changes))
    matching = [e for e in caught.value.errors() if tuple(e["loc"])[: len(loc)] == loc]
    assert matching, f"no error at {loc}: {_error_locs(caught.value)}"
    assert any(words in e["msg"] for e in matching), [e["msg"] for e in matching]


def test_invalid_spec_lists_every_error_with_its_field() -> None:
    with pytest.raises(InvalidSpec) as caught:
        validate_spec(make({"task.dataset": "imagenet", "regularizer.lambda": -1}))
    locs = [tuple(e["loc"]) for e in caught.value.errors]
    assert ("task", "dataset") in locs and ("regularizer", "lambda") in locs
    assert "task.dataset" in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "name: [unclosed",
        "just a string",
        "!!python/object/apply:os.system ['true']",
        "no/such/study.yaml",
    ],
    ids=["syntax", "not a mapping", "python tag", "missing file"],
)
def test_unparseable_text_is_invalid_spec(text: str) -> None:
    with pytest.raises(InvalidSpec):
        load_spec(text)


GOOD_SPECS: list[tuple[str, dict[str, Any]]] = [
    ("base", {}),
    ("minimal", {"regularizer": DELETE, "space": DELETE, "objectives": DELETE, "search": DELETE}),
    ("nsga2 with one objective", {"search.sampler": "nsga2"}),
    ("two objectives, default sampler", {"objectives": TWO_OBJECTIVES}),
    (
        "late schedule searched with from",
        {
            "space.schedule.choices": ["full", "early", "late"],
            "space.from": {**FLOAT, "when": {"schedule": "late"}},
        },
    ),
    (
        "fixed early with until",
        {**NO_SCHEDULE_SEARCH, "regularizer.schedule": "early", "regularizer.until": 0.3},
    ),
    (
        "family searched, p conditional",
        {
            "space.family": {"type": "categorical", "choices": ["pwd", "lp_coupled", "decoupled"]},
            "space.p.when": {"family": ["pwd", "lp_coupled"]},
        },
    ),
    (
        "sgd with momentum and warmup searched",
        {
            "task.optimizer": "sgd",
            "task.nesterov": True,
            "task.lr_schedule": "warmup_cosine",
            "space.momentum": {"type": "categorical", "choices": [0.8, 0.9]},
            "space.warmup": {"type": "float", "low": 0.01, "high": 0.2},
            "space.batch_size": {"type": "int", "low": 32, "high": 256, "log": True},
        },
    ),
    (
        "grid over steps and choices",
        {
            "search.sampler": "grid",
            "search.n_trials": 12,
            "space.p": {"type": "float", "low": 0.5, "high": 1.0, "step": 0.25},
            "space.lambda": {"type": "categorical", "choices": [1e-4, 1e-3]},
            "space.until": {
                "type": "categorical",
                "choices": [0.25, 0.5],
                "when": {"schedule": "early"},
            },
        },
    ),
    (
        "cmaes over ranges",
        {"search.sampler": "cmaes", **NO_SCHEDULE_SEARCH, "search.scheduler": DELETE},
    ),
    ("lambda fixed and searched", {"regularizer.lambda": 0.01}),
    ("model options", {"task.model_options": {"width": 512, "depth": 3, "norm": "layernorm"}}),
    ("fractional GPU", {"resources": {"cpu": 2, "gpu": 0.25}}),
]


@pytest.mark.parametrize("changes", [c[1] for c in GOOD_SPECS], ids=[c[0] for c in GOOD_SPECS])
def test_good_spec_round_trips_through_json_and_yaml(changes: dict[str, Any]) -> None:
    spec = StudySpec.model_validate(make(changes))
    as_json = json.dumps(spec.to_json_dict())
    as_yaml = yaml.safe_dump(spec.to_json_dict())
    assert load_spec(as_json) == spec
    assert load_spec(as_yaml) == spec
    assert json.loads(as_json)["regularizer"].keys() >= {"lambda", "from"}


def test_yaml_reads_exponents_without_a_dot_as_numbers(tmp_path: Path) -> None:
    text = yaml.safe_dump(BASE).replace("1.0e-05", "1e-5")
    assert "1e-5" in text
    path = tmp_path / "study.yaml"
    path.write_text(text)
    assert load_spec(path).space["lambda"].low == 1e-5
    assert load_spec(str(path)).space["lambda"].low == 1e-5


def test_python_names_and_spec_names_both_validate() -> None:
    by_alias = StudySpec.model_validate(make({"regularizer": {"family": "pwd", "lambda": 0.1}}))
    by_name = StudySpec.model_validate(make({"regularizer": {"family": "pwd", "lam": 0.1}}))
    assert by_alias.regularizer.lam == by_name.regularizer.lam == 0.1


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, 12),  # until up to 0.6 of 20 epochs
        ({"space.until.high": 0.61}, 13),  # ceil(12.2)
        ({"search.scheduler.grace_period": 4}, 4),
    ],
)
def test_grace_period_switch_is_the_latest_switch_epoch(
    changes: dict[str, Any], expected: int
) -> None:
    assert StudySpec.model_validate(make(changes)).grace_period_epochs() == expected


def test_the_sampler_checked_is_the_one_named_else_tpe_which_the_default_ends_in() -> None:
    assert StudySpec.model_validate(BASE).sampler_name == "tpe"
    assert StudySpec.model_validate(make({"objectives": TWO_OBJECTIVES})).sampler_name == "tpe"
    assert StudySpec.model_validate(make({"search.sampler": "nsga2"})).sampler_name == "nsga2"


def test_objective_mode_defaults_to_the_metric_direction() -> None:
    spec = StudySpec.model_validate(
        make({"objectives": [{"metric": "val_loss"}, {"metric": "sparsity@1e-08"}]})
    )
    assert [o.mode for o in spec.objectives] == ["min", "max"]


ends = st.floats(min_value=1e-6, max_value=1e3, allow_nan=False)


@given(low=ends, high=ends)
def test_a_float_range_is_valid_exactly_when_low_is_below_high(low: float, high: float) -> None:
    data = {"type": "float", "low": low, "high": high, "log": True}
    if low < high:
        assert ParamSpec.model_validate(data).values() == [low, high]
    else:
        with pytest.raises(ValidationError) as caught:
            ParamSpec.model_validate(data)
        assert ("high",) in _error_locs(caught.value)


def test_bundled_examples_validate() -> None:
    examples = sorted((Path(__file__).parents[2] / "studies" / "examples").glob("*.yaml"))
    if not examples:
        pytest.skip("no bundled examples yet")
    for path in examples:
        spec = load_spec(path)
        assert load_spec(json.dumps(spec.to_json_dict())) == spec, path.name
