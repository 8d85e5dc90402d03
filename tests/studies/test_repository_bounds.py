"""The repository's own guards behind the API's bounds, on SQLite and on PostgreSQL: a value no
row can hold is "not found" or InvalidQuery, never a database error (PostgreSQL refuses a NUL
byte and an INTEGER past 32 bits; both overflow an OFFSET past 64 bits)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from factories import database, make_study, make_trial
from sqlalchemy.orm import Session, sessionmaker

from studies import repository as repo
from studies.errors import InvalidQuery, StudyNotFound, TrialNotFound

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def sessions(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with database(url) as factory:
        yield factory


@pytest.fixture
def study(sessions: sessionmaker[Session]) -> str:
    with sessions.begin() as session:
        study_id = make_study(session, status="succeeded").id
        make_trial(session, study_id, final={"val_acc": 0.5})
    return study_id


@pytest.mark.parametrize("study_id", ["\x00", "a" * 37, "a b", "été", ""])
def test_an_id_no_study_can_have_is_not_found(sessions, study_id: str) -> None:
    with sessions() as session, pytest.raises(StudyNotFound):
        repo.get_study(session=session, study_id=study_id)


@pytest.mark.parametrize("number", [-1, 2**31, 2**63, 10**30])
def test_a_number_no_trial_can_have_is_not_found(sessions, study: str, number: int) -> None:
    with sessions() as session, pytest.raises(TrialNotFound, match=str(number)):
        repo.get_trial(session=session, study_id=study, number=number)


def test_the_largest_trial_number_and_offset_are_asked_for_real(sessions, study: str) -> None:
    with sessions() as session, pytest.raises(TrialNotFound):
        repo.get_trial(session=session, study_id=study, number=repo.MAX_TRIAL_NUMBER)
    with sessions() as session:
        page = repo.list_trials(session=session, study_id=study, offset=repo.MAX_OFFSET)
        assert (page.items, page.total) == ([], 1)
        assert repo.list_studies(session=session, offset=repo.MAX_OFFSET).items == []


def test_an_offset_past_64_bits_is_an_invalid_query(sessions, study: str) -> None:
    with sessions() as session:
        with pytest.raises(InvalidQuery, match="offset"):
            repo.list_trials(session=session, study_id=study, offset=2**63)
        with pytest.raises(InvalidQuery, match="offset"):
            repo.list_studies(session=session, offset=2**63)


def test_a_text_field_asked_as_a_number_is_an_invalid_query(sessions, study: str) -> None:
    with sessions() as session:
        with pytest.raises(InvalidQuery, match="'family' is not a number"):
            repo.trial_columns(session=session, study_id=study, fields=["val_acc", "family"])
        with pytest.raises(InvalidQuery, match="metric: 'state' is not a number"):
            repo.best_trials(session=session, study_id=study, objectives=[("state", "max")])
        with pytest.raises(InvalidQuery, match="sort: unknown field 'colour'"):
            repo.list_trials(session=session, study_id=study, sort_by="colour")
        rows = repo.trial_columns(
            session=session, study_id=study, fields=["family", "val_acc"], categories=["family"]
        )
        assert rows == [(0, "pwd", 0.5)]


@pytest.mark.parametrize("status", ["\x00", "paused"])
def test_an_unknown_study_status_is_an_invalid_query_naming_it(sessions, status: str) -> None:
    with sessions() as session, pytest.raises(InvalidQuery, match="status: unknown"):
        repo.list_studies(session=session, status=status)
