"""Optuna's tables in our database: creating them, deleting a study's, and what a driver reads.

Every study's search is an Optuna study in Optuna's own RDB tables beside ours. Everything here
goes through Optuna's public API (`optuna.create_study`, `Study.tell`, `optuna.storages`);
importing this module imports optuna (half a second), so the service imports it only where it
needs it.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState
from sqlalchemy import inspect

from studies.db import make_engine

# user attrs on Optuna trials: one a dead driver left running, and one never trained because it
# repeats an earlier configuration (the value: that configuration's trial number)
LOST_ATTR = "decaylab_driver_lost"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def create_optuna_tables(url: str) -> None:
    """Optuna's own tables, created once before any study runs.

    Every driver's RDBStorage creates them when missing, and two drivers starting together on
    a fresh database would race to do it (the loser fails: "table ... already exists").
    """
    optuna.storages.RDBStorage(url).engine.dispose()


def delete_optuna_study(*, database_url: str, study_name: str) -> bool:
    """Delete the Optuna study of this name from the database; False when there is none.

    Run it outside any open transaction of ours: Optuna uses its own engine, and on SQLite
    a write we still hold would block it.
    """
    engine = make_engine(database_url)
    try:
        has_optuna_tables = "studies" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    if not has_optuna_tables:  # never create Optuna's tables just to find nothing in them
        return False
    storage = optuna.storages.RDBStorage(database_url)
    try:
        optuna.delete_study(study_name=study_name, storage=storage)
    except KeyError:
        return False
    finally:
        storage.engine.dispose()
    return True


def recover_lost_trials(study: optuna.Study, storage: optuna.storages.BaseStorage) -> int:
    """Fail the Optuna trials a dead driver left RUNNING and queue their parameters again.

    Args:
        storage: the study's storage; a trial's user attrs can only be set through it once the
            `Trial` that was asked for is gone with its driver.
    """
    lost = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in lost:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_user_attr(trial_id, LOST_ATTR, True)
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)
    return len(lost)


def finished_for_real(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's finished trials, in order, less those failed only because their driver died.

    A trial told as a duplicate of an earlier configuration is one of them: it spent its ask.
    """
    return [
        trial
        for trial in study.get_trials(deepcopy=False, states=FINISHED)
        if not trial.user_attrs.get(LOST_ATTR)
    ]
