"""The names the spec validates against equal what the workers implement."""

from __future__ import annotations

import pytest

from studies import catalog

data = pytest.importorskip("workers.data")
metrics = pytest.importorskip("workers.metrics")
models = pytest.importorskip("workers.models")
optim = pytest.importorskip("workers.optim")


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (catalog.DATASET_NAMES, tuple(data.DATASETS)),
        (catalog.MODEL_NAMES, tuple(models.MODELS)),
        (catalog.FAMILIES, tuple(optim.REGULARIZERS)),
    ],
    ids=["datasets", "models", "families"],
)
def test_catalog_matches_the_workers(ours: tuple, theirs: tuple) -> None:
    assert set(ours) == set(theirs)


def test_every_sparsity_metric_a_trial_reports_is_an_objective() -> None:
    names = [metrics.threshold_metric_name(tau) for tau in metrics.SPARSITY_THRESHOLDS]
    assert set(names) <= set(catalog.OBJECTIVE_METRICS)
    assert names == [catalog.threshold_metric_name(t) for t in catalog.SPARSITY_THRESHOLDS]


def test_one_table_names_every_renamed_parameter() -> None:
    """`lambda` and `from` are API names; their columns and config keys are `lam`, `start`."""
    from studies.catalog import API_NAMES, COLUMN_NAMES, api_name, column_name
    from studies.db import Trial
    from studies.spec_checks import SEARCHABLE

    assert {api_name(column_name(name)) for name in SEARCHABLE} == set(SEARCHABLE)
    assert API_NAMES == {"lam": "lambda", "start": "from"}
    for name in ("p", "lambda", "until", "from", "lr", "schedule", "family"):
        assert hasattr(Trial, column_name(name)), name
    assert all(not hasattr(Trial, name) for name in COLUMN_NAMES)
