"""The SqlRecorder driven directly with Ray Tune's own Trial objects, on a real SQLite database."""

from __future__ import annotations

from typing import Any

from factories import database, make_study
from ray.tune.experiment import Trial
from sqlalchemy import func, select

from studies.db import Metric
from studies.db import Trial as TrialRow
from workers.recorder import SqlRecorder
from workers.tune_adapter import CONFIG_NUMBER, CONFIG_PARAMS, CONFIG_REPLICATE, TRIAL_INFO

EPOCHS = 3
METRICS = {"val_acc": 0.5, "val_loss": 1.0, "sparsity": 0.25}


def tune_trial(trial_id: str, number: int = 0) -> Trial:
    config = {"p": 0.8, "lam": 1e-3, "schedule": "full", "seed": 0}
    params = {"p": 0.8, "lambda": 1e-3, "schedule": "full"}  # what the searcher suggested
    config |= {CONFIG_NUMBER: number, CONFIG_REPLICATE: 0, CONFIG_PARAMS: params}
    return Trial("recorder-test", config=config, trial_id=trial_id, stub=True)


def result(epoch: int, node: str | None) -> dict[str, Any]:
    # what Tune hands callbacks: our metrics plus its bookkeeping keys; the trainable's first
    # report of every run (a retry too) carries its Ray node
    info = {TRIAL_INFO: {"node": node}} if node else {}
    return {**METRICS, "epoch": epoch, "node_ip": "10.0.0.1", "training_iteration": epoch, **info}


def recorded(url: str, study_id: str) -> tuple[TrialRow, int]:
    with database(url) as sessions, sessions() as session:
        row = session.scalars(select(TrialRow).where(TrialRow.study_id == study_id)).one()
        count = session.scalar(select(func.count()).select_from(Metric))
    return row, int(count or 0)


def new_recorder(url: str) -> tuple[SqlRecorder, str]:
    with database(url) as sessions, sessions() as session:
        study_id = make_study(session).id
        session.commit()
    recorder = SqlRecorder(url, study_id, epochs=EPOCHS)
    return recorder, study_id


def test_every_epoch_is_stored_and_the_node_follows_a_retry(sqlite_url: str) -> None:
    recorder, study_id = new_recorder(sqlite_url)
    trial = tune_trial("a0001")
    recorder.on_trial_start(0, [], trial)
    for epoch, node in [(1, "node-a"), (2, None), (2, "node-b"), (3, None)]:
        trial.update_last_result(result(epoch, node))
        recorder.on_trial_result(epoch, [], trial, trial.last_result)
    recorder.on_trial_complete(EPOCHS, [], trial)
    row, metric_rows = recorded(sqlite_url, study_id)
    assert (row.state, row.node, row.epochs_done) == ("completed", "node-b", EPOCHS)
    assert row.params == {"p": 0.8, "lambda": 1e-3, "schedule": "full"}
    assert metric_rows == EPOCHS * len(METRICS)  # the re-delivered epoch 2 is not duplicated


def test_a_trial_whose_worker_died_before_it_started_is_recorded_failed(sqlite_url: str) -> None:
    recorder, study_id = new_recorder(sqlite_url)
    recorder.on_trial_error(0, [], tune_trial("b0001"))
    row, metric_rows = recorded(sqlite_url, study_id)
    assert (row.state, row.error, metric_rows) == ("failed", "the trial's worker died", 0)
