"""The service's policy: budgets, resources and model size, applied at submit only."""

from __future__ import annotations

from typing import Any

import pytest
from factories import spec_data

from studies.errors import InvalidSpec
from studies.policy import Limits, enforce
from studies.spec import StudySpec, validate_spec

TWO_NODES = [{"CPU": 16.0, "GPU": 0.0}, {"CPU": 8.0, "GPU": 2.0}]

# (id, changes to the spec's sections, limits, nodes, loc the error must name, words)
OVER: list[tuple[str, dict[str, Any], Limits, Any, tuple[Any, ...], str]] = [
    ("too many trials", {"search": {"n_trials": 2000}}, Limits(), None,
     ("search", "n_trials"), "limit of 1000"),
    ("trials times seeds", {"search": {"n_trials": 300}, "seeds": 4}, Limits(), None,
     ("search", "n_trials"), "1200 training runs"),
    ("too many seeds", {"seeds": 50}, Limits(), None, ("seeds",), "limit of 20"),
    ("too much concurrency", {"search": {"n_trials": 4, "max_concurrent": 100}}, Limits(),
     None, ("search", "max_concurrent"), "limit of 64"),
    ("too many epochs", {"task": {"dataset": "mnist1d", "model": "mlp", "epochs": 5000}},
     Limits(), None, ("task", "epochs"), "limit of 1000"),
    ("a lowered limit", {"search": {"n_trials": 6}}, Limits(max_trials=10), None,
     ("search", "n_trials"), "12 training runs"),
    ("cpus over the configured limit", {"resources": {"cpu": 1e6}}, Limits(), None,
     ("resources", "cpu"), "limit of 256"),
    ("gpus over the configured limit", {"resources": {"gpu": 1000}}, Limits(), None,
     ("resources", "gpu"), "limit of 16"),
    ("more gpus than any node", {"resources": {"gpu": 4}}, Limits(), TWO_NODES,
     ("resources", "gpu"), "largest node has 16 CPUs and 2 GPUs"),
    ("cpus and gpus never on one node", {"resources": {"cpu": 12, "gpu": 1}}, Limits(),
     TWO_NODES, ("resources", "cpu"), "cpu 12 and gpu 1"),
    ("a gpu on a cluster without gpus", {"resources": {"gpu": 0.25}}, Limits(),
     [{"CPU": 2.0}], ("resources", "gpu"), "0 GPUs"),
    ("no live node", {}, Limits(), [], ("resources", "cpu"), "largest node has 0 CPUs"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "limits", "nodes", "loc", "words"),
    [case[1:] for case in OVER],
    ids=[case[0] for case in OVER],
)
def test_what_is_over_the_policy_is_refused_naming_the_field(
    changes: dict[str, Any], limits: Limits, nodes: Any, loc: tuple[Any, ...], words: str
) -> None:
    spec = validate_spec(spec_data(**changes))  # the shape alone is fine
    with pytest.raises(InvalidSpec) as caught:
        enforce(spec, limits, nodes)
    errors = [e for e in caught.value.errors if tuple(e["loc"]) == loc]
    assert errors, caught.value.errors
    assert words in errors[0]["msg"]


def test_raised_limits_and_a_node_that_fits_accept() -> None:
    spec = validate_spec(
        spec_data(search={"n_trials": 1500}, seeds=1, resources={"cpu": 8, "gpu": 2})
    )
    enforce(spec, Limits(max_trials=5000), TWO_NODES)


def test_a_stored_spec_loads_without_any_policy() -> None:
    """The driver re-reads a spec its service accepted with raised limits (issue 11, item 1)."""
    stored = validate_spec(spec_data(search={"n_trials": 1500})).to_json_dict()
    assert StudySpec.model_validate(stored).search.n_trials == 1500
    with pytest.raises(InvalidSpec):
        enforce(StudySpec.model_validate(stored), Limits(), None)
