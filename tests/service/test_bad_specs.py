"""Every bad POST /studies is a 4xx naming its field; nothing is written and nothing launched.

Run against the real app on SQLite and PostgreSQL. A case is (id, body, content type, status,
loc the errors must name or None, words the message must contain).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from api_harness import JSON, Api
from factories import spec_data

YAML = "application/yaml"
Case = tuple[str, bytes, str | None, int, tuple[Any, ...] | None, str]


def _json(**sections: Any) -> bytes:
    """The factory spec with these sections: search, regularizer and resources are updated,
    any other replaced."""
    spec = spec_data()
    for key, value in sections.items():
        merge = key in ("search", "regularizer", "resources") and isinstance(value, dict)
        spec[key] = {**spec.get(key, {}), **value} if merge else value
    return json.dumps(spec).encode()


def _space(**params: Any) -> bytes:
    return _json(space=params)


TASK = {"dataset": "mnist1d", "model": "mlp", "epochs": 3}
FLOAT_P = {"type": "float", "low": 0.5, "high": 2.0}
EARLY = {"schedule": {"type": "categorical", "choices": ["early"]}}
PARSE: list[Case] = [
    ("invalid json", b'{"name": ', "application/json", 422, None, "not valid JSON"),
    ("json nested 10,000 deep", b"[" * 10_000 + b"]" * 10_000, None, 422, None, "nested too"),
    ("yaml nested 10,000 deep", b"[" * 10_000 + b"]" * 10_000, YAML, 422, None, "nested too"),
    ("json 5,000-digit integer", b'{"seeds": 1' + b"0" * 5000 + b"}", None, 422, None, "digits"),
    ("yaml 5,000-digit integer", b"seeds: 1" + b"0" * 5000, YAML, 422, None, "digits"),
    ("json duplicate key", b'{"name": "a", "name": "b"}', None, 422, None, "duplicate key 'name'"),
    ("yaml duplicate key", b"name: a\nname: b\n", YAML, 422, None, "duplicate key 'name'"),
    ("yaml nested duplicate", b"task: {epochs: 1, epochs: 2}", YAML, 422, None, "'epochs'"),
    ("yaml alias", b"a: &x [1]\nb: *x\n", YAML, 422, None, "aliases are not allowed"),
    ("yaml python tag", b"name: !!python/object:os.system x", YAML, 422, None, "not valid YAML"),
    ("json NaN", b'{"seeds": NaN}', None, 422, None, "NaN is not a JSON number"),
    ("json Infinity", b'{"seeds": -Infinity}', None, 422, None, "-Infinity is not a JSON"),
    ("not utf-8", b'{"name": "\xff\xfe"}', None, 422, None, "not UTF-8"),
    ("json array", b"[1, 2]", None, 422, None, "must be a mapping, got list"),
    ("json string", b'"spec"', None, 422, None, "must be a mapping, got str"),
    ("empty body", b"", None, 422, None, "not valid JSON"),
    ("empty yaml", b"", YAML, 422, None, "must be a mapping, got NoneType"),
    ("yaml NUL byte", b"name: a\x00b", YAML, 422, None, "not valid YAML"),
]  # fmt: skip
TYPES: list[Case] = [
    ("epochs as a string", _json(task={**TASK, "epochs": "30"}), None, 422,
     ("task", "epochs"), "valid integer"),
    ("n_trials as a boolean", _json(search={"n_trials": True}), None, 422,
     ("search", "n_trials"), "valid integer"),
    ("lr as a string", _json(task={**TASK, "lr": "1e-3"}), None, 422, ("task", "lr"), "number"),
    ("seeds as a float", _json(seeds=2.0), None, 422, ("seeds",), "valid integer"),
    ("batch size fractional", _json(task={**TASK, "batch_size": 1.5}), None, 422,
     ("task", "batch_size"), "valid integer"),
    ("nesterov as a string", _json(task={**TASK, "nesterov": "yes"}), None, 422,
     ("task", "nesterov"), "valid boolean"),
    ("log as an integer", _space(p={**FLOAT_P, "log": 1}), None, 422, ("space", "p", "log"),
     "valid boolean"),
    ("metric as a list", _json(objectives=[{"metric": ["val_acc"]}]), None, 422,
     ("objectives", 0, "metric"), "valid string"),
    ("objectives not a list", _json(objectives={"metric": "val_acc"}), None, 422,
     ("objectives",), "valid list"),
    ("space not a mapping", _json(space=["p"]), None, 422, ("space",), "valid dictionary"),
    ("no task", json.dumps({"name": "x"}).encode(), None, 422, ("task",), "Field required"),
    ("no name", json.dumps({"task": TASK}).encode(), None, 422, ("name",), "Field required"),
    ("name too long", _json(name="n" * 101), None, 422, ("name",), "at most 100"),
    ("name with a slash", _json(name="a/b"), None, 422, ("name",), "pattern"),
    ("name with NUL", _json(name="a\x00b"), None, 422, ("name",), "pattern"),
    ("description too long", _json(description="d" * 2001), None, 422, ("description",),
     "at most 2000"),
    ("description with NUL", _json(description="a\x00b"), None, 422, ("description",),
     "pattern"),
    ("unknown top-level field", _json(colour="red"), None, 422, ("colour",), "Extra inputs"),
    ("unknown schema version", _json(schema_version=2), None, 422, ("schema_version",), "1"),
    ("choice with NUL", _space(schedule={"type": "categorical", "choices": ["full", "\x00"]}),
     None, 422, ("space", "schedule", "choices", 1), "NUL"),
]  # fmt: skip
CAPS: list[Case] = [
    ("17 space entries", _json(space={f"x{i}": FLOAT_P for i in range(17)}), None, 422,
     ("space",), "at most 16"),
    ("1,001 choices", _space(lr={"type": "categorical", "choices": list(range(1, 1002))}),
     None, 422, ("space", "lr", "choices"), "at most 1000"),
    ("9 when conditions", _space(p={**FLOAT_P, "when": {f"c{i}": "a" for i in range(9)}}),
     None, 422, ("space", "p", "when"), "at most 8"),
    ("1,001 when values", _space(schedule={"type": "categorical", "choices": ["full", "early"]},
     until={"type": "float", "low": 0.1, "high": 0.5, "when": {"schedule": ["early"] * 1001}}),
     None, 422, ("space", "until", "when", "schedule"), "at most 1000"),
    ("9 objectives", _json(objectives=[{"metric": "val_acc"}] * 9), None, 422,
     ("objectives",), "at most 8"),
    ("a 300-character choice", _space(schedule={"type": "categorical", "choices": ["f" * 300]}),
     None, 422, ("space", "schedule", "choices", 0), "at most 200"),
    ("33 model options", _json(task={**TASK, "model_options": {f"o{i}": 1 for i in range(33)}}),
     None, 422, ("task", "model_options"), "at most 32"),
    ("a 300-character option name", _json(task={**TASK, "model_options": {"o" * 300: 1}}),
     None, 422, ("task", "model_options"), "at most 200"),
    ("an integer beyond 2**53", _space(p={"type": "float", "low": 1, "high": 2**60}), None, 422,
     ("space", "p", "high"), "2**53"),
    ("1e309 is infinite", b'{"name": "x", "task": {"dataset": "mnist1d", "model": "mlp", '
     b'"lr": 1e309}}', None, 422, ("task", "lr"), "finite"),
    ("a range across the float limits",
     _space(**{"lambda": {"type": "float", "low": -1.7e308, "high": 1.7e308}}), None, 422,
     ("space", "lambda", "low"), ">= 0"),
    ("a grid of 10^12 points", _json(space={"p": {**FLOAT_P, "step": 1e-12}},
     search={"sampler": "grid", "n_trials": 4}), None, 422, ("search", "sampler"), "100,000"),
    ("a grid whose span overflows", _json(space={"p": {"type": "float", "low": 1e-300,
     "high": 1.7e308, "step": 1e-300}}, search={"sampler": "grid"}), None, 422,
     ("search", "sampler"), "more than"),
    ("two grids multiplying past the cap", _json(space={"p": {**FLOAT_P, "step": 1e-3},
     "lr": {"type": "float", "low": 0.001, "high": 0.2, "step": 1e-3}},
     search={"sampler": "grid"}), None, 422, ("search", "sampler"), "more than 100,000"),
    ("an until choice near the float limit", _json(space={**EARLY, "until": {
     "type": "categorical", "choices": [1e308], "when": {"schedule": "early"}}},
     search={"scheduler": {"type": "asha", "grace_period": "switch"}}), None, 422,
     ("space", "until", "choices", 0), "in (0, 1)"),
    ("a zero step", _space(p={**FLOAT_P, "step": 0}), None, 422, ("space", "p", "step"),
     "greater than 0"),
    ("a negative step", _space(p={**FLOAT_P, "step": -0.5}), None, 422, ("space", "p", "step"),
     "greater than 0"),
    ("low equal to high", _space(p={**FLOAT_P, "low": 2.0}), None, 422, ("space", "p", "high"),
     "greater than low"),
    ("a log range at 0", _space(**{"lambda": {"type": "float", "low": 0, "high": 1,
     "log": True}}), None, 422, ("space", "lambda", "low"), "log range"),
]  # fmt: skip
MLP = {**TASK, "model": "mlp"}
MODEL: list[Case] = [
    ("width 1e9", _json(task={**MLP, "model_options": {"width": 1e9}}), None, 422,
     ("task", "model_options", "width"), "integer in 1..65536"),
    ("an unknown option", _json(task={**MLP, "model_options": {"act": "relu"}}), None, 422,
     ("task", "model_options", "act"), "width, depth, norm"),
    ("a negative width", _json(task={**MLP, "model_options": {"width": -4}}), None, 422,
     ("task", "model_options", "width"), "got -4"),
    ("width as a boolean", _json(task={**MLP, "model_options": {"width": True}}), None, 422,
     ("task", "model_options", "width"), "bool"),
    ("width as a string", _json(task={**MLP, "model_options": {"width": "256"}}), None, 422,
     ("task", "model_options", "width"), "str"),
    ("an unknown norm", _json(task={**MLP, "model_options": {"norm": "groupnorm"}}), None, 422,
     ("task", "model_options", "norm"), "layernorm"),
    ("cnn1d on cifar10", _json(task={"dataset": "cifar10", "model": "cnn1d"}), None, 422,
     ("task", "model"), "mnist1d"),
    ("a model over the parameter limit", _json(task={**MLP, "model_options": {"width": 65536,
     "depth": 8}}), None, 422, ("task", "model_options"), "trainable parameters"),
]  # fmt: skip
POLICY: list[Case] = [
    ("a million cpus", _json(resources={"cpu": 1e6}), None, 422, ("resources", "cpu"),
     "limit of 256"),
    ("a thousand gpus", _json(resources={"gpu": 1000}), None, 422, ("resources", "gpu"),
     "limit of 16"),
    ("2.5 cpus", _json(resources={"cpu": 2.5}), None, 422, ("resources", "cpu"), "whole number"),
    ("zero cpus", _json(resources={"cpu": 0}), None, 422, ("resources", "cpu"), "greater than"),
    ("negative gpus", _json(resources={"gpu": -1}), None, 422, ("resources", "gpu"), "greater"),
    ("too many trials", _json(search={"n_trials": 2000}), None, 422, ("search", "n_trials"),
     "limit of 1000"),
    ("10^30 trials", _json(search={"n_trials": 10**30}), None, 422, ("search", "n_trials"),
     "limit of 1000"),
    ("too many seeds", _json(seeds=50), None, 422, ("seeds",), "limit of 20"),
    ("too much concurrency", _json(search={"max_concurrent": 100}), None, 422,
     ("search", "max_concurrent"), "limit of 64"),
    ("too many epochs", _json(task={**TASK, "epochs": 5000}), None, 422, ("task", "epochs"),
     "limit of 1000"),
    ("a seed of 2**32", _json(search={"seed": 2**32}), None, 422, ("search", "seed"), "less"),
    ("101 failures allowed", _json(search={"max_failures": 101}), None, 422,
     ("search", "max_failures"), "less than or equal to 100"),
]  # fmt: skip
SEARCH: list[Case] = [
    ("an unknown sampler", _json(search={"sampler": "hyperband"}), None, 422,
     ("search", "sampler"), "unknown sampler"),
    ("cmaes with two objectives", _json(search={"sampler": "cmaes"}), None, 422,
     ("search", "sampler"), "single objective"),
    ("a grace period past the epochs", _json(search={"scheduler": {"type": "asha",
     "grace_period": 10}}), None, 422, ("search", "scheduler", "grace_period"), "longer than"),
    ("switch without a switching schedule", _json(space={"p": FLOAT_P}, search={"scheduler": {
     "type": "asha", "grace_period": "switch"}}), None, 422,
     ("search", "scheduler", "grace_period"), "'switch' needs"),
    ("when on a range", _space(p=FLOAT_P, lr={"type": "float", "low": 0.1, "high": 0.5,
     "when": {"p": 1.0}}), None, 422, ("space", "lr", "when", "p"), "categorical"),
    ("when on an unknown parameter", _space(p={**FLOAT_P, "when": {"colour": "red"}}), None,
     422, ("space", "p", "when", "colour"), "categorical"),
    ("when on a value that is no choice", _space(
     schedule={"type": "categorical", "choices": ["full", "early"]},
     until={"type": "float", "low": 0.1, "high": 0.5, "when": {"schedule": "late"}}), None,
     422, ("space", "until", "when", "schedule"), "'late' is not a choice"),
    ("a parameter that cannot be searched", _space(colour={"type": "categorical",
     "choices": ["red"]}), None, 422, ("space", "colour"), "cannot be searched"),
    ("an unknown objective", _json(objectives=[{"metric": "f1", "mode": "max"}]), None, 422,
     ("objectives", 0, "metric"), "unknown metric"),
    ("an objective twice", _json(objectives=[{"metric": "val_acc"}, {"metric": "val_acc"}]),
     None, 422, ("objectives", 1, "metric"), "listed twice"),
]  # fmt: skip
REGULARIZER: list[Case] = [
    ("a negative lambda", _json(regularizer={"lambda": -0.1}), None, 422,
     ("regularizer", "lambda"), "greater than or equal to 0"),
    ("p of zero", _json(regularizer={"p": 0}), None, 422, ("regularizer", "p"), "greater"),
    ("an unknown family", _json(regularizer={"family": "adamw"}), None, 422,
     ("regularizer", "family"), "unknown family"),
    ("until of 1.5", _json(regularizer={"until": 1.5}), None, 422, ("regularizer", "until"),
     "less than 1"),
    ("lambda without a family", _json(space={}, regularizer={"family": "none", "lambda": 0.1}),
     None, 422, ("regularizer", "family"), "never decays"),
    ("an unknown dataset", _json(task={**TASK, "dataset": "imagenet"}), None, 422,
     ("task", "dataset"), "unknown dataset"),
]  # fmt: skip
MEDIA: list[Case] = [
    ("no content type", _json(), None, 415, None, "content-type"),
    ("text/plain", _json(), "text/plain", 415, None, "not text/plain"),
    ("a form", _json(), "application/x-www-form-urlencoded", 415, None, "content-type"),
    ("multipart", _json(), "multipart/form-data", 415, None, "content-type"),
    ("over the body limit", b'{"description": "' + b"x" * 300_000 + b'"}', None, 413, None,
     "over 262144 bytes"),
]  # fmt: skip
CASES = PARSE + TYPES + CAPS + MODEL + POLICY + SEARCH + REGULARIZER + MEDIA


def test_the_table_is_big() -> None:
    assert len(CASES) >= 80


@pytest.mark.parametrize(
    ("body", "content_type", "status", "loc", "words"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_bad_spec_is_a_4xx_naming_its_field_and_changes_nothing(
    api: Api,
    body: bytes,
    content_type: str | None,
    status: int,
    loc: tuple[Any, ...] | None,
    words: str,
) -> None:
    if content_type is None and status != 415:
        content_type = "application/json"
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = api.client.post("/studies", content=body, headers=headers)
    assert response.status_code == status, response.text[:500]
    error = response.json()
    assert set(error) == {"detail", "errors"} and isinstance(error["detail"], str)
    messages = [error["detail"]]
    if loc is not None:
        at = [e for e in error["errors"] if tuple(e["loc"])[: len(loc)] == loc]
        assert at, f"no error at {loc}: {error['errors']}"
        messages = [e["msg"] for e in at]
        assert ".".join(map(str, loc)) in error["detail"]
    assert any(words in message for message in messages), messages
    assert api.launcher.calls == []
    assert api.client.get("/studies").json()["total"] == 0


def test_a_cluster_without_the_resources_refuses_the_study(make_api: Callable[..., Api]) -> None:
    api = make_api()
    api.launcher.cluster = [{"CPU": 2.0, "GPU": 0.0}]
    response = api.client.post("/studies", content=_json(resources={"gpu": 0.5}), headers=JSON)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["resources", "gpu"]
    assert "2 CPUs and 0 GPUs" in response.json()["detail"]
    api.launcher.cluster = [{"CPU": 2.0, "GPU": 1.0}]
    response = api.client.post("/studies", content=_json(resources={"gpu": 0.5}), headers=JSON)
    assert response.status_code == 201


def test_raised_limits_let_a_bigger_study_through(make_api: Callable[..., Api]) -> None:
    api = make_api(max_trials=5000)
    response = api.client.post("/studies", json=spec_data(search={"n_trials": 1500}, seeds=1))
    assert response.status_code == 201


def test_a_chunked_body_over_the_limit_is_a_413(api: Api) -> None:
    def chunks() -> Any:
        for _ in range(100):
            yield b" " * 4096  # no Content-Length: the limit counts what arrives

    response = api.client.post("/studies", content=chunks(), headers=JSON)
    assert response.status_code == 413
    assert api.client.get("/studies").json()["total"] == 0


def test_a_host_the_service_does_not_serve_is_a_400(api: Api) -> None:
    response = api.client.get("/studies", headers={"Host": "attacker.example:8000"})
    assert response.status_code == 400 and "Host" in response.json()["detail"]
    assert api.client.get("/studies", headers={"Host": "localhost:8000"}).status_code == 200
