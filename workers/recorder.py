"""The one writer of trial and metric rows: a Tune Callback on the study's driver."""

from __future__ import annotations

from typing import Any

from ray import tune
from ray.tune.experiment import Trial
from ray.tune.result import AUTO_RESULT_KEYS
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from studies import repository
from studies.db import make_engine, session_factory
from studies.states import TrialState
from workers.tune_adapter import (
    CONFIG_NUMBER,
    CONFIG_PARAMS,
    CONFIG_REPLICATE,
    EPOCH,
    TRIAL_ERROR,
    TRIAL_INFO,
    trial_outcome,
)

Trials = list[Trial]
Result = dict[str, Any]
NOT_METRICS = {*AUTO_RESULT_KEYS, EPOCH, TRIAL_INFO, TRIAL_ERROR, "config"}


def result_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The metrics of one Tune result: our numbers, without Tune's bookkeeping."""
    return {
        k: float(v)
        for k, v in result.items()
        if k not in NOT_METRICS and isinstance(v, int | float) and not isinstance(v, bool)
    }


class SqlRecorder(tune.Callback):
    """Writes every trial's parameters, per-epoch metrics and outcome to the study's tables.

    It holds a database URL, not a connection: Tune pickles callbacks, and an engine holds locks.
    """

    def __init__(self, database_url: str, study_id: str, *, epochs: int) -> None:
        self.database_url = database_url
        self.study_id = study_id
        self.epochs = epochs
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self._trial_rows: dict[str, int] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_engine"] = state["_sessions"] = None
        return state

    def _session(self) -> Session:
        if self._sessions is None:
            self._engine = make_engine(self.database_url)
            self._sessions = session_factory(self._engine)
        return self._sessions()

    def on_trial_start(self, iteration: int, trials: Trials, trial: Trial, **info: Any) -> None:
        """Insert the trial's row (idempotent: a retried trial keeps its row)."""
        config = trial.config
        # what the searcher suggested, by the spec's names: parameters inactive under `when`
        # are absent, not rebuilt from the flattened config
        params = dict(config.get(CONFIG_PARAMS, {}))
        with self._session() as session:
            row = repository.start_trial(
                session=session,
                study_id=self.study_id,
                tune_trial_id=trial.trial_id,
                config_id=config[CONFIG_NUMBER],
                optuna_trial_number=config[CONFIG_NUMBER],
                replicate=config[CONFIG_REPLICATE],
                params=params,
                config={k: v for k, v in config.items() if not k.startswith("_")},
            )
            session.commit()
            self._trial_rows[trial.trial_id] = row.id

    def on_trial_result(
        self, iteration: int, trials: Trials, trial: Trial, result: Result, **info: Any
    ) -> None:
        """Upsert one epoch's metrics (re-delivery after a retry overwrites, never duplicates)."""
        trial_row = self._trial_rows[trial.trial_id]
        with self._session() as session:
            # the first report of every run of the trial (a retry too) says where it runs
            if TRIAL_INFO in result:
                repository.update_trial_info(
                    session=session, trial_id=trial_row, **result[TRIAL_INFO]
                )
            metrics = result_metrics(result)
            if metrics and result.get(EPOCH, 0) >= 1:
                repository.record_metrics(
                    session=session, trial_id=trial_row, epoch=result[EPOCH], metrics=metrics
                )
            session.commit()

    def on_trial_complete(self, iteration: int, trials: Trials, trial: Trial, **info: Any) -> None:
        """Close the trial as completed, pruned, diverged or failed (a trial that raised)."""
        result = trial.last_result or {}
        self._finish(trial, trial_outcome(result, self.epochs, False), result.get(TRIAL_ERROR))

    def on_trial_error(self, iteration: int, trials: Trials, trial: Trial, **info: Any) -> None:
        """Close a trial whose worker kept dying after its retries."""
        error = trial.get_error()
        self._finish(trial, "failed", str(error)[-4000:] if error else "the trial's worker died")

    def _finish(self, trial: Trial, state: str, error: str | None) -> None:
        if trial.trial_id not in self._trial_rows:  # its actor failed before the trial started
            self.on_trial_start(0, [], trial)
        result = trial.last_result or {}
        with self._session() as session:
            repository.finish_trial(
                session=session,
                trial_id=self._trial_rows[trial.trial_id],
                state=state,
                final_metrics=result_metrics(result),
                error=error,
                diverged_epoch=result.get(EPOCH) if state == TrialState.DIVERGED else None,
            )
            session.commit()
