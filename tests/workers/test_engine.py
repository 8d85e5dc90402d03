"""The study engine for real: a local Ray cluster, the driver as its own process, SQLite.

Each test runs a small MNIST-1D study through `python -m workers.run` and then checks what a user
would look at: the study's status, our trial and metric rows, and Optuna's own tables.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from engine_support import (
    create_study,
    driver_env,
    local_ray,
    processes_matching,
    run_driver,
    start_driver,
    wait_until,
)
from sqlalchemy import func, select

from studies import repository
from studies.db import Metric, Trial, make_engine, session_factory

pytestmark = pytest.mark.slow

EPOCHS = 3


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with local_ray(tmp_path_factory.mktemp("ray-home")) as address:
        yield address


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def env(sqlite_url: str, tmp_path: Path, data_dir: Path) -> dict[str, str]:
    return driver_env(sqlite_url, tmp_path / "home", data_dir)


def make_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "engine-test",
        "task": {
            "dataset": "mnist1d",
            "model": "mlp",
            "model_options": {"width": 32},
            "epochs": EPOCHS,
            "batch_size": 256,
            "lr": 3e-3,
        },
        "regularizer": {"family": "pwd"},
        "space": {
            "p": {"type": "float", "low": 0.5, "high": 2.0},
            "lambda": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
            "schedule": {"type": "categorical", "choices": ["full", "early"]},
            "until": {"type": "float", "low": 0.2, "high": 0.6, "when": {"schedule": "early"}},
        },
        "objectives": [{"metric": "val_acc", "mode": "max"}],
        "search": {"sampler": "random", "n_trials": 3, "max_concurrent": 2, "seed": 1},
        "seeds": 2,
    }
    for key, value in overrides.items():
        spec[key] = {**spec[key], **value} if isinstance(value, dict) else value
    return spec


def trials_of(url: str, study_id: str) -> list[Trial]:
    with session_factory(make_engine(url))() as session:
        return list(
            session.scalars(select(Trial).where(Trial.study_id == study_id).order_by(Trial.number))
        )


def study_row(url: str, study_id: str) -> Any:
    with session_factory(make_engine(url))() as session:
        return repository.get_study(session=session, study_id=study_id)


def epochs_by_trial(url: str, study_id: str, name: str = "val_acc") -> dict[int, list[int]]:
    with session_factory(make_engine(url))() as session:
        rows = session.execute(
            select(Trial.number, Metric.epoch)
            .join(Metric, Metric.trial_id == Trial.id)
            .where(Trial.study_id == study_id, Metric.name == name)
            .order_by(Trial.number, Metric.epoch)
        )
        result: dict[int, list[int]] = {}
        for number, epoch in rows:
            result.setdefault(number, []).append(epoch)
        return result


def optuna_study(url: str, study_id: str) -> optuna.Study:
    return optuna.load_study(study_name=f"decaylab-{study_id}", storage=url)


def test_study_completes_and_sql_matches_what_tune_reported(
    ray_address: str, env: dict[str, str], sqlite_url: str
) -> None:
    study_id = create_study(sqlite_url, make_spec())
    output = run_driver(study_id, ray_address, env)

    assert study_row(sqlite_url, study_id).status == "succeeded", output
    trials = trials_of(sqlite_url, study_id)
    assert len(trials) == 6  # 3 configurations × 2 seeds
    assert {t.state for t in trials} == {"completed"}
    # every trial has one row per epoch for each metric, epochs 1..E, nothing twice
    assert all(
        e == list(range(1, EPOCHS + 1)) for e in epochs_by_trial(sqlite_url, study_id).values()
    )
    for trial in trials:
        # conditional parameters exist only where their condition holds
        assert (trial.until is not None) == (trial.schedule == "early"), trial.params
        assert ("until" in trial.params and trial.params["until"] is not None) == (
            trial.schedule == "early"
        )
        assert trial.decayed_param_count and trial.non_decayed_param_count
        assert trial.test_acc is not None and trial.provenance.get("torch")
    # Optuna saw each configuration once, valued at the mean over its two seeds
    by_config: dict[int, list[Trial]] = {}
    for trial in trials:
        by_config.setdefault(trial.config_id, []).append(trial)
    ot_trials = optuna_study(sqlite_url, study_id).get_trials()
    assert len(ot_trials) == 3
    for ot_trial in ot_trials:
        replicates = by_config[ot_trial.number]
        assert sorted(t.seed for t in replicates) == [0, 1]
        assert ot_trial.state == optuna.trial.TrialState.COMPLETE
        assert ot_trial.value == pytest.approx(sum(t.val_acc for t in replicates) / 2, abs=1e-12)
        # the intermediate values Tune handed the searcher equal our per-epoch rows (seed 0)
        first = next(t for t in replicates if t.replicate == 0)
        with session_factory(make_engine(sqlite_url))() as session:
            curve = repository.trial_metrics(session=session, trial_id=first.id, names=["val_acc"])
        assert [v for _, v in sorted(ot_trial.intermediate_values.items())] == pytest.approx(
            [value for _, value in curve["val_acc"]]
        )


def test_multi_objective_study_pareto_set_from_sql(
    ray_address: str, env: dict[str, str], sqlite_url: str
) -> None:
    spec = make_spec(
        objectives=[{"metric": "val_acc", "mode": "max"}, {"metric": "sparsity", "mode": "max"}],
        search={"sampler": "nsga2", "n_trials": 5},
        seeds=1,
    )
    study_id = create_study(sqlite_url, spec)
    output = run_driver(study_id, ray_address, env)
    assert study_row(sqlite_url, study_id).status == "succeeded", output

    trials = [t for t in trials_of(sqlite_url, study_id) if t.state == "completed"]
    assert len(trials) == 5
    points = {t.config_id: (t.val_acc, t.sparsity) for t in trials}

    def dominated(a: tuple[float, float]) -> bool:
        return any(b[0] >= a[0] and b[1] >= a[1] and b != a for b in points.values())

    pareto_from_sql = {n for n, point in points.items() if not dominated(point)}
    pareto_from_optuna = {t.number for t in optuna_study(sqlite_url, study_id).best_trials}
    assert pareto_from_sql == pareto_from_optuna


def test_kill_minus_nine_then_resume_reaches_budget_without_lost_or_duplicated_rows(
    ray_address: str, env: dict[str, str], sqlite_url: str
) -> None:
    spec = make_spec(
        task={"epochs": 6, "model_options": {"width": 256}, "batch_size": 64},
        search={"n_trials": 6},
        seeds=1,
    )
    study_id = create_study(sqlite_url, spec)
    driver = start_driver(study_id, ray_address, env)
    wait_until(
        lambda: (
            sum(t.state == "completed" for t in trials_of(sqlite_url, study_id)) >= 2
            and any(t.state == "running" for t in trials_of(sqlite_url, study_id))
        ),
        timeout=300,
    )
    driver.send_signal(signal.SIGKILL)
    driver.communicate(timeout=30)
    before = trials_of(sqlite_url, study_id)
    left_running = [t.number for t in before if t.state == "running"]
    assert left_running and study_row(sqlite_url, study_id).status == "running"
    # Optuna also holds as RUNNING a suggestion whose Tune trial had not started yet, if any
    asked = optuna_study(sqlite_url, study_id).get_trials(states=[optuna.trial.TrialState.RUNNING])

    output = run_driver(study_id, ray_address, env, resume=True)
    assert study_row(sqlite_url, study_id).status == "succeeded", output
    after = trials_of(sqlite_url, study_id)
    lost = [t for t in after if t.number in left_running]
    assert all(t.state == "failed" and "driver lost" in (t.error or "") for t in lost)
    completed = [t for t in after if t.state == "completed"]
    assert len(completed) == 6  # the budget, counting what finished before the kill
    # completed rows from before the kill are untouched, and nothing ran twice
    assert {t.number for t in before if t.state == "completed"} <= {t.number for t in completed}
    assert len(after) == 6 + len(lost)
    epochs = epochs_by_trial(sqlite_url, study_id)
    assert all(epochs[t.number] == list(range(1, 7)) for t in completed)
    with session_factory(make_engine(sqlite_url))() as session:
        total = session.scalar(select(func.count()).select_from(Metric))
        distinct = session.scalar(
            select(func.count()).select_from(
                select(Metric.trial_id, Metric.epoch, Metric.name).distinct().subquery()
            )
        )
    assert total == distinct
    # the lost configurations ran again: Optuna holds their FAIL (driver lost) and the re-runs
    ot_trials = optuna_study(sqlite_url, study_id).get_trials()
    failed_lost = [t.number for t in ot_trials if t.user_attrs.get("decaylab_driver_lost")]
    assert failed_lost == [t.number for t in asked] and len(asked) >= len(lost)
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in ot_trials) == 6


def test_failed_diverged_and_killed_trials_are_recorded_and_the_study_goes_on(
    ray_address: str, env: dict[str, str], sqlite_url: str
) -> None:
    spec = make_spec(
        task={"optimizer": "sgd", "epochs": 4, "model_options": {"width": 512}, "batch_size": 32},
        space={"lr": {"type": "categorical", "choices": [0.05, 1.0e12]}},
        search={"sampler": "grid", "n_trials": 2, "max_concurrent": 1, "max_failures": 2},
        regularizer={"family": "decoupled", "lambda": 1e-4},
        seeds=2,
    )
    spec["space"] = {"lr": spec["space"]["lr"]}
    study_id = create_study(sqlite_url, spec)
    driver = start_driver(study_id, ray_address, env)
    # kill the worker process of the first trial in the middle of its run: Tune retries it
    wait_until(lambda: bool(epochs_by_trial(sqlite_url, study_id).get(0)), timeout=300)
    workers = processes_matching("ray::ImplicitFunc")
    assert workers, "no trial worker process found"
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    output, _ = driver.communicate(timeout=600)
    assert study_row(sqlite_url, study_id).status == "succeeded", output

    trials = trials_of(sqlite_url, study_id)
    states = {(t.lr, t.replicate): t for t in trials}
    assert {t.state for t in trials if t.lr == 0.05} == {"completed"}
    diverged = [t for t in trials if t.lr == 1.0e12]
    assert diverged and all(t.state == "diverged" and t.diverged_epoch for t in diverged)
    assert len(states) == len(trials) == 4
    # the killed trial restarted from epoch 1 and overwrote, never duplicated, its rows
    epochs = epochs_by_trial(sqlite_url, study_id)
    assert all(epochs[t.number] == list(range(1, 5)) for t in trials if t.state == "completed")
    ot_states = {t.params["lr"]: t.state for t in optuna_study(sqlite_url, study_id).get_trials()}
    assert ot_states == {
        0.05: optuna.trial.TrialState.COMPLETE,
        1.0e12: optuna.trial.TrialState.FAIL,
    }


def test_trials_that_raise_are_failed_with_their_reason_and_the_study_says_why(
    ray_address: str, env: dict[str, str], sqlite_url: str
) -> None:
    # passes every check at submit, and fails in torch: batch norm cannot train on one sample
    task = {"model_options": {"width": 32, "norm": "batchnorm"}, "batch_size": 1}
    spec = make_spec(task=task, seeds=1)
    study_id = create_study(sqlite_url, spec)
    run_driver(study_id, ray_address, env)
    trials = trials_of(sqlite_url, study_id)
    assert len(trials) == 3
    reason = "more than 1 value per channel"
    assert all(t.state == "failed" and reason in (t.error or "") for t in trials)
    study = study_row(sqlite_url, study_id)
    assert study.status == "failed" and reason in (study.error or "")


def test_asha_pruned_trials_are_pruned_in_sql_and_not_complete_in_optuna(
    ray_address: str, env: dict[str, str], sqlite_url: str
) -> None:
    spec = make_spec(
        task={"epochs": 4},
        search={
            "n_trials": 6,
            "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
        },
        seeds=1,
    )
    # learning rates two orders apart make epoch-1 accuracies differ, so ASHA has to cut some
    spec["space"]["lr"] = {"type": "float", "low": 1e-4, "high": 3e-2, "log": True}
    study_id = create_study(sqlite_url, spec)
    output = run_driver(study_id, ray_address, env)
    assert study_row(sqlite_url, study_id).status == "succeeded", output
    trials = trials_of(sqlite_url, study_id)
    pruned = {t.config_id for t in trials if t.state == "pruned"}
    assert pruned, [(t.state, t.epochs_done, t.val_acc) for t in trials]
    assert all(t.epochs_done < 4 for t in trials if t.state == "pruned")
    for ot_trial in optuna_study(sqlite_url, study_id).get_trials():
        expected = "PRUNED" if ot_trial.number in pruned else "COMPLETE"
        assert ot_trial.state.name == expected


def test_sigterm_cancels_the_study_and_leaves_no_trial_running(
    ray_address: str, env: dict[str, str], sqlite_url: str
) -> None:
    spec = make_spec(task={"epochs": 30, "model_options": {"width": 256}}, seeds=1)
    study_id = create_study(sqlite_url, spec)
    driver = start_driver(study_id, ray_address, env)
    wait_until(lambda: any(t.state == "running" for t in trials_of(sqlite_url, study_id)))
    driver.send_signal(signal.SIGTERM)
    output, _ = driver.communicate(timeout=30)
    assert study_row(sqlite_url, study_id).status == "cancelled", output
    trials = trials_of(sqlite_url, study_id)
    assert trials and all(t.state != "running" for t in trials)
    assert any(t.state == "cancelled" for t in trials)
