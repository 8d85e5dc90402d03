"""A study's progress counts the suggestions its search did not train again (duplicates)."""

from __future__ import annotations

import optuna
from api_harness import Api
from factories import make_study, make_trial

from studies.optuna_tables import create_optuna_tables
from studies.repository import DUPLICATE_ATTR


def test_duplicates_count_as_done_in_the_progress(api: Api) -> None:
    with api.sessions() as session:
        study = make_study(session)  # 4 configurations x 2 seeds
        for replicate in (0, 1):
            make_trial(session, study.id, replicate=replicate, config_id=0)
        session.commit()
    create_optuna_tables(api.database_url)
    storage = optuna.storages.RDBStorage(api.database_url)
    searched = optuna.create_study(storage=storage, study_name=study.optuna_study_name)
    searched.add_trial(optuna.trial.create_trial(value=0.9))
    repeat = optuna.trial.create_trial(value=0.9, user_attrs={DUPLICATE_ATTR: 0})
    searched.add_trial(repeat)
    storage.engine.dispose()

    progress = api.client.get(f"/studies/{study.id}").json()["progress"]
    assert progress["budget"] == 8
    assert progress["duplicates"] == 1
    assert progress["finished"] == 2 + 1 * 2  # two runs trained, one configuration repeated
