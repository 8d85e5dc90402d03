"""The query plans behind the REST API on a sweep of 10,000 trials, on PostgreSQL.

Seeds the same synthetic sweep as bench/query.py (10,000 trials × 30 epochs × 12 metrics) into a
fresh database, runs the repository functions behind the heaviest read endpoints (the trial list
sorted by final val_acc, best per objective, the Pareto/effects columns, one trial's curves),
captures the SQL they send, and prints `EXPLAIN (ANALYZE, BUFFERS)` of the slowest statement of
each of the three endpoints that take longest on the server. The README's SQL section quotes it.

Run: .venv/bin/python bench/explain.py [--trials 10000] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
sys.path.insert(0, str(Path(__file__).resolve().parent))

from query import POSTGRES_URL, postgres_database, seed_decaylab, synthesize

from studies import repository
from studies.db import Trial, make_engine, session_factory
from studies.migrations import upgrade

Statement = tuple[str, Any]


@contextmanager
def captured(engine: Engine) -> Iterator[list[Statement]]:
    """Every SELECT the engine sends while inside, with its parameters."""
    statements: list[Statement] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def endpoints(study_id: str, trial_id: int) -> dict[str, Callable[[Session], Any]]:
    """The repository calls behind the heavy read endpoints."""
    return {
        "GET /trials?sort=val_acc&order=desc (page of 50)": lambda s: repository.list_trials(
            session=s, study_id=study_id, sort_by="val_acc", descending=True, limit=50
        ),
        "GET /best (val_acc, sparsity)": lambda s: repository.best_trials(
            session=s, study_id=study_id, objectives=[("val_acc", "max"), ("sparsity", "max")]
        ),
        "GET /pareto, /effects (columns of completed trials)": lambda s: repository.trial_columns(
            session=s, study_id=study_id, fields=["val_acc", "sparsity"]
        ),
        "GET /trials/{n}/metrics (2 curves)": lambda s: repository.trial_metrics(
            session=s, trial_id=trial_id, names=["val_acc", "weight_norm"]
        ),
    }


def explain(engine: Engine, statement: Statement) -> tuple[float, str]:
    """(server execution ms, the plan) of one captured statement."""
    sql, parameters = statement
    with engine.connect() as connection:
        plan = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", parameters)
        lines = [row[0] for row in plan]
    found = re.search(r"Execution Time: ([0-9.]+) ms", "\n".join(lines))
    return (float(found.group(1)) if found else 0.0), "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--show", type=int, default=3, help="plans printed, slowest first")
    default_url = os.environ.get("DECAYLAB_BENCH_POSTGRES_URL", POSTGRES_URL)
    parser.add_argument("--postgres-url", default=default_url)
    args = parser.parse_args(argv)
    sweep = synthesize(args.trials, args.epochs)
    with postgres_database(args.postgres_url) as url:
        upgrade(url)
        engine = make_engine(url)
        study_id, _ = seed_decaylab(engine, sweep)
        with engine.connect() as connection:
            trial_id = connection.scalar(text(f"SELECT max(id) FROM {Trial.__tablename__}"))
        timed = []
        for name, call in endpoints(study_id, int(trial_id or 0)).items():
            with captured(engine) as statements, session_factory(engine)() as session:
                call(session)
            for statement in statements:
                if Trial.__tablename__ in statement[0] or "dl_metric" in statement[0]:
                    timed.append((*explain(engine, statement), name, statement[0]))
        engine.dispose()
    print(f"PostgreSQL, {args.trials} trials × {args.epochs} epochs × 12 metrics\n")
    slowest: dict[str, tuple[float, str, str, str]] = {}
    for entry in timed:  # an endpoint's slowest statement stands for it
        slowest[entry[2]] = max(entry, slowest.get(entry[2], entry))
    for ms, plan, name, _ in sorted(slowest.values(), reverse=True)[: args.show]:
        print(f"-- {name}: {ms:.2f} ms on the server\n{plan}\n")


if __name__ == "__main__":
    main()
