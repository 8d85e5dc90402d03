"""The SQL views and the README's example queries, run as written on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from factories import database, make_study, make_trial
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session, sessionmaker

from studies.views import (
    EPOCH_METRICS,
    EPOCH_METRICS_COLUMNS,
    EXAMPLE_QUERIES,
    TRIAL_SUMMARY,
    TRIAL_SUMMARY_COLUMNS,
    readme_fragment,
)

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _seed(session: Session) -> None:
    """Six trials of "quickstart" (four completed, one failed, one running), one elsewhere."""
    study = make_study(session).id
    rows = [
        # config, replicate, p, lam, schedule, state, val_acc, sparsity, sparsity@1e-08, curves
        (0, 0, 0.8, 1e-3, "full", "completed", 0.90, 0.80, 0.70,
         [0.5, 0.8, 0.9], [0.1, 0.6, 0.8]),
        (0, 1, 0.8, 1e-3, "full", "completed", 0.88, 0.84, 0.75,
         [0.6, 0.7, 0.88], [0.2, 0.4, 0.84]),
        (1, 0, 1.6, 1e-2, "early", "completed", 0.905, 0.30, 0.20,
         [0.4, 0.8, 0.905], [0.0, 0.1, 0.3]),
        (1, 1, 1.6, 1e-2, "early", "completed", 0.85, 0.10, 0.05,
         [0.5, 0.8, 0.85], [0.0, 0.05, 0.1]),
        (2, 0, 0.6, 1e-4, "early", "failed", None, None, None, [0.3], [0.6]),
        (3, 0, 1.1, 5e-2, "full", "running", None, None, None, [0.45], None),
    ]  # fmt: skip
    for config, replicate, p, lam, schedule, state, acc, sparsity, s8, accs, sparse in rows:
        curves = {"val_acc": accs} if sparse is None else {"val_acc": accs, "sparsity": sparse}
        final = {"val_acc": acc, "sparsity": sparsity, "sparsity@1e-08": s8}
        make_trial(session, study, state=state, p=p, lam=lam, schedule=schedule,
                   until=0.5 if schedule == "early" else None, config_id=config,
                   replicate=replicate, seed=replicate, final=final, curves=curves)  # fmt: skip
    other = make_study(session, name="other").id
    make_trial(session, other, p=0.8, final={"val_acc": 0.99, "sparsity": 0.9},
               curves={"val_acc": [0.99], "sparsity": [0.9]})  # fmt: skip
    none = make_study(session, name="baseline").id
    make_trial(session, none, family="none", p=None, lam=None, final={"val_acc": 0.5})


@pytest.fixture(params=BACKENDS)
def sessions(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with database(url) as sessions:
        with sessions.begin() as session:
            _seed(session)
        yield sessions


def _run(sessions: sessionmaker[Session], sql: str) -> list[tuple]:
    with sessions() as session:
        return [tuple(row) for row in session.execute(text(sql))]


# the rows each example query must return, worked out by hand from _seed
EXPECTED = [
    # by schedule and p bucket: early = trials 2, 3 (p 1.6 -> 1.5); full = trials 0, 1 (0.75)
    [("early", 1.5, 2, (0.905 + 0.85) / 2, 0.20), ("full", 0.75, 2, 0.89, 0.82)],
    # best 0.905, so val_acc >= 0.895 keeps trials 0 and 2; sparsest first
    [(0, "pwd", 0.8, 1e-3, "full", 0.90, 0.80, 0.70),
     (2, "pwd", 1.6, 1e-2, "early", 0.905, 0.30, 0.20)],
    # curves by schedule: early = trials 2, 3, 4; full = trials 0, 1, 5 (any state)
    [("early", 1, 3, 0.4), ("early", 2, 2, 0.8), ("early", 3, 2, 0.8775),
     ("full", 1, 3, (0.5 + 0.6 + 0.45) / 3), ("full", 2, 2, 0.75), ("full", 3, 2, 0.89)],
    # first epoch with sparsity >= 0.5: trial 4 at 1, trial 0 at 2, trial 1 at 3
    [(4, 0.6, 1e-4, 1), (0, 0.8, 1e-3, 2), (1, 0.8, 1e-3, 3)],
    # per configuration over its completed seeds
    [(0, "pwd", 0.8, 1e-3, "full", 2, 0.89, 0.88, 0.90),
     (1, "pwd", 1.6, 1e-2, "early", 2, 0.8775, 0.85, 0.905)],
]  # fmt: skip


@pytest.mark.parametrize(
    ("title", "expected"), list(zip(EXAMPLE_QUERIES, EXPECTED, strict=True)), ids=range(1, 6)
)
def test_example_queries_return_the_hand_computed_rows(sessions, title: str, expected) -> None:
    rows = _run(sessions, EXAMPLE_QUERIES[title])
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected, strict=True):
        assert len(row) == len(want)
        for got, value in zip(row, want, strict=True):
            assert got == (pytest.approx(value) if isinstance(value, float) else value)


def test_views_have_the_documented_columns(sessions) -> None:
    with sessions() as session:
        inspector = inspect(session.connection())
        for view, columns in ((TRIAL_SUMMARY, TRIAL_SUMMARY_COLUMNS),
                              (EPOCH_METRICS, EPOCH_METRICS_COLUMNS)):  # fmt: skip
            assert view in inspector.get_view_names()
            assert tuple(c["name"] for c in inspector.get_columns(view)) == columns


def test_trial_summary_buckets_and_json_columns(sessions) -> None:
    rows = _run(
        sessions,
        "SELECT study, trial, p_bucket, lam_decade, sparsity_1e_08, sparsity_1e_10, state"
        " FROM dl_trial_summary ORDER BY study, trial",
    )
    assert [r[:2] for r in rows] == [("baseline", 0), ("other", 0)] + [
        ("quickstart", n) for n in range(6)
    ]
    by_trial = {(r[0], r[1]): r[2:] for r in rows}
    assert by_trial[("baseline", 0)] == (None, None, None, None, "completed")  # no p, no λ
    assert by_trial[("quickstart", 0)] == (0.75, pytest.approx(1e-3), 0.70, None, "completed")
    assert by_trial[("quickstart", 2)][:2] == (1.5, pytest.approx(1e-2))
    assert by_trial[("quickstart", 4)][:2] == (0.5, pytest.approx(1e-4))
    assert by_trial[("quickstart", 5)][:2] == (1.0, pytest.approx(1e-2))  # 5e-2, 1.1


def test_the_readme_fragment_prints_every_query_verbatim() -> None:
    fragment = readme_fragment()
    assert fragment.startswith("## Query your sweeps with SQL")
    for title, sql in EXAMPLE_QUERIES.items():
        assert f"**{title}**\n\n```sql\n{sql}\n```" in fragment
