"""Query latency of the REST API over a large sweep, against Optuna's own reads as the anchor.

Seeds one study of 10,000 trials × 30 epochs × 12 metrics (3.6M metric rows) into SQLite (a temp
file) and PostgreSQL (a fresh database, dropped at the end), with bulk writes: executemany on
SQLite, COPY on PostgreSQL. The values are synthetic but shaped like a real pWD sweep: families,
p, λ, decay schedules with their switch points, seeds; curves that rise and saturate, sparsity
that grows with λ and falls with p, final metrics equal to the last epoch. The same trials also
go into Optuna's tables of the same database (one Optuna study, val_acc per epoch as
intermediate values).

The real app then runs under uvicorn in a subprocess on a free loopback port, and an httpx
client measures p50/p95 over HTTP of: the trial list sorted by final val_acc (page of 50), best,
Pareto, effects by schedule and by p, one trial's curves (2 metrics, a random trial each time),
and a per-trial CSV export (time and MB/s). Endpoints take turns request by request, so load from
other processes hits them alike. The anchor, measured in the same run on the same trials:
`optuna.load_study(...).best_trial` and `study.trials_dataframe()`;
trials_vs_dataframe = dataframe time / our trial-list p50 (the smaller over the backends).

Optuna's tables are written with Optuna's own SQLAlchemy tables in bulk (executemany), after a
few trials written by `study.add_trials`: `add_trials` stores one trial per transaction with
one statement per intermediate value (~0.1-0.25 s a trial on a 2-core machine, 20-40 minutes
for 10,000). The bench checks that Optuna reads both kinds back exactly as `create_trial` built
them (`--optuna-api` writes every trial through `add_trials` instead).

Targets (issue 5): every endpoint's p95 < 100 ms except export; the trial list >= 10x faster
than trials_dataframe(). The last line is JSON:
{"bench": "query", "p95_ms": {"<backend>/<endpoint>": ...}, "trials_vs_dataframe": ...}

Run: .venv/bin/python bench/query.py [--trials 10000] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import Engine, create_engine, insert, select, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from studies import repository
from studies.db import Trial, make_engine, session_factory
from studies.migrations import upgrade
from studies.spec import StudySpec, validate_spec

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# the per-epoch metrics a trial reports (12), stored in the primary key's order
EPOCH_METRICS = tuple(
    sorted(
        ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "wd", "weight_norm",
         "sparsity", "sparsity@1e-08", "zero_frac", "pruned_val_acc", "angular_update")
    )
)  # fmt: skip
FAMILY_WEIGHTS = {"none": 0.1, "l2": 0.15, "decoupled": 0.25, "pwd": 0.35, "lp_coupled": 0.15}
SCHEDULE_WEIGHTS = {"full": 0.35, "early": 0.35, "late": 0.2, "none": 0.1}
TARGET_P95_MS = 100.0
TARGET_RATIO = 10.0
API_WRITTEN_OPTUNA_TRIALS = 20


# ---------------------------------------------------------------- a synthetic sweep


@dataclass(frozen=True)
class Sweep:
    """Configurations (one entry per trial) and their curves {metric: (trials, epochs)}."""

    family: list[str]
    p: list[float | None]
    lam: list[float | None]
    schedule: list[str]
    until: list[float | None]
    start: list[float | None]
    lr: np.ndarray
    seed: list[int]
    curves: dict[str, np.ndarray]
    test_acc: np.ndarray

    @property
    def size(self) -> int:
        return len(self.family)

    @property
    def epochs(self) -> int:
        return int(self.curves["val_acc"].shape[1])


def _configs(rng: np.random.Generator, n_configs: int) -> dict[str, Any]:
    """One configuration per config_id, as an Optuna search over the spec's space would give."""
    family = rng.choice(list(FAMILY_WEIGHTS), n_configs, p=list(FAMILY_WEIGHTS.values()))
    schedule = rng.choice(list(SCHEDULE_WEIGHTS), n_configs, p=list(SCHEDULE_WEIGHTS.values()))
    has_p = np.isin(family, ["pwd", "lp_coupled"])
    return {
        "family": family,
        "p": np.where(has_p, rng.uniform(0.4, 2.0, n_configs), np.nan),
        "lam": np.where(family != "none", 10 ** rng.uniform(-5, -1, n_configs), np.nan),
        "schedule": schedule,
        "until": np.where(schedule == "early", rng.uniform(0.1, 0.6, n_configs), np.nan),
        "start": np.where(schedule == "late", rng.uniform(0.4, 0.9, n_configs), np.nan),
        "lr": 10 ** rng.uniform(-4, -2, n_configs),
    }


def _decay_on(cfg: dict[str, Any], t: np.ndarray) -> np.ndarray:
    """The decay multiplier per (trial, epoch): 1 where λ is on (docs/science.md §2)."""
    frac = t[None, :] / t[-1]
    until, start = np.nan_to_num(cfg["until"])[:, None], np.nan_to_num(cfg["start"])[:, None]
    on = np.select(
        [cfg["schedule"][:, None] == s for s in ("full", "early", "late")],
        [np.ones_like(frac), frac <= until, frac > start],
        default=0.0,
    )
    return on * (cfg["family"] != "none")[:, None]


def _final_accuracy(cfg: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Final val_acc: best lr near 3e-3, moderate decay helps, strong decay hurts, seed noise."""
    log_lam = np.log10(np.nan_to_num(cfg["lam"], nan=1e-9))
    on = np.select([cfg["schedule"] == s for s in ("full", "early", "late")], [1.0, 1.0, 0.2])
    on = on * (cfg["family"] != "none")
    help_ = 0.03 * np.exp(-((log_lam + 3.0) ** 2) / 2) * on
    hurt = 0.35 * on / (1 + np.exp(-2.5 * (log_lam + 1.8)))
    below_one = np.nan_to_num(cfg["p"], nan=2.0) < 1
    naive = np.where((cfg["family"] == "lp_coupled") & below_one, 0.06, 0.0)  # diverges at w→0
    coupled = np.where(cfg["family"] == "l2", 0.01, 0.0)
    acc = 0.89 - 0.04 * np.log10(cfg["lr"] / 3e-3) ** 2 + help_ - hurt - naive - coupled
    return np.clip(acc + rng.normal(0, 0.008, len(acc)), 0.12, 0.97)


def _final_sparsity(cfg: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Final sparsity: pWD with small p and enough λ is sparse; the others barely are."""
    p = np.nan_to_num(cfg["p"], nan=2.0)
    log_lam = np.log10(np.nan_to_num(cfg["lam"], nan=1e-9))
    pwd = 1 / (1 + np.exp(-2.5 * (log_lam + 3.5 + 2.0 * (1.0 - p))))
    pwd = pwd * np.where(p < 1.2, 1.0, np.exp(-4 * (p - 1.2)))
    kept = np.select([cfg["schedule"] == s for s in ("full", "early", "late")], [1.0, 0.85, 0.3])
    scale = np.select([cfg["family"] == "pwd", cfg["family"] == "lp_coupled"], [1.0, 0.5], 0.0)
    tiny = rng.uniform(0.0, 0.02, len(p))
    return np.clip(scale * pwd * kept + tiny, 0.0, 0.99)


def _curves(cfg: dict[str, Any], acc: np.ndarray, sparse: np.ndarray, epochs: int,
            rng: np.random.Generator) -> dict[str, np.ndarray]:  # fmt: skip
    """Per-epoch metrics that rise and saturate and end exactly at the final values."""
    n, t = len(acc), np.arange(1, epochs + 1, dtype=float)
    rise = 1 - np.exp(-t[None, :] / rng.uniform(3, 8, (n, 1)))
    rise = rise / rise[:, -1:]
    jitter = rng.normal(0, 0.004, (n, epochs)) * (1 - t / epochs)[None, :]
    val_acc = np.clip(0.1 + (acc[:, None] - 0.1) * rise + jitter, 0.0, 1.0)
    train_acc = np.minimum(0.999, val_acc + rng.uniform(0.02, 0.08, (n, 1)) * t / epochs)
    switch = np.where(cfg["schedule"] == "early", np.nan_to_num(cfg["until"]), 1.0)[:, None]
    sparsity = sparse[:, None] * np.minimum(1.0, t[None, :] / (switch * epochs)) ** 1.5
    lr = cfg["lr"][:, None] * 0.5 * (1 + np.cos(np.pi * t[None, :] / epochs))  # cosine
    wd = np.nan_to_num(cfg["lam"])[:, None] * _decay_on(cfg, t)
    shrink = 1 + 50 * np.cumsum(wd * cfg["lr"][:, None] / 1e-3, axis=1) / epochs
    return {
        "train_loss": 2.3 * (1 - train_acc) ** 1.3 + 0.01,
        "train_acc": train_acc,
        "val_loss": 2.3 * (1 - val_acc) ** 1.1 + 0.05,
        "val_acc": val_acc,
        "lr": lr,
        "wd": wd,
        "weight_norm": 30 * (1 + 0.5 * rise) * (1 - 0.7 * sparsity) / shrink,
        "sparsity": sparsity,
        "sparsity@1e-08": 0.85 * sparsity,
        "zero_frac": 0.1 * sparsity,
        "pruned_val_acc": val_acc * (1 - 0.1 * (1 - sparsity) * rng.uniform(0, 1, (n, 1))),
        "angular_update": np.sqrt(2 * lr * (wd + 1e-4) * 0.1 / 1.9) + 1e-5,
    }


def synthesize(n_trials: int, epochs: int, seed: int = 0) -> Sweep:
    """A sweep of n_trials runs: n_trials // 2 configurations, each with 2 replicate seeds."""
    rng = np.random.default_rng(seed)
    configs = _configs(rng, (n_trials + 1) // 2)
    cfg = {key: np.repeat(values, 2)[:n_trials] for key, values in configs.items()}
    acc, sparse = _final_accuracy(cfg, rng), _final_sparsity(cfg, rng)
    curves = _curves(cfg, acc, sparse, epochs, rng)
    assert set(curves) == set(EPOCH_METRICS)

    def optional(values: np.ndarray) -> list[float | None]:
        return [None if np.isnan(v) else float(v) for v in values]

    return Sweep(
        family=[str(f) for f in cfg["family"]],
        p=optional(cfg["p"]),
        lam=optional(cfg["lam"]),
        schedule=[str(s) for s in cfg["schedule"]],
        until=optional(cfg["until"]),
        start=optional(cfg["start"]),
        lr=cfg["lr"],
        seed=[int(s) for s in rng.integers(0, 2**31, n_trials)],
        curves=curves,
        test_acc=np.clip(acc + rng.normal(0, 0.005, n_trials), 0.0, 1.0),
    )


# ---------------------------------------------------------------- seeding our tables


def sweep_spec(sweep: Sweep) -> StudySpec:
    """The spec that would have produced the sweep: family, p, λ, schedule and lr searched."""
    families_with_lambda = ["l2", "decoupled", "pwd", "lp_coupled"]
    data = {
        "name": "bench-query-sweep",
        "task": {"dataset": "mnist1d", "model": "mlp", "epochs": sweep.epochs,
                 "optimizer": "adam", "lr_schedule": "cosine"},
        "space": {
            "family": {"type": "categorical", "choices": list(FAMILY_WEIGHTS)},
            "p": {"type": "float", "low": 0.4, "high": 2.0,
                  "when": {"family": ["pwd", "lp_coupled"]}},
            "lambda": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True,
                       "when": {"family": families_with_lambda}},
            "schedule": {"type": "categorical", "choices": list(SCHEDULE_WEIGHTS)},
            "until": {"type": "float", "low": 0.1, "high": 0.6, "when": {"schedule": "early"}},
            "from": {"type": "float", "low": 0.4, "high": 0.9, "when": {"schedule": "late"}},
            "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        },
        "objectives": [{"metric": "val_acc"}, {"metric": "sparsity"}],
        "search": {"n_trials": (sweep.size + 1) // 2, "max_concurrent": 16},
        "seeds": 2,
    }  # fmt: skip
    return validate_spec(data)


def trial_params(sweep: Sweep, i: int) -> dict[str, Any]:
    """The searched parameters of trial i under the spec's names (conditional ones only if on)."""
    params: dict[str, Any] = {"family": sweep.family[i], "schedule": sweep.schedule[i]}
    optional = {"p": sweep.p[i], "lambda": sweep.lam[i], "until": sweep.until[i],
                "from": sweep.start[i]}  # fmt: skip
    params.update({name: value for name, value in optional.items() if value is not None})
    params["lr"] = float(sweep.lr[i])
    return params


def final_metrics(sweep: Sweep, i: int) -> dict[str, float]:
    """What the trial's last report says: the last epoch's values, test_acc and every threshold."""
    last = {name: float(curve[i, -1]) for name, curve in sweep.curves.items()}
    sparsity = last["sparsity"]
    del last["lr"], last["wd"]
    return {
        **last,
        "test_acc": float(sweep.test_acc[i]),
        "sparsity@1e-10": 0.7 * sparsity,
        "sparsity@1e-06": sparsity,
        "sparsity@1e-04": min(1.0, 1.05 * sparsity + 0.01),
        "sparsity@1e-03": min(1.0, 1.1 * sparsity + 0.03),
    }


def trial_row(sweep: Sweep, i: int, study_id: str, started: datetime) -> dict[str, Any]:
    """Trial i as a dl_trial row, as the recorder would have left it once completed."""
    params, final = trial_params(sweep, i), final_metrics(sweep, i)
    config = {"family": sweep.family[i], "p": sweep.p[i], "lam": sweep.lam[i],
              "schedule": sweep.schedule[i], "until": sweep.until[i], "start": sweep.start[i],
              "lr": float(sweep.lr[i]), "seed": sweep.seed[i], "epochs": sweep.epochs}  # fmt: skip
    start_at = started + timedelta(seconds=20 * i)
    columns = {name: final[name] for name in ("val_acc", "val_loss", "train_acc", "train_loss",
               "test_acc", "pruned_val_acc", "sparsity", "zero_frac", "weight_norm",
               "angular_update")}  # fmt: skip
    return {
        "study_id": study_id, "number": i, "optuna_trial_number": i // 2,
        "tune_trial_id": f"bench_{i:05d}", "replicate": i % 2, "config_id": i // 2,
        "state": "completed", **{k: v for k, v in config.items() if k != "epochs"},
        "params": params, "config": config, "provenance": {"bench": "query"},
        **columns, "final_metrics": final,
        "best_val_acc": float(sweep.curves["val_acc"][i].max()),
        "epochs_done": sweep.epochs, "diverged_epoch": None,
        "decayed_param_count": 269_312, "non_decayed_param_count": 522,
        "node": f"node-{i % 8}", "error": None,
        "started_at": start_at, "finished_at": start_at + timedelta(seconds=80),
    }  # fmt: skip


def _create_study(engine: Engine, sweep: Sweep) -> tuple[str, str]:
    """A succeeded study holding the sweep's spec: (study id, its Optuna study name)."""
    with session_factory(engine).begin() as session:
        study = repository.create_study(session=session, spec=sweep_spec(sweep))
        for status in ("running", "succeeded"):
            repository.set_study_status(session=session, study_id=study.id, status=status)
        return study.id, study.optuna_study_name


def _metric_lines(sweep: Sweep, trial_ids: list[int]) -> Iterator[str]:
    """COPY text of dl_metric, a chunk per 200 trials, in primary-key order."""
    epochs = range(1, sweep.epochs + 1)
    for begin in range(0, sweep.size, 200):
        lines = []
        for i in range(begin, min(begin + 200, sweep.size)):
            prefix = f"{trial_ids[i]}\t"
            for name in EPOCH_METRICS:
                points = zip(epochs, sweep.curves[name][i].tolist(), strict=True)
                lines += [f"{prefix}{name}\t{e}\t{v!r}\n" for e, v in points]
        yield "".join(lines)


def _metric_tuples(sweep: Sweep, trial_ids: list[int]) -> Iterator[tuple[int, str, int, float]]:
    for i, trial_id in enumerate(trial_ids):
        for name in EPOCH_METRICS:
            for epoch, value in enumerate(sweep.curves[name][i].tolist(), start=1):
                yield trial_id, name, epoch, value


def _load_metrics(engine: Engine, sweep: Sweep, trial_ids: list[int]) -> None:
    """COPY on PostgreSQL, one executemany on SQLite (no fsync while loading)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            copy_sql = "COPY dl_metric (trial_id, name, epoch, value) FROM STDIN"
            with cursor.copy(copy_sql) as copy:  # type: ignore[attr-defined]
                for chunk in _metric_lines(sweep, trial_ids):
                    copy.write(chunk)
        else:
            cursor.execute("PRAGMA synchronous=OFF")
            sql = "INSERT INTO dl_metric (trial_id, name, epoch, value) VALUES (?, ?, ?, ?)"
            cursor.executemany(sql, _metric_tuples(sweep, trial_ids))
        raw.commit()
    finally:
        raw.close()


def seed_decaylab(engine: Engine, sweep: Sweep) -> tuple[str, str]:
    """Our tables: the study, its trials (executemany), their metrics (COPY / executemany)."""
    study_id, optuna_name = _create_study(engine, sweep)
    started = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [trial_row(sweep, i, study_id, started) for i in range(sweep.size)]
    with engine.begin() as connection:
        connection.execute(insert(Trial.__table__), rows)
        found = connection.execute(
            select(Trial.number, Trial.id).where(Trial.study_id == study_id)
        )
        ids_by_number = {number: trial_id for number, trial_id in found}
    _load_metrics(engine, sweep, [ids_by_number[i] for i in range(sweep.size)])
    if engine.dialect.name == "postgresql":  # what autovacuum does shortly after a bulk load
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    return study_id, optuna_name


# ---------------------------------------------------------------- seeding Optuna's tables


def optuna_trial(sweep: Sweep, i: int) -> Any:
    """Trial i as optuna.trial.create_trial builds it: params, distributions, val_acc curve."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    spaces = {
        "family": CategoricalDistribution(list(FAMILY_WEIGHTS)),
        "p": FloatDistribution(0.4, 2.0),
        "lambda": FloatDistribution(1e-5, 1e-1, log=True),
        "schedule": CategoricalDistribution(list(SCHEDULE_WEIGHTS)),
        "until": FloatDistribution(0.1, 0.6),
        "from": FloatDistribution(0.4, 0.9),
        "lr": FloatDistribution(1e-4, 1e-2, log=True),
    }
    params = trial_params(sweep, i)
    curve = sweep.curves["val_acc"][i].tolist()
    return optuna.trial.create_trial(
        params=params,
        distributions={name: spaces[name] for name in params},
        value=curve[-1],
        intermediate_values=dict(enumerate(curve, start=1)),
        user_attrs={"seed": sweep.seed[i], "replicate": i % 2, "decaylab_trial": i},
    )


def _optuna_rows(trials: list[Any], trial_ids: list[int]) -> dict[str, list[dict[str, Any]]]:
    """The child rows Optuna's RDBStorage writes for each trial, per table."""
    from optuna.distributions import distribution_to_json
    from optuna.storages._rdb import models

    finite_value = models.TrialValueModel.TrialValueType.FINITE
    finite_inter = models.TrialIntermediateValueModel.TrialIntermediateValueType.FINITE
    rows: dict[str, list[dict[str, Any]]] = {"params": [], "values": [], "inter": [], "attrs": []}
    for trial, trial_id in zip(trials, trial_ids, strict=True):
        for name, value in trial.params.items():
            dist = trial.distributions[name]
            rows["params"].append({"trial_id": trial_id, "param_name": name,
                                   "param_value": dist.to_internal_repr(value),
                                   "distribution_json": distribution_to_json(dist)})  # fmt: skip
        rows["values"].append({"trial_id": trial_id, "objective": 0, "value": trial.value,
                               "value_type": finite_value})  # fmt: skip
        rows["inter"] += [
            {"trial_id": trial_id, "step": step, "intermediate_value": value,
             "intermediate_value_type": finite_inter}
            for step, value in trial.intermediate_values.items()
        ]  # fmt: skip
        rows["attrs"] += [{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                          for key, value in trial.user_attrs.items()]  # fmt: skip
    return rows


def _bulk_optuna(engine: Engine, study_id: int, trials: list[Any], first: int) -> None:
    """Optuna's rows for `trials` (numbers first, first + 1, ...), through its own tables."""
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    now = datetime.now(UTC).replace(tzinfo=None)  # Optuna stores naive UTC
    with engine.begin() as connection:
        connection.execute(insert(models.TrialModel.__table__), [
            {"number": first + k, "study_id": study_id, "state": TrialState.COMPLETE,
             "datetime_start": now, "datetime_complete": now}
            for k in range(len(trials))
        ])  # fmt: skip
        table = models.TrialModel.__table__
        found = connection.execute(
            select(table.c.number, table.c.trial_id).where(
                table.c.study_id == study_id, table.c.number >= first
            )
        )
        ids = {number: trial_id for number, trial_id in found}
        rows = _optuna_rows(trials, [ids[first + k] for k in range(len(trials))])
        for model, key in ((models.TrialParamModel, "params"), (models.TrialValueModel, "values"),
                           (models.TrialIntermediateValueModel, "inter"),
                           (models.TrialUserAttributeModel, "attrs")):  # fmt: skip
            connection.execute(insert(model.__table__), rows[key])


def seed_optuna(url: str, sweep: Sweep, name: str, *, api_only: bool = False) -> None:
    """One Optuna study of the sweep: the first trials by add_trials, the rest in bulk."""
    import optuna

    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    trials = [optuna_trial(sweep, i) for i in range(sweep.size)]
    through_api = sweep.size if api_only else min(API_WRITTEN_OPTUNA_TRIALS, sweep.size)
    study.add_trials(trials[:through_api])
    if through_api < sweep.size:
        engine = make_engine(url)
        try:
            _bulk_optuna(engine, study._study_id, trials[through_api:], through_api)
        finally:
            engine.dispose()
    _check_optuna(url, name, trials, through_api)


def _check_optuna(url: str, name: str, expected: list[Any], through_api: int) -> None:
    """Optuna reads back every trial as create_trial built it, bulk-written ones included."""
    import optuna

    loaded = optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
    assert len(loaded) == len(expected), (len(loaded), len(expected))
    for got, want in zip(loaded, expected, strict=True):
        same = (got.state, got.params, got.distributions, got.value, got.intermediate_values,
                got.user_attrs) == (want.state, want.params, want.distributions, want.value,
                                    want.intermediate_values, want.user_attrs)  # fmt: skip
        kind = "add_trials" if got.number < through_api else "bulk"
        assert same, f"Optuna trial {got.number} ({kind}) reads back differently"


# ---------------------------------------------------------------- serving and timing


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_forever(url: str, port: int, home: str) -> None:
    """The subprocess: the real app under uvicorn, without Ray (reads need none)."""
    from service.app import create_app
    from service.server import api_server
    from studies.settings import Settings

    settings = Settings(home=Path(home), database_url=url, api_key="", read_auth=False,
                        ray_address="")  # fmt: skip
    app = create_app(settings, launcher=None)
    api_server(app, "127.0.0.1", port, log_level="warning", access_log=False).run()


@contextmanager
def served(url: str, home: Path) -> Iterator[str]:
    """The base URL of the app serving `url`, up until the block ends."""
    port = _free_port()
    command = [sys.executable, __file__, "--serve", url, str(port), str(home)]
    server = subprocess.Popen(command)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server on port {port} did not come up")
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def endpoints(study_id: str, n_trials: int, rng: random.Random) -> dict[str, Callable[[], str]]:
    """Name -> a function giving the next request's path."""
    base = f"/studies/{study_id}"

    def curves() -> str:
        return f"{base}/trials/{rng.randrange(n_trials)}/metrics?name=val_acc&name=sparsity"

    return {
        "trials": lambda: f"{base}/trials?sort=val_acc&order=desc&limit=50",
        "best": lambda: f"{base}/best",
        "pareto": lambda: f"{base}/pareto",
        "effects_schedule": lambda: f"{base}/effects?factor=schedule&metric=val_acc",
        "effects_p": lambda: f"{base}/effects?factor=p&metric=sparsity",
        "curves": curves,
        "export_csv": lambda: f"{base}/export?format=csv&per=trial",
    }


def _timed_get(client: httpx.Client, path: str) -> tuple[float, int]:
    """Seconds until the whole body arrived, and its size in bytes."""
    began = time.perf_counter()
    response = client.get(path)
    size = len(response.content)
    elapsed = time.perf_counter() - began
    if response.status_code != 200:
        raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:300]}")
    return elapsed, size


def measure(base: str, paths: dict[str, Callable[[], str]], *, requests: int, warmup: int,
            export_requests: int) -> dict[str, list[tuple[float, int]]]:  # fmt: skip
    """Round-robin over the endpoints; (seconds, bytes) per measured request."""
    samples: dict[str, list[tuple[float, int]]] = {name: [] for name in paths}
    with httpx.Client(base_url=base, timeout=120) as client:
        for round_ in range(warmup + requests):
            for name, path in paths.items():
                limit = export_requests if name.startswith("export") else requests
                if round_ >= warmup + limit:
                    continue
                sample = _timed_get(client, path())
                if round_ >= warmup:
                    samples[name].append(sample)
    return samples


def check_served(base: str, study_id: str, sweep: Sweep) -> None:
    """What the API answers is the sweep that was seeded (so the timings are of real work)."""
    with httpx.Client(base_url=base, timeout=60) as client:
        page = client.get(f"/studies/{study_id}/trials?sort=val_acc&order=desc&limit=1").json()
        assert page["total"] == sweep.size, page["total"]
        top = page["items"][0]
        assert top["number"] == int(np.argmax(sweep.curves["val_acc"][:, -1])), top
        number = sweep.size // 3
        curves = client.get(f"/studies/{study_id}/trials/{number}/metrics?name=wd").json()
        got = [point["value"] for point in curves["wd"]]
        assert np.allclose(got, sweep.curves["wd"][number]), (got[:3], number)


def time_optuna(url: str, name: str, reps: int) -> dict[str, list[float]]:
    """Seconds of load_study(...).best_trial, and of trials_dataframe() of a fresh study."""
    import optuna
    import pandas  # noqa: F401  trials_dataframe imports it: a once-per-process cost, not timed

    times: dict[str, list[float]] = {"best_trial": [], "trials_dataframe": []}
    for _ in range(reps):
        began = time.perf_counter()
        optuna.load_study(study_name=name, storage=url).best_trial  # noqa: B018
        times["best_trial"].append(time.perf_counter() - began)
        study = optuna.load_study(study_name=name, storage=url)
        began = time.perf_counter()
        frame = study.trials_dataframe()
        times["trials_dataframe"].append(time.perf_counter() - began)
    assert len(frame) > 0
    return times


# ---------------------------------------------------------------- databases and the run


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database decaylab_bench_<random> on the server of admin_url, dropped at the end."""
    name = f"decaylab_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def sqlite_database(workdir: Path) -> Iterator[str]:
    yield f"sqlite:///{workdir / 'bench.sqlite'}"


@dataclass
class BackendResult:
    seed_s: dict[str, float]
    samples: dict[str, list[tuple[float, int]]]
    optuna_s: dict[str, list[float]]


def run_backend(url: str, sweep: Sweep, workdir: Path, args: argparse.Namespace) -> BackendResult:
    """Seed, serve, check, measure, and time Optuna's reads on one database."""
    upgrade(url)
    engine = make_engine(url)
    began = time.perf_counter()
    study_id, optuna_name = seed_decaylab(engine, sweep)
    engine.dispose()
    seeded = time.perf_counter()
    seed_optuna(url, sweep, optuna_name, api_only=args.optuna_api)
    seed_s = {"decaylab": seeded - began, "optuna": time.perf_counter() - seeded}
    print(f"  seeded in {seed_s['decaylab']:.1f} s (ours), {seed_s['optuna']:.1f} s (Optuna)")
    with served(url, workdir / "home") as base:
        check_served(base, study_id, sweep)
        paths = endpoints(study_id, sweep.size, random.Random(0))
        samples = measure(base, paths, requests=args.requests, warmup=args.warmup,
                          export_requests=args.export_requests)  # fmt: skip
    return BackendResult(seed_s, samples, time_optuna(url, optuna_name, args.optuna_reps))


def percentile_ms(samples: list[tuple[float, int]], q: float) -> float:
    return float(np.percentile([s for s, _ in samples], q)) * 1000


def report(results: dict[str, BackendResult]) -> dict[str, Any]:
    """Print the table; return the final JSON object."""
    p95: dict[str, float] = {}
    ratios: dict[str, float] = {}
    print(f"\n{'backend/endpoint':34} {'n':>3} {'p50 ms':>9} {'p95 ms':>9}  note")
    for backend, result in results.items():
        for name, samples in result.samples.items():
            key, p50 = f"{backend}/{name}", percentile_ms(samples, 50)
            p95[key] = round(percentile_ms(samples, 95), 1)
            if name.startswith("export"):
                megabytes = statistics.median(size for _, size in samples) / 1e6
                note = f"{megabytes:.2f} MB, {megabytes / (p50 / 1000):.1f} MB/s at p50"
            else:
                note = "ok" if p95[key] < TARGET_P95_MS else f"MISSES {TARGET_P95_MS:.0f} ms"
            print(f"{key:34} {len(samples):3d} {p50:9.1f} {p95[key]:9.1f}  {note}")
        for name, times in result.optuna_s.items():
            label, median_ms = f"{backend}/optuna {name}", statistics.median(times) * 1000
            print(f"{label:34} {len(times):3d} {median_ms:9.1f} {'':>9}  anchor")
        frame = statistics.median(result.optuna_s["trials_dataframe"])
        ratios[backend] = frame / (percentile_ms(result.samples["trials"], 50) / 1000)
        verdict = "ok" if ratios[backend] >= TARGET_RATIO else f"MISSES {TARGET_RATIO:.0f}x"
        print(f"{backend + ' trials_vs_dataframe':34} {ratios[backend]:9.1f}x  {verdict}")
    return {"bench": "query", "p95_ms": p95, "trials_vs_dataframe": round(min(ratios.values()), 1)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--requests", type=int, default=40, help="measured, per endpoint")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--export-requests", type=int, default=30)
    parser.add_argument("--optuna-reps", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=os.environ.get("DECAYLAB_BENCH_POSTGRES_URL",
                                                                 POSTGRES_URL))  # fmt: skip
    parser.add_argument("--optuna-api", action="store_true",
                        help="write every Optuna trial through add_trials (slow)")  # fmt: skip
    return parser.parse_args(argv)


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve_forever(*sys.argv[2:3], int(sys.argv[3]), sys.argv[4])
        return
    args = parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweep = synthesize(args.trials, args.epochs)
    metric_rows = sweep.size * sweep.epochs * len(EPOCH_METRICS)
    print(f"sweep: {sweep.size} trials × {sweep.epochs} epochs × {len(EPOCH_METRICS)} metrics "
          f"= {metric_rows:,} metric rows; {os.cpu_count()} CPUs")  # fmt: skip
    databases = {"sqlite": sqlite_database, "postgresql": None}
    results: dict[str, BackendResult] = {}
    for backend in args.backends.split(","):
        print(f"== {backend}")
        with tempfile.TemporaryDirectory(prefix="decaylab-bench-") as tmp:
            opened = databases[backend]
            context = opened(Path(tmp)) if opened else postgres_database(args.postgres_url)
            with context as url:
                results[backend] = run_backend(url, sweep, Path(tmp), args)
    print(json.dumps(report(results)))


if __name__ == "__main__":
    main()
