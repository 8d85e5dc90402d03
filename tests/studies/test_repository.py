"""The repository contract, run on SQLite and on PostgreSQL; migrations beside Optuna's tables."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import optuna
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from studies import repository as repo
from studies.db import VERSION_TABLE, Base, Metric, Trial, make_engine, session_factory
from studies.errors import InvalidQuery, InvalidTransition, StudyNotFound, TrialNotFound
from studies.migrations import alembic_config, current_revision, head_revision, upgrade
from studies.migrations import main as migrations_main
from studies.search_space import resolve_config
from studies.spec import StudySpec

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPEC = StudySpec.model_validate(
    {
        "name": "contract",
        "task": {"dataset": "digits", "model": "mlp", "epochs": 5},
        "regularizer": {"family": "pwd", "lambda": 1e-3},
        "space": {
            "p": {"type": "float", "low": 0.5, "high": 2.0},
            "schedule": {"type": "categorical", "choices": ["full", "early"]},
            "until": {"type": "float", "low": 0.1, "high": 0.6, "when": {"schedule": "early"}},
        },
    }
)
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
OUR_TABLES = {"dl_study", "dl_trial", "dl_metric", VERSION_TABLE}
OPTUNA_TABLES = {"studies", "trials", "trial_params", "version_info", "alembic_version"}


def config(seed: int = 0, **params: Any) -> dict[str, Any]:
    return resolve_config(SPEC, params, seed)


@pytest.fixture(scope="session")
def migrated_postgres_url(postgres_url: str) -> str:
    upgrade(postgres_url)
    return postgres_url


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Engine]:
    if request.param == "sqlite":
        upgrade(sqlite_url)
        engine = make_engine(sqlite_url)
    else:
        engine = make_engine(request.getfixturevalue("migrated_postgres_url"))
        with engine.begin() as connection:  # one migrated database, emptied for each test
            connection.execute(text("TRUNCATE dl_metric, dl_trial, dl_study"))
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


def _count(session: Session, model: Any) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def _study(sessions: sessionmaker[Session]) -> str:
    with sessions.begin() as session:
        return repo.create_study(session=session, spec=SPEC).id


def _trial(sessions: sessionmaker[Session], study_id: str, number: int, **params: Any) -> int:
    with sessions.begin() as session:
        cfg = config(seed=number, **params)
        trial = repo.start_trial(
            session=session, study_id=study_id, number=number, config=cfg, params=params
        )
        return trial.id


class TestRepositoryContract:
    """The same expectations, whichever database the service runs on."""

    def test_studies_are_created_listed_newest_first_and_paginated(self, sessions) -> None:
        ids = [_study(sessions) for _ in range(3)]
        with sessions() as session:
            page = repo.list_studies(session=session, limit=2)
            assert page.total == 3 and [s.id for s in page.items] == ids[::-1][:2]
            assert [s.id for s in repo.list_studies(session=session, offset=2).items] == ids[:1]
            study = repo.get_study(session=session, study_id=ids[0])
            assert StudySpec.model_validate(study.spec) == SPEC
            assert study.status == "queued" and study.optuna_study_name.endswith(ids[0])
            assert study.created_at.tzinfo is not None
            assert repo.list_studies(session=session, status="running").total == 0
            with pytest.raises(StudyNotFound):
                repo.get_study(session=session, study_id="no-such-study")

    @pytest.mark.parametrize(
        ("path", "allowed"),
        [
            (["running"], True),
            (["running", "succeeded"], True),
            (["running", "failed", "queued"], True),  # resume after a failure
            (["running", "queued"], True),  # resume after a lost driver
            (["cancelled", "running"], True),
            (["running", "running"], True),  # repeating a status is a no-op
            (["succeeded"], False),  # must run first
            (["running", "succeeded", "running"], False),  # a success is final
            (["running", "succeeded", "failed"], False),
            (["queued", "paused"], False),  # not a status
        ],
    )
    def test_study_status_transitions(self, sessions, path: list[str], allowed: bool) -> None:
        study_id = _study(sessions)
        with sessions.begin() as session:
            for status in path[:-1]:
                repo.set_study_status(session=session, study_id=study_id, status=status)
        with sessions.begin() as session:
            if not allowed:
                with pytest.raises(InvalidTransition):
                    repo.set_study_status(session=session, study_id=study_id, status=path[-1])
                return
            study = repo.set_study_status(
                session=session, study_id=study_id, status=path[-1], error="why"
            )
        assert study.status == path[-1]
        assert (study.finished_at is not None) == (
            path[-1] in ("succeeded", "failed", "cancelled")
        )
        assert (study.started_at is not None) == ("running" in path)
        assert study.error == ("why" if study.finished_at else None)

    def test_delete_study_removes_its_trials_and_metrics(self, sessions) -> None:
        keep, gone = _study(sessions), _study(sessions)
        for study_id in (keep, gone):
            trial_id = _trial(sessions, study_id, 0)
            with sessions.begin() as session:
                repo.record_metrics(session=session, trial_id=trial_id, epoch=1, metrics={"a": 1})
        with sessions.begin() as session:
            repo.set_study_status(session=session, study_id=gone, status="running")
            with pytest.raises(InvalidTransition):
                repo.delete_study(session=session, study_id=gone)
            repo.set_study_status(session=session, study_id=gone, status="cancelled")
            repo.delete_study(session=session, study_id=gone)
        with sessions() as session:
            assert (_count(session, Trial), _count(session, Metric)) == (1, 1)
            with pytest.raises(StudyNotFound):
                repo.delete_study(session=session, study_id=gone)

    def test_start_trial_is_idempotent_and_fills_typed_columns(self, sessions) -> None:
        study_id = _study(sessions)
        first = _trial(sessions, study_id, 0, p=0.8, schedule="early", until=0.25)
        again = _trial(sessions, study_id, 0, p=1.5)
        with sessions.begin() as session:
            by_tune = [
                repo.start_trial(
                    session=session, study_id=study_id, config=config(), tune_trial_id="t_1"
                ).number
                for _ in range(2)
            ]
            decoupled = repo.start_trial(
                session=session, study_id=study_id, config=config(family="decoupled")
            )
            trial = session.get(Trial, first)
            assert trial is not None
            row = (trial.p, trial.lam, trial.schedule, trial.until, trial.start, trial.family)
        assert again == first and row == (0.8, 1e-3, "early", 0.25, None, "pwd")
        assert by_tune == [1, 1] and decoupled.number == 2
        assert decoupled.p is None and decoupled.lam == 1e-3  # p means nothing to AdamW
        with sessions() as session:
            assert _count(session, Trial) == 3
            with pytest.raises(StudyNotFound):
                repo.start_trial(session=session, study_id="nope", number=0, config=config())

    def test_redelivered_epochs_overwrite_and_never_duplicate(self, sessions) -> None:
        trial_id = _trial(sessions, _study(sessions), 0)
        deliveries = [
            (1, {"val_acc": 0.5, "train_loss": 1.0}),
            (1, {"val_acc": 0.6, "train_loss": 0.9}),  # the same epoch again, after a retry
            (2, {"val_acc": 0.4, "train_loss": float("nan")}),
            (2, {"val_acc": 0.4, "train_loss": float("nan")}),
        ]
        for epoch, metrics in deliveries:
            with sessions.begin() as session:
                repo.record_metrics(
                    session=session, trial_id=trial_id, epoch=epoch, metrics=metrics
                )
        with sessions() as session:
            assert _count(session, Metric) == 4
            curves = repo.trial_metrics(session=session, trial_id=trial_id)
            trial = session.get(Trial, trial_id)
            assert trial is not None
            assert (trial.epochs_done, trial.best_val_acc) == (2, 0.6)
            with pytest.raises(TrialNotFound):
                repo.record_metrics(session=session, trial_id=10**6, epoch=1, metrics={"a": 1})
        assert curves == {"val_acc": [(1, 0.6), (2, 0.4)], "train_loss": [(1, 0.9), (2, None)]}

    def test_finish_trial_records_final_metrics_once(self, sessions) -> None:
        study_id = _study(sessions)
        done, diverged = _trial(sessions, study_id, 0), _trial(sessions, study_id, 1)
        final = {"val_acc": 0.91, "sparsity": 0.8, "sparsity@1e-08": 0.7, "test_acc": 0.9}
        with sessions.begin() as session:
            repo.finish_trial(
                session=session, trial_id=done, state="completed", final_metrics=final
            )
            repo.finish_trial(
                session=session,
                trial_id=diverged,
                state="diverged",
                final_metrics={"val_loss": math.inf},
                diverged_epoch=3,
            )
        with sessions.begin() as session:
            again = repo.finish_trial(session=session, trial_id=done, state="completed")
            assert again.final_metrics == final  # repeating the same end changes nothing
            for state in ("failed", "running"):
                with pytest.raises(InvalidTransition):
                    repo.finish_trial(session=session, trial_id=done, state=state)
            row = session.get(Trial, diverged)
            assert row is not None
            assert (row.state, row.val_loss, row.diverged_epoch) == ("diverged", None, 3)
        assert (again.val_acc, again.sparsity, again.test_acc, again.best_val_acc) == (
            0.91, 0.8, 0.9, 0.91,
        )  # fmt: skip
        assert again.finished_at is not None and again.finished_at.tzinfo == UTC

    def test_running_trials_are_marked_and_counted(self, sessions) -> None:
        study_id, other = _study(sessions), _study(sessions)
        trial_ids = [_trial(sessions, study_id, n) for n in range(4)]
        _trial(sessions, other, 0)
        with sessions.begin() as session:
            repo.finish_trial(session=session, trial_id=trial_ids[0], state="completed")
            marked = repo.mark_running_trials(
                session=session, study_id=study_id, state="failed", error="driver lost"
            )
            counts = repo.count_trials_by_state(session=session, study_id=study_id)
            page = repo.list_trials(session=session, study_id=study_id, states=["failed"])
        assert marked == 3
        assert counts == {"running": 0, "completed": 1, "pruned": 0, "failed": 3,
                          "diverged": 0, "cancelled": 0}  # fmt: skip
        assert {t.error for t in page.items} == {"driver lost"}
        with sessions() as session:
            assert repo.count_trials_by_state(session=session, study_id=other)["running"] == 1

    @pytest.fixture
    def ten_trials(self, sessions) -> str:
        """Trials 0-9: p = 0.5 + 0.1·n, early for even n, val_acc = 0.1·n except trial 9."""
        study_id = _study(sessions)
        for n in range(10):
            schedule = {"schedule": "early", "until": 0.3} if n % 2 == 0 else {"schedule": "full"}
            trial_id = _trial(sessions, study_id, n, p=round(0.5 + 0.1 * n, 2), **schedule)
            if n == 9:
                continue  # still running, no metrics
            with sessions.begin() as session:
                metrics = {"val_acc": n / 10, "sparsity@1e-08": 1 - n / 10}
                state = "pruned" if n in (3, 4) else "completed"
                repo.finish_trial(
                    session=session, trial_id=trial_id, state=state, final_metrics=metrics
                )
        return study_id

    @pytest.mark.parametrize(
        ("query", "numbers", "total"),
        [
            ({}, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 10),
            ({"states": ["pruned"]}, [3, 4], 2),
            ({"ranges": {"p": (0.7, 1.0)}}, [2, 3, 4, 5], 4),
            ({"ranges": {"p": (None, 0.6)}, "one_of": {"schedule": ["full"]}}, [1], 1),
            ({"one_of": {"schedule": ["early"]}, "states": ["completed"]}, [0, 2, 6, 8], 4),
            ({"ranges": {"val_acc": (0.75, None)}}, [8], 1),
            ({"sort_by": "val_acc", "descending": True, "limit": 3}, [8, 7, 6], 10),
            ({"sort_by": "val_acc", "limit": 3, "offset": 7}, [7, 8, 9], 10),  # NULL last
            ({"sort_by": "sparsity@1e-08", "limit": 2}, [8, 7], 10),  # a JSON-only metric
            ({"sort_by": "p", "descending": True, "limit": 2, "offset": 1}, [8, 7], 10),
        ],
    )
    def test_list_trials_filters_sorts_and_paginates(
        self, sessions, ten_trials: str, query: dict[str, Any], numbers: list[int], total: int
    ) -> None:
        with sessions() as session:
            page = repo.list_trials(session=session, study_id=ten_trials, **query)
        assert [t.number for t in page.items] == numbers
        assert page.total == total

    @pytest.mark.parametrize(
        "query",
        [{"sort_by": "colour"}, {"ranges": {"epochs": (1, 2)}}, {"one_of": {"p": [1]}},
         {"limit": 0}, {"offset": -1}],
    )  # fmt: skip
    def test_list_trials_refuses_unknown_fields(
        self, sessions, ten_trials: str, query: dict[str, Any]
    ) -> None:
        with sessions() as session, pytest.raises(InvalidQuery):
            repo.list_trials(session=session, study_id=ten_trials, **query)


@pytest.fixture(params=BACKENDS)
def fresh_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    if request.param == "sqlite":
        return sqlite_url
    return request.getfixturevalue("make_postgres_database")()


def _tables(url: str) -> tuple[set[str], str | None]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            optuna_version = connection.scalar(text("SELECT version_num FROM alembic_version"))
            return set(inspect(connection).get_table_names()), optuna_version
    finally:
        engine.dispose()


def our_revisions() -> set[str]:
    return {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


@pytest.mark.parametrize("optuna_first", [True, False], ids=["optuna-first", "ours-first"])
def test_migrations_sit_beside_optuna_storage(fresh_url: str, optuna_first: bool) -> None:
    def use_optuna() -> None:
        storage = optuna.storages.RDBStorage(fresh_url)
        study = optuna.create_study(storage=storage, study_name="neighbour", load_if_exists=True)
        study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
        storage.engine.dispose()

    steps = [use_optuna, lambda: upgrade(fresh_url)]
    for step in steps if optuna_first else steps[::-1]:
        step()
    upgrade(fresh_url)  # a second upgrade is a no-op
    use_optuna()
    tables, optuna_version = _tables(fresh_url)
    assert tables >= OUR_TABLES | OPTUNA_TABLES
    head = head_revision()
    assert head is not None and current_revision(fresh_url) == head
    assert optuna_version is not None and optuna_version not in our_revisions()
    storage = optuna.storages.RDBStorage(fresh_url)
    assert len(optuna.load_study(study_name="neighbour", storage=storage).trials) == 4
    storage.engine.dispose()


def test_the_upgrade_command_sets_up_optuna_tables_too(fresh_url: str) -> None:
    # what the service does at start: no two study drivers then race to create Optuna's tables
    migrations_main(["upgrade", fresh_url])
    tables, optuna_version = _tables(fresh_url)
    assert tables >= OUR_TABLES | OPTUNA_TABLES and optuna_version not in (None, *our_revisions())
    assert current_revision(fresh_url) == head_revision()


def test_migrated_schema_matches_the_models(fresh_url: str) -> None:
    upgrade(fresh_url)
    engine = make_engine(fresh_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table": VERSION_TABLE, "compare_type": True}
            )
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
