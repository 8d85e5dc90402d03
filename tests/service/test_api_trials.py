"""Trials over HTTP: filters, sorting, pagination totals, one trial, its metric curves."""

from __future__ import annotations

import pytest
from api_harness import Api
from factories import make_study, make_trial

from studies import repository

P = [0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0, None]
LAM = [1e-1, 1e-2, 1e-3, 1e-4, 1e-1, 1e-2, 1e-3, 1e-4, 1e-1, 1e-2]
STATES = {3: "failed", 7: "pruned", 8: "running"}


@pytest.fixture
def study(api: Api) -> str:
    """Ten trials: p rising, λ cycling, schedules alternating; trial 9 is decoupled (no p)."""
    with api.sessions.begin() as session:
        study_id = make_study(session, status="running").id
        for i in range(10):
            final = {"val_acc": 0.5 + 0.04 * i, "sparsity@1e-08": 1 - i / 10}
            make_trial(
                session,
                study_id,
                state=STATES.get(i, "completed"),
                family="decoupled" if i == 9 else "pwd",
                p=P[i],
                lam=LAM[i],
                schedule="early" if i % 2 else "full",
                until=0.3 if i % 2 else None,
                seed=100 + i,
                final=None if i == 8 else final,
                curves={"val_acc": [0.1 * i, 0.2 * i], "weight_norm": [5.0, 4.0]},
            )
    return study_id


@pytest.mark.parametrize(
    ("query", "numbers", "total"),
    [
        ("", list(range(10)), 10),
        ("state=failed&state=pruned", [3, 7], 2),
        ("state=completed&limit=3", [0, 1, 2], 7),
        ("p_min=0.8&p_max=1.2", [2, 3, 4], 3),
        ("lam_min=1e-3&lam_max=1e-2", [1, 2, 5, 6, 9], 5),
        ("schedule=early&state=completed", [1, 5, 9], 3),
        ("family=decoupled", [9], 1),
        ("family=pwd&family=decoupled&limit=1&offset=9", [9], 10),
        ("sort=val_acc&order=desc&limit=3", [9, 7, 6], 10),
        ("sort=val_acc&limit=2&offset=8", [9, 8], 10),  # trial 8 has no val_acc: last
        ("sort=sparsity@1e-08&limit=2", [9, 7], 10),  # a metric kept only in JSON
        ("val_acc_min=0.69&val_acc_max=0.79", [5, 6, 7], 3),
        ("sort=p&order=desc&limit=2", [8, 7], 10),
        ("sort=lambda&order=desc&state=completed&limit=3", [0, 4, 1], 7),
        ("limit=3&offset=8", [8, 9], 10),
        ("offset=20", [], 10),
    ],
)
def test_trials_are_filtered_sorted_and_paginated(
    api: Api, study: str, query: str, numbers: list[int], total: int
) -> None:
    response = api.client.get(f"/studies/{study}/trials?{query}")
    assert response.status_code == 200, response.text
    page = response.json()
    assert [t["number"] for t in page["items"]] == numbers
    assert page["total"] == total


@pytest.mark.parametrize(
    ("query", "words"),
    [("sort=colour", "colour"), ("state=paused", "paused"), ("p_min=abc", "p_min"),
     ("colour_min=1", "colour"), ("order=sideways", "order"), ("limit=0", "limit"),
     ("val_acc_max=nan", "val_acc_max")],
)  # fmt: skip
def test_bad_trial_queries_are_a_422_naming_the_parameter(
    api: Api, study: str, query: str, words: str
) -> None:
    response = api.client.get(f"/studies/{study}/trials?{query}")
    assert response.status_code == 422
    assert words in response.json()["detail"]


def test_a_trial_shows_its_parameters_under_spec_names_and_its_config(
    api: Api, study: str
) -> None:
    body = api.client.get(f"/studies/{study}/trials/1").json()
    assert (body["p"], body["lambda"], body["schedule"], body["from"], body["until"]) == (
        0.6, 1e-2, "early", None, 0.3
    )  # fmt: skip
    assert (body["state"], body["seed"], body["epochs_done"]) == ("completed", 101, 2)
    assert body["final_metrics"] == {"val_acc": pytest.approx(0.54), "sparsity@1e-08": 0.9}
    assert body["best_val_acc"] == pytest.approx(0.54)
    assert body["config"]["lam"] == 1e-2 and body["provenance"] == {}
    assert "lam" not in body and "start" not in body


def test_an_unknown_trial_is_a_404(api: Api, study: str) -> None:
    for path in ("trials/10", "trials/10/metrics"):
        response = api.client.get(f"/studies/{study}/{path}")
        assert response.status_code == 404 and "trial 10" in response.json()["detail"]


def test_metric_curves_by_name(api: Api, study: str) -> None:
    curves = api.client.get(
        f"/studies/{study}/trials/3/metrics", params={"name": ["weight_norm", "lr"]}
    ).json()
    assert curves == {
        "weight_norm": [{"epoch": 1, "value": 5.0}, {"epoch": 2, "value": 4.0}],
        "lr": [],  # asked for, never reported
    }
    every = api.client.get(f"/studies/{study}/trials/3/metrics").json()
    assert sorted(every) == ["val_acc", "weight_norm"]
    assert [p["value"] for p in every["val_acc"]] == pytest.approx([0.3, 0.6])


def test_a_diverged_value_comes_back_as_null(api: Api) -> None:
    with api.sessions.begin() as session:
        study = make_study(session).id
        make_trial(session, study, state="diverged", curves={"train_loss": [2.0, float("nan")]})
    curve = api.client.get(f"/studies/{study}/trials/0/metrics?name=train_loss").json()
    assert curve == {"train_loss": [{"epoch": 1, "value": 2.0}, {"epoch": 2, "value": None}]}


def test_a_trial_shows_its_final_weight_histogram_once_recorded(api: Api, study: str) -> None:
    histogram = {"edges": [-2.0, -1.0, 0.0], "counts": [3, 5], "zeros": 2, "total": 10}
    with api.sessions.begin() as session:
        trial = repository.get_trial(session=session, study_id=study, number=2)
        repository.update_trial_info(
            session=session, trial_id=trial.id, weight_histogram=histogram
        )
    assert api.client.get(f"/studies/{study}/trials/2").json()["weight_histogram"] == histogram
    # a trial that never finished its last epoch has none
    assert api.client.get(f"/studies/{study}/trials/7").json()["weight_histogram"] is None
