"""What the study engine costs on top of the work: our engine against plain Optuna (issue 4).

(a) 32 trials whose work is a fixed 2 s of CPU compute (5 "epochs" of 0.4 s, each reported to Tune
with a real epoch's worth of metrics) run through our engine as `python -m workers.run` runs a
study: the StudySearcher over Optuna's RDB storage, the SqlRecorder and a Tuner with
`max_concurrent_trials=2` and `reuse_actors`, on a local Ray cluster of 2 CPUs and SQLite.
(b) the baseline, measured in the same run: plain Optuna `study.optimize(n_jobs=2)` in one
process, in-memory storage, the same TPE sampler and seed and the same 2 s objective.
The work is a fixed wall time, so load from other processes lengthens neither arm's work, only
its overhead. Ray's start-up is timed apart and left out of the ratio.

Then the rate at which the SqlRecorder writes metric rows: its on_trial_start/result/complete
driven directly with stand-ins for Tune's trials (20 metrics an epoch, as a real trial reports),
on SQLite and on a fresh PostgreSQL database (created, migrated and dropped here).

Run: .venv/bin/python bench/orchestration.py [--trials 32] [--seconds 2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from studies import repository
from studies.db import Metric, Trial, make_engine, session_factory
from studies.migrations import upgrade
from studies.search_space import make_sampler, resolve_config, suggest
from studies.settings import DriverSettings, apply_ray_environment
from studies.spec import StudySpec, validate_spec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from engine_support import local_ray  # noqa: E402  (the tests' Ray cluster, reused)

EPOCHS = 5
CONCURRENT = 2
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# what a real MLP epoch reports (workers/train.py with full metrics): 20 numbers
METRIC_NAMES = (
    *("train_loss", "train_acc", "val_loss", "val_acc", "lr", "wd", "sparsity", "zero_frac"),
    *(f"sparsity@{tau:.0e}" for tau in (1e-10, 1e-8, 1e-6, 1e-4, 1e-3)),
    *("weight_norm", "weight_norm/0.weight", "weight_norm/2.weight", "weight_norm/4.weight"),
    *("angular_update", "pruned_val_acc", "grad_norm"),
)


def bench_spec(n_trials: int) -> StudySpec:
    """A pWD search with a conditional parameter, TPE, 2 concurrent trials, no pruning."""
    return validate_spec(
        {
            "name": "bench-orchestration",
            "task": {"dataset": "mnist1d", "model": "mlp", "epochs": EPOCHS, "lr": 1e-3},
            "regularizer": {"family": "pwd"},
            "space": {
                "p": {"type": "float", "low": 0.5, "high": 2.0},
                "lambda": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
                "schedule": {"type": "categorical", "choices": ["full", "early"]},
                "until": {"type": "float", "low": 0.1, "high": 0.6, "when": {"schedule": "early"}},
            },
            "objectives": [{"metric": "val_acc", "mode": "max"}],
            "search": {
                "sampler": "tpe",
                "n_trials": n_trials,
                "max_concurrent": CONCURRENT,
                "seed": 0,
            },
            "resources": {"cpu": 1, "gpu": 0},
        }
    )


def busy(seconds: float) -> None:
    """Keep one core busy with numpy math for `seconds` of wall time."""
    deadline = time.perf_counter() + seconds
    a = np.random.default_rng(0).standard_normal((64, 64))
    while time.perf_counter() < deadline:
        a = np.tanh(a @ a.T / 64.0)


def fake_metrics(config: dict[str, Any], epoch: int) -> dict[str, float]:
    """An epoch's metrics as a smooth function of the config, so TPE has something to learn."""
    fit = (config["p"] - 1.2) ** 2 + 0.1 * (math.log10(config["lam"]) + 3.0) ** 2
    val_acc = (0.95 - 0.1 * fit) * epoch / EPOCHS
    return {name: val_acc if name == "val_acc" else 0.5 for name in METRIC_NAMES}


def busy_trial(config: dict[str, Any]) -> None:
    """Tune function trainable: 5 epochs of fixed CPU work, each reported like a real trial's."""
    from ray import tune

    seconds = config.get("_bench_seconds", 2.0)
    for epoch in range(1, EPOCHS + 1):
        busy(seconds / EPOCHS)
        tune.report({**fake_metrics(config, epoch), "epoch": epoch})


def optuna_baseline(spec: StudySpec, seconds: float) -> float:
    """(b) wall seconds of plain Optuna, n_jobs=2, in-memory storage, same sampler and work."""

    def objective(trial: optuna.Trial) -> float:
        config = resolve_config(spec, suggest(trial, spec), seed=0)
        for epoch in range(1, EPOCHS + 1):
            busy(seconds / EPOCHS)
            value = fake_metrics(config, epoch)["val_acc"]
            trial.report(value, epoch)
        return value

    study = optuna.create_study(direction="maximize", sampler=make_sampler(spec))
    start = time.perf_counter()
    study.optimize(objective, n_trials=spec.search.n_trials, n_jobs=CONCURRENT)
    return time.perf_counter() - start


@dataclass
class EngineTimes:
    """Wall seconds of one engine run, and where its overhead went."""

    total: float  # execute(): searcher, Tuner, every trial, the last tell
    cold_start: float  # until the first trial runs: Ray starting the 2 trial workers
    between_trials: float  # mean gap on a worker from one trial's end to the next one's start
    in_trial: float  # mean trial wall time beyond its work: each report waits for the driver


def timeline_summary(path: Path, start: float, seconds: float) -> tuple[float, float, float]:
    """(cold start, mean gap between trials on a worker, mean in-trial overhead)."""
    spans = [json.loads(line) for line in path.read_text().splitlines()]
    gaps = []
    for pid in {span["pid"] for span in spans}:
        mine = sorted((s["entered"], s["left"]) for s in spans if s["pid"] == pid)
        gaps += [b[0] - a[1] for a, b in itertools.pairwise(mine)]
    in_trial = statistics.mean(s["left"] - s["entered"] - seconds for s in spans)
    cold = min(s["entered"] for s in spans) - start
    return cold, statistics.mean(gaps) if gaps else 0.0, in_trial


def engine_run(spec: StudySpec, seconds: float, home: Path) -> EngineTimes:
    """(a) our engine on the running Ray cluster, as `python -m workers.run` runs a study."""
    from workers.run import StudyRun, execute

    url = f"sqlite:///{home / f'engine-{uuid.uuid4().hex[:8]}.sqlite'}"
    timeline = home / f"timeline-{uuid.uuid4().hex[:8]}.jsonl"
    upgrade(url)
    with session_factory(make_engine(url))() as session:
        study = repository.create_study(session=session, spec=spec)
        study_id, optuna_name = study.id, study.optuna_study_name
        session.commit()

    def trainable(config: dict[str, Any]) -> None:
        import os

        entered = time.time()
        busy_trial({**config, "_bench_seconds": seconds})
        span = {"pid": os.getpid(), "entered": entered, "left": time.time()}
        with timeline.open("a") as out:
            out.write(json.dumps(span) + "\n")

    settings = DriverSettings(home=home, database_url=url)
    run = StudyRun(study_id, optuna_name, spec, settings, url, trainable=trainable)
    start = time.time()
    status = execute(run, resume=False)
    elapsed = time.time() - start
    assert status == "succeeded", status
    check_recorded(url, spec.search.n_trials)
    return EngineTimes(elapsed, *timeline_summary(timeline, start, seconds))


def check_recorded(url: str, n_trials: int) -> None:
    """The engine really ran: every trial completed, every epoch's metrics in SQL."""
    with session_factory(make_engine(url))() as session:
        states = session.scalars(select(Trial.state)).all()
        rows = session.scalar(select(func.count()).select_from(Metric))
    expected = n_trials * EPOCHS * len(METRIC_NAMES)
    assert states == ["completed"] * n_trials, states
    assert rows == expected, f"{rows} metric rows, expected {expected}"


def recorder_rate(url: str, n_trials: int = 20, epochs: int = 30) -> tuple[float, int]:
    """Metric rows per second through SqlRecorder's callbacks (start, results, complete).

    Tune's own Trial objects carry the configs and results; only the recorder's calls are timed.
    """
    from ray.tune.experiment import Trial as TuneTrial

    from workers.recorder import SqlRecorder
    from workers.tune_adapter import CONFIG_NUMBER, CONFIG_PARAMS, CONFIG_REPLICATE, EPOCH

    upgrade(url)
    spec = bench_spec(n_trials)
    with session_factory(make_engine(url))() as session:
        study_id = repository.create_study(session=session, spec=spec).id
        session.commit()
    recorder = SqlRecorder(url, study_id, epochs=epochs)
    elapsed = 0.0
    for number in range(n_trials):
        config = {"p": 1.0, "lam": 10 ** (-1 - 4 * number / n_trials), "schedule": "full"}
        params = {"p": config["p"], "lambda": config["lam"], "schedule": "full"}
        config |= {"seed": 0, CONFIG_NUMBER: number, CONFIG_REPLICATE: 0, CONFIG_PARAMS: params}
        trial = TuneTrial("bench", config=config, trial_id=f"t{number:05d}", stub=True)
        tick = time.perf_counter()
        recorder.on_trial_start(0, [], trial)
        elapsed += time.perf_counter() - tick
        for epoch in range(1, epochs + 1):
            metrics = fake_metrics(config, epoch * EPOCHS // epochs)
            trial.update_last_result({**metrics, **tune_bookkeeping(epoch), EPOCH: epoch})
            tick = time.perf_counter()
            recorder.on_trial_result(epoch, [], trial, trial.last_result)
            elapsed += time.perf_counter() - tick
        tick = time.perf_counter()
        recorder.on_trial_complete(epochs, [], trial)
        elapsed += time.perf_counter() - tick
    rows = n_trials * epochs * len(METRIC_NAMES)
    with session_factory(make_engine(url))() as session:
        assert session.scalar(select(func.count()).select_from(Metric)) == rows
    return rows / elapsed, rows


def tune_bookkeeping(iteration: int) -> dict[str, Any]:
    """The keys Tune adds to every result (the recorder must skip them)."""
    return {
        "training_iteration": iteration,
        "time_this_iter_s": 0.4,
        "timestamp": int(time.time()),
        "node_ip": "10.0.0.1",
        "pid": 4242,
        "hostname": "bench",
        "done": False,
    }


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str | None]:
    """A fresh PostgreSQL database, dropped afterwards; None when no server answers."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"decaylab_bench_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # no server: say so and bench SQLite only
        print(f"PostgreSQL at {admin_url} unavailable: {type(exc).__name__}", file=sys.stderr)
        admin.dispose()
        yield None
        return
    try:
        yield make_url(admin_url).set(database=name).render_as_string(False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Comparison:
    """The median engine run and the median Optuna run, and Ray's start-up beside them."""

    startup: float
    engine: EngineTimes
    optuna: float


def compare(spec: StudySpec, seconds: float, repeats: int, home: Path) -> Comparison:
    """Engine and Optuna in turn, `repeats` times each, on one Ray cluster."""
    start = time.perf_counter()
    with local_ray(home / "ray", num_cpus=CONCURRENT):
        startup = time.perf_counter() - start
        engine: list[EngineTimes] = []
        baseline: list[float] = []
        for repeat in range(repeats):
            engine.append(engine_run(spec, seconds, home))
            baseline.append(optuna_baseline(spec, seconds))
            print(f"repeat {repeat}: engine {engine[-1].total:.2f} s, optuna {baseline[-1]:.2f} s")
    median = sorted(engine, key=lambda times: times.total)[len(engine) // 2]
    return Comparison(startup, median, statistics.median(baseline))


def print_report(result: Comparison, trials: int, seconds: float) -> dict[str, float]:
    """The table of wall times; returns the engine's numbers for the JSON line."""
    ideal = trials * seconds / CONCURRENT
    engine, optuna_s = result.engine, result.optuna
    warm = engine.total - engine.cold_start
    per_worker = trials // CONCURRENT
    rows = [
        ("Ray cluster start-up (not counted)", result.startup, ""),
        (f"ideal: {trials} trials × {seconds:g} s / {CONCURRENT}", ideal, ""),
        (f"(b) plain Optuna, n_jobs={CONCURRENT}", optuna_s, f"{optuna_s / ideal:.3f} × ideal"),
        ("(a) our engine", engine.total, f"ratio (a)/(b) {engine.total / optuna_s:.3f}"),
        ("  trial workers' first start", engine.cold_start, "Ray: 2 processes import ray.tune"),
        ("  between trials on a worker", engine.between_trials, f"× {per_worker - 1} a worker"),
        ("  in a trial, beyond its work", engine.in_trial, f"× {per_worker} a worker"),
        ("(a) without the first start", warm, f"ratio {warm / optuna_s:.3f}"),
    ]
    for label, value, note in rows:
        print(f"{label:<36} {value:8.3f} s   {note}".rstrip())
    overhead = (engine.total - ideal) / trials
    print(f"{'engine overhead per trial':<36} {overhead:8.3f} s")
    return {"ratio": engine.total / optuna_s, "overhead": overhead}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=2.0, help="work per trial")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--postgres", default=POSTGRES_ADMIN_URL, help="admin URL")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Tune's result files are off (our tables hold the results); its warning about them is noise
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    home = Path(tempfile.mkdtemp(prefix="dlbench-"))
    apply_ray_environment(home)  # before Ray starts: no off-machine probes
    comparison = compare(bench_spec(args.trials), args.seconds, args.repeats, home)
    sqlite_rate, rows = recorder_rate(f"sqlite:///{home / 'recorder.sqlite'}")
    with postgres_database(args.postgres) as pg_url:
        pg_rate = recorder_rate(pg_url)[0] if pg_url else None
    engine = print_report(comparison, args.trials, args.seconds)
    pg_text = f"{pg_rate:,.0f}/s" if pg_rate else "n/a"
    print(f"recorder, {rows} metric rows: SQLite {sqlite_rate:,.0f}/s, PostgreSQL {pg_text}")
    summary = {
        "bench": "orchestration",
        "engine_vs_optuna": round(engine["ratio"], 3),
        "overhead_s_per_trial": round(engine["overhead"], 3),
        "metric_rows_per_s_sqlite": round(sqlite_rate),
        "metric_rows_per_s_postgres": round(pg_rate) if pg_rate else None,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
