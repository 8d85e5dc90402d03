"""Best, Pareto, effects and export over HTTP, against numbers computed here independently."""

from __future__ import annotations

import io
import random
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from api_harness import Api
from factories import make_study, make_trial
from scipy import stats

# ---------------------------------------------------------------- Pareto and best


def _random_trials(seed: int) -> list[dict[str, Any]]:
    """Forty trials on a coarse grid (ties and duplicates), some unfinished or incomplete."""
    rng = random.Random(seed)
    trials = []
    for _ in range(40):
        state = rng.choice(["completed"] * 6 + ["failed", "pruned"])
        final = {
            "val_acc": rng.choice([0.5, 0.6, 0.7, 0.8, 0.9]),
            "sparsity": rng.choice([0.0, 0.25, 0.5, 0.75, None]),
            "weight_norm": rng.choice([1.0, 2.0, 3.0]),
            "sparsity@1e-08": rng.choice([0.1, 0.2, 0.3]),
        }
        trials.append({"state": state, "final": final})
    return trials


@pytest.fixture
def random_study(api: Api) -> tuple[str, list[dict[str, Any]]]:
    trials = _random_trials(seed=7)
    with api.sessions.begin() as session:
        study = make_study(session, status="succeeded").id
        for trial in trials:
            make_trial(session, study, state=trial["state"], final=trial["final"])
    return study, trials


def _brute_force(trials: list[dict[str, Any]], axes: list[tuple[str, str]]) -> set[int]:
    """Numbers of the completed trials no other completed trial dominates."""
    sign = {"max": 1.0, "min": -1.0}
    points = {
        n: [sign[mode] * t["final"][m] for m, mode in axes]
        for n, t in enumerate(trials)
        if t["state"] == "completed" and all(t["final"][m] is not None for m, _ in axes)
    }

    def dominated(a: list[float]) -> bool:
        return any(
            all(y >= x for x, y in zip(a, b, strict=True)) and b != a for b in points.values()
        )

    return {n for n, point in points.items() if not dominated(point)}


@pytest.mark.parametrize(
    ("query", "axes"),
    [
        ("", [("val_acc", "max"), ("sparsity", "max")]),  # the study's objectives
        ("?x=val_acc&y=weight_norm", [("val_acc", "max"), ("weight_norm", "min")]),
        ("?x=sparsity@1e-08&y=val_acc&x_mode=min",
         [("sparsity@1e-08", "min"), ("val_acc", "max")]),
    ],
)  # fmt: skip
def test_the_pareto_front_equals_a_brute_force_one(api: Api, random_study, query, axes) -> None:
    study, trials = random_study
    front = api.client.get(f"/studies/{study}/pareto{query}").json()
    expected = _brute_force(trials, axes)
    assert 0 < len(expected) < 40
    assert {item["trial"]["number"] for item in front["items"]} == expected
    assert front["metrics"] == [m for m, _ in axes] and front["modes"] == [d for _, d in axes]
    considered = [t for t in trials if t["state"] == "completed"]
    assert front["considered"] == sum(all(t["final"][m] is not None for m, _ in axes)
                                      for t in considered)  # fmt: skip
    first = [item["values"][axes[0][0]] for item in front["items"]]
    assert first == sorted(first, reverse=axes[0][1] == "max")  # best first on the first axis
    for item in front["items"]:
        trial = trials[item["trial"]["number"]]
        assert item["values"] == {m: trial["final"][m] for m, _ in axes}


@pytest.mark.parametrize(
    ("query", "words"),
    [("x=val_acc", "y: give both"), ("y=val_acc", "x: give both"),
     ("x=angular_update&y=val_acc", "x_mode"), ("x=colour&y=val_acc", "colour"),
     ("x=val_acc&y=sparsity&y_mode=up", "y_mode")],
)  # fmt: skip
def test_bad_pareto_axes_are_a_422(api: Api, random_study, query: str, words: str) -> None:
    response = api.client.get(f"/studies/{random_study[0]}/pareto?{query}")
    assert response.status_code == 422 and words in response.json()["detail"]


def test_best_is_the_best_completed_trial_per_objective(api: Api, random_study) -> None:
    study, trials = random_study
    done = [(n, t["final"]) for n, t in enumerate(trials) if t["state"] == "completed"]
    best_acc = min((-f["val_acc"], n) for n, f in done)[1]  # lowest number among ties
    best_sparsity = min((-f["sparsity"], n) for n, f in done if f["sparsity"] is not None)[1]
    best = api.client.get(f"/studies/{study}/best").json()
    assert [(b["metric"], b["mode"], b["trial"]["number"]) for b in best] == [
        ("val_acc", "max", best_acc), ("sparsity", "max", best_sparsity)
    ]  # fmt: skip
    lightest = min((f["weight_norm"], n) for n, f in done)[1]
    asked = api.client.get(f"/studies/{study}/best?metric=weight_norm").json()
    assert [(b["mode"], b["trial"]["number"]) for b in asked] == [("min", lightest)]


def test_best_before_any_trial_completes_is_empty_and_modes_must_be_known(api: Api) -> None:
    with api.sessions.begin() as session:
        study = make_study(session, status="running").id
        make_trial(session, study, state="running")
    best = api.client.get(f"/studies/{study}/best").json()
    assert [(b["metric"], b["trial"]) for b in best] == [("val_acc", None), ("sparsity", None)]
    response = api.client.get(f"/studies/{study}/best?metric=angular_update")
    assert response.status_code == 422 and "mode" in response.json()["detail"]
    response = api.client.get(f"/studies/{study}/best?metric=angular_update&mode=max")
    assert response.status_code == 200


# ---------------------------------------------------------------- effects


def _expected_level(values: list[float]) -> dict[str, Any]:
    """mean, std, count and 95% interval, with numpy and scipy (not studies.analysis)."""
    data = np.array(values)
    if len(data) < 2:
        return {"count": len(data), "mean": float(data.mean()), "std": None,
                "ci_low": None, "ci_high": None}  # fmt: skip
    low, high = stats.t.interval(0.95, len(data) - 1, loc=data.mean(), scale=stats.sem(data))
    return {"count": len(data), "mean": data.mean(), "std": data.std(ddof=1),
            "ci_low": low, "ci_high": high}  # fmt: skip


@pytest.fixture
def effect_study(api: Api) -> str:
    rows = [  # family, p, λ, schedule, state, val_acc
        ("pwd", 0.5, 1e-4, "full", "completed", 0.80),
        ("pwd", 0.9, 1e-3, "full", "completed", 0.82),
        ("pwd", 1.0, 1e-2, "full", "completed", 0.85),
        ("pwd", 1.4, 1e-3, "early", "completed", 0.81),
        ("pwd", 2.0, 1e-2, "early", "completed", 0.86),
        ("decoupled", None, 1e-2, "late", "completed", 0.70),
        ("none", None, None, "early", "completed", 0.75),
        ("pwd", 1.2, 1e-3, "full", "failed", 0.10),  # not a result
    ]
    with api.sessions.begin() as session:
        study = make_study(session, status="succeeded").id
        for family, p, lam, schedule, state, acc in rows:
            make_trial(session, study, family=family, p=p, lam=lam, schedule=schedule,
                       state=state, final={"val_acc": acc})  # fmt: skip
    return study


@pytest.mark.parametrize(
    ("query", "levels"),
    [
        ("factor=schedule", {"early": [0.81, 0.86, 0.75], "full": [0.80, 0.82, 0.85],
                             "late": [0.70]}),
        ("factor=family", {"decoupled": [0.70], "none": [0.75],
                           "pwd": [0.80, 0.82, 0.85, 0.81, 0.86]}),
        # p over [0.5, 2.0] in 3 buckets of 0.5; families without p have no level
        ("factor=p&buckets=3", {"[0.5, 1)": [0.80, 0.82], "[1, 1.5)": [0.85, 0.81],
                                "[1.5, 2]": [0.86]}),
        # λ over [1e-4, 1e-2] in 2 log buckets of one decade each
        ("factor=lambda&buckets=2", {"[0.0001, 0.001)": [0.80],
                                     "[0.001, 0.01]": [0.82, 0.85, 0.81, 0.86, 0.70]}),
    ],
)  # fmt: skip
def test_effects_per_level_match_numpy_and_scipy(
    api: Api, effect_study: str, query: str, levels: dict[str, list[float]]
) -> None:
    response = api.client.get(f"/studies/{effect_study}/effects?{query}&metric=val_acc")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["metric"] == "val_acc" and body["confidence"] == 0.95
    assert [level["level"] for level in body["levels"]] == list(levels)
    for level in body["levels"]:
        expected = _expected_level(levels[level["level"]])
        got = {key: level[key] for key in expected}
        assert got == {k: v if v is None else pytest.approx(v) for k, v in expected.items()}


@pytest.mark.parametrize(
    ("query", "words"),
    [("factor=colour", "factor"), ("metric=colour", "colour"), ("buckets=0", "buckets")],
)
def test_bad_effect_queries_are_a_422(api: Api, effect_study: str, query: str, words: str) -> None:
    response = api.client.get(f"/studies/{effect_study}/effects?{query}")
    assert response.status_code == 422 and words in response.json()["detail"]


# ---------------------------------------------------------------- export


@pytest.fixture
def export_study(api: Api) -> str:
    space = {"p": {"type": "float", "low": 0.4, "high": 2.0},
             "batch_size": {"type": "categorical", "choices": [64, 128]}}  # fmt: skip
    with api.sessions.begin() as session:
        study = make_study(session, status="running", space=space).id
        make_trial(session, study, p=0.8, lam=1e-3, params={"p": 0.8, "batch_size": 64},
                   final={"val_acc": 0.9, "sparsity@1e-08": 0.5},
                   curves={"val_acc": [0.5, 0.9], "loss": [2.0, 1.0]})  # fmt: skip
        make_trial(session, study, state="running", p=1.5, params={"p": 1.5, "batch_size": 128},
                   curves={"val_acc": [0.4]})  # fmt: skip
    return study


def _read(response: Any, fmt: str) -> pd.DataFrame:
    assert response.status_code == 200, response.text
    data = io.BytesIO(response.content)
    return pd.read_csv(data) if fmt == "csv" else pq.read_table(data).to_pandas()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_per_trial_export_holds_params_and_final_metrics(
    api: Api, export_study: str, fmt: str
) -> None:
    response = api.client.get(f"/studies/{export_study}/export?format={fmt}")
    assert f"quickstart-{export_study[:8]}-trials.{fmt}" in response.headers["content-disposition"]
    table = _read(response, fmt)
    assert list(table.columns[:3]) == ["trial", "state", "config_id"]
    assert table["trial"].tolist() == [0, 1]
    assert table["state"].tolist() == ["completed", "running"]
    assert table["p"].tolist() == [0.8, 1.5] and table["lambda"].tolist() == [1e-3, 1e-3]
    assert table["batch_size"].astype(str).tolist() == ["64", "128"]
    assert table["val_acc"].iloc[0] == 0.9 and pd.isna(table["val_acc"].iloc[1])
    assert table["sparsity@1e-08"].iloc[0] == 0.5
    assert "test_acc" in table.columns and "zero_frac" in table.columns
    assert pd.to_datetime(table["started_at"], utc=True).notna().all()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_per_epoch_export_is_a_long_table(api: Api, export_study: str, fmt: str) -> None:
    response = api.client.get(f"/studies/{export_study}/export?format={fmt}&per=epoch")
    table = _read(response, fmt)
    assert list(table.columns) == ["trial", "epoch", "name", "value"]
    assert [tuple(row) for row in table.itertuples(index=False)] == [
        (0, 1, "loss", 2.0), (0, 1, "val_acc", 0.5), (0, 2, "loss", 1.0),
        (0, 2, "val_acc", 0.9), (1, 1, "val_acc", 0.4),
    ]  # fmt: skip


def test_export_errors(api: Api, export_study: str) -> None:
    assert api.client.get("/studies/nope/export").status_code == 404
    response = api.client.get(f"/studies/{export_study}/export?format=xlsx")
    assert response.status_code == 422 and "format" in response.json()["detail"]
