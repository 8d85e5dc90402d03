"""A driver that cannot even begin its study records why: the study fails with the reason.

The driver runs as a Ray Job runs it (`python -m workers.run`), against SQLite; it stops before
Ray would start, so no cluster is needed.
"""

from __future__ import annotations

from pathlib import Path

from engine_support import create_study, driver_env, run_driver
from factories import spec_data

from studies import repository
from studies.db import Study, make_engine, session_factory
from studies.states import StudyState, TrialState

# an address nothing listens on: the driver must fail before it would connect
NO_RAY = "127.0.0.1:1"


def test_a_stored_spec_that_no_longer_loads_fails_the_study_with_its_reason(
    sqlite_url: str, tmp_path: Path
) -> None:
    study_id = create_study(sqlite_url, spec_data())
    sessions = session_factory(make_engine(sqlite_url))
    with sessions() as session:
        # a trial a dead driver left running, and a spec a newer schema no longer accepts
        repository.start_trial(session=session, study_id=study_id, config={"seed": 0})
        study = session.get(Study, study_id)
        assert study is not None
        study.spec = {**study.spec, "task": {**study.spec["task"], "dataset": "mnist-2d"}}
        session.commit()

    output = run_driver(study_id, NO_RAY, driver_env(sqlite_url, tmp_path / "home", tmp_path))

    with sessions() as session:
        study = repository.get_study(session=session, study_id=study_id)
        trials = repository.list_trials(session=session, study_id=study_id).items
    assert study.status == StudyState.FAILED, output
    assert study.error and "ValidationError" in study.error and "mnist-2d" in study.error
    assert [t.state for t in trials] == [TrialState.FAILED]
    assert "driver lost" in (trials[0].error or "")
