"""How well each sampler spends a small budget, on real results of the quickstart task (issue 13).

The table: `bench/data/search_table_quickstart.csv`, the quickstart task (pWD MLP 256×2 on
MNIST-1D, 30 epochs, Adam 3e-3 cosine) on a dense grid, 11 `p` (0.5..2.0) × 9 `lambda` (1e-3..1e-1,
4 a decade) × {full, early until 0.2 / 0.4 / 0.6} = 396 configurations, one seed, trained by
decaylab itself: two `sampler: grid` studies (`bench/data/search_grid_{full,early}.yaml`)
submitted to a running `decaylab serve` and exported with `decaylab export ID --format csv`.
Provenance (commands, commit, date, duration, seeds) is in `search_table_quickstart.json`.
`--build-table FULL.csv EARLY.csv` turns the two exports into the table again.

The surrogate answers instantly, so no training happens here: (val_acc, sparsity) is the table
interpolated linearly over (p, log10 lambda) for `full`, and over (p, log10 lambda, until) for
`early` (until between the table's 0.2, 0.4 and 0.6 is interpolated between them). Every
contender searches the table's box (p 0.5..2, lambda 1e-3..1e-1 log, schedule full | early,
until 0.2..0.6 when early) with Optuna's ask/tell, two trials in flight at a time as in the
quickstart (`max_concurrent: 2`), through decaylab's own define-by-run `suggest`.

Duplicates: a suggestion whose `configuration_key` (6 significant digits) equals an earlier one
is answered with the earlier result and counted; as in decaylab's searcher it spends one ask of
the budget (`n_trials` asks) and trains nothing.

Measures, per contender, budget (16, 32, 64 trials) and seed (20): the hypervolume of the
(val_acc, sparsity) front of the trials run, as a fraction of the true front's, with reference
point (the table's lowest val_acc, sparsity 0); the true front is the surrogate's on a grid 6×
finer than the table in p and lambda and 10× in until. Also the regret of the best val_acc (the
true best less the best found, in points). Contenders: decaylab's default (`make_sampler` with
`sampler` unset), Optuna's defaults (`TPESampler()`, what `create_study` picks for one objective
or several; `NSGAIISampler()`, population 50), random search, and what decaylab did before this
issue (NSGA-II with population n_trials // 4; multivariate grouped TPE). The ratios are of
medians over seeds, against the baselines measured in the same run. Target: the default at 32
trials ≥ 0.9 of the true hypervolume and ahead of Optuna's default and random.

Run: .venv/bin/python bench/search.py [--seeds 20] [--explore]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from scipy.interpolate import RegularGridInterpolator

from studies import search_space
from studies.search_space import directions, make_sampler, suggest
from studies.spec import StudySpec, validate_spec

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "bench" / "data" / "search_table_quickstart.csv"
QUICKSTART = ROOT / "studies" / "examples" / "quickstart.yaml"
BUDGETS = (16, 32, 64)
CONCURRENT = 2
TABLE_COLUMNS = ("p", "lambda", "schedule", "until", "val_acc", "sparsity", "test_acc", "seed")
# the table's box: what every contender searches (the quickstart's space before this issue)
SPACE: dict[str, Any] = {
    "p": {"type": "float", "low": 0.5, "high": 2.0},
    "lambda": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
    "schedule": {"type": "categorical", "choices": ["full", "early"]},
    "until": {"type": "float", "low": 0.2, "high": 0.6, "when": {"schedule": "early"}},
}
Values = tuple[float, float]
OBJECTIVES = ("val_acc", "sparsity")


def configuration_key(spec: StudySpec, params: dict[str, Any]) -> tuple[Any, ...]:
    """decaylab's key (6 significant digits) where it exists, else the same rule here."""
    key = getattr(search_space, "configuration_key", None)
    if key is not None:
        return tuple(key(spec, params))
    return tuple(
        (k, float(f"{v:.6g}") if isinstance(v, float) else v) for k, v in sorted(params.items())
    )


# ---------------------------------------------------------------- the table and its surrogate


def read_table(path: Path = TABLE) -> list[dict[str, Any]]:
    """The table's rows, numbers as floats (until None for full decay)."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        {
            **row,
            **{k: float(row[k]) for k in ("p", "lambda", "val_acc", "sparsity")},
            "until": float(row["until"]) if row["until"] else None,
        }
        for row in rows
    ]


def _grid(rows: list[dict[str, Any]], axes: Sequence[str]) -> RegularGridInterpolator:
    """Linear interpolation of (val_acc, sparsity) over `axes` (lambda on the log10 scale)."""

    def coord(row: dict[str, Any], axis: str) -> float:
        return math.log10(row["lambda"]) if axis == "lambda" else float(row[axis])

    points = [sorted({round(coord(r, a), 9) for r in rows}) for a in axes]
    values = np.full([len(p) for p in points] + [2], np.nan)
    for row in rows:
        index = tuple(p.index(round(coord(row, a), 9)) for p, a in zip(points, axes, strict=True))
        values[index] = (row["val_acc"], row["sparsity"])
    if np.isnan(values).any():
        raise ValueError(f"the table misses {int(np.isnan(values).sum() // 2)} grid points")
    return RegularGridInterpolator(points, values)


@dataclass
class Surrogate:
    """The table interpolated: (val_acc, sparsity) for any configuration in the box."""

    full: RegularGridInterpolator
    early: RegularGridInterpolator
    table_min_acc: float

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> Surrogate:
        full = [r for r in rows if r["schedule"] == "full"]
        early = [r for r in rows if r["schedule"] == "early"]
        min_acc = min(r["val_acc"] for r in rows)
        return cls(_grid(full, ("p", "lambda")), _grid(early, ("p", "lambda", "until")), min_acc)

    def __call__(self, params: dict[str, Any]) -> Values:
        point = [params["p"], math.log10(params["lambda"])]
        if params["schedule"] == "early":
            acc, sparsity = self.early([*point, params["until"]])[0]
        else:
            acc, sparsity = self.full(point)[0]
        return float(acc), float(sparsity)

    def dense(self) -> np.ndarray:
        """The surrogate on a grid 6× finer than the table's (10× in until): (n, 2)."""
        ps, lams = np.linspace(0.5, 2.0, 61), np.linspace(-3, -1, 49)
        untils = np.linspace(0.2, 0.6, 21)
        full = np.stack(np.meshgrid(ps, lams, indexing="ij"), -1).reshape(-1, 2)
        early = np.stack(np.meshgrid(ps, lams, untils, indexing="ij"), -1).reshape(-1, 3)
        return np.concatenate([self.full(full), self.early(early)])


def hypervolume(points: Sequence[Values] | np.ndarray, reference: Values) -> float:
    """Area dominated by `points` (both maximized) above `reference`."""
    area, best_sparsity = 0.0, reference[1]
    for acc, sparsity in sorted((tuple(p) for p in points), reverse=True):
        if acc > reference[0] and sparsity > best_sparsity:
            area += (acc - reference[0]) * (sparsity - best_sparsity)
            best_sparsity = sparsity
    return area


# ---------------------------------------------------------------- one search


@dataclass
class Trace:
    """What one search's asks gave, in order: a new configuration's values, or None for a
    duplicate (answered with the earlier result, no training)."""

    asks: list[Values | None] = field(default_factory=list)

    def first(self, budget: int) -> tuple[list[Values], int]:
        """The configurations trained within the first `budget` asks, and the duplicates."""
        asks = self.asks[:budget]
        return [v for v in asks if v is not None], sum(v is None for v in asks)


def objective_values(spec: StudySpec, values: Values) -> list[float]:
    """What Optuna is told: the spec's objectives out of (val_acc, sparsity)."""
    named = dict(zip(("val_acc", "sparsity"), values, strict=True))
    return [named[o.metric] for o in spec.objectives]


def run_search(
    sampler: optuna.samplers.BaseSampler, spec: StudySpec, surrogate: Surrogate, budget: int
) -> Trace:
    """`budget` asks, CONCURRENT configurations in flight, a duplicate told the earlier result
    (as decaylab's searcher does: it spends an ask and trains nothing)."""
    ways = [optuna.study.StudyDirection[d.upper()] for d in directions(spec)]
    study = optuna.create_study(directions=ways, sampler=sampler)
    trace, done = Trace(), dict[tuple[Any, ...], Values]()
    running: deque[tuple[tuple[Any, ...], list[optuna.Trial]]] = deque()

    def finish_oldest() -> None:
        key, trials = running.popleft()
        for trial in trials:
            study.tell(trial, objective_values(spec, done[key]))

    for _ in range(budget):
        while len(running) >= CONCURRENT:
            finish_oldest()
        trial = study.ask()
        key = configuration_key(spec, params := suggest(trial, spec))
        waiting = next((trials for k, trials in running if k == key), None)
        new = waiting is None and key not in done
        if waiting is not None:  # the same configuration is still training: told when it ends
            waiting.append(trial)
        elif not new:
            study.tell(trial, objective_values(spec, done[key]))
        else:
            done[key] = surrogate(params)
            running.append((key, [trial]))
        trace.asks.append(done[key] if new else None)
    while running:
        finish_oldest()
    return trace


# ---------------------------------------------------------------- the contenders

Factory = Callable[[StudySpec], optuna.samplers.BaseSampler]


@dataclass(frozen=True)
class Contender:
    name: str
    factory: Factory
    knows_budget: bool  # its choices depend on n_trials: run once per budget, not as prefixes


def _seed(spec: StudySpec) -> int:
    return spec.search.seed


def _tpe(spec: StudySpec, **options: Any) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=_seed(spec), **options)


def _nsga2(spec: StudySpec, population: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=_seed(spec), population_size=population)


def _started(spec: StudySpec, then: optuna.samplers.BaseSampler, n: int) -> Any:
    return search_space.StratifiedStart(spec, then, n, _seed(spec))


def _grouped(spec: StudySpec, startup: int) -> optuna.samplers.BaseSampler:
    return _tpe(spec, multivariate=True, group=True, n_startup_trials=startup)


def _quarter(spec: StudySpec) -> int:
    return max(4, spec.search.n_trials // 4)


CONTENDERS = (
    Contender("decaylab default", make_sampler, True),
    Contender("Optuna default: TPESampler()", lambda s: _tpe(s), False),
    Contender("Optuna NSGAIISampler()", lambda s: _nsga2(s, 50), False),
    Contender("random", lambda s: optuna.samplers.RandomSampler(seed=_seed(s)), False),
    Contender(
        "before: NSGA-II, population n/4",
        lambda s: _nsga2(s, max(2, min(50, s.search.n_trials // 4))),
        True,
    ),
    Contender("before: TPE multivariate grouped", lambda s: _grouped(s, 10), False),
)
# on one objective: the default, Optuna's, random and decaylab's before (grouped TPE)
ONE_OBJECTIVE = (
    "decaylab default",
    "Optuna default: TPESampler()",
    "random",
    "before: TPE multivariate grouped",
)
# candidates for the default, measured with --explore
EXPLORE = (
    Contender("TPE grouped, 4 random first", lambda s: _grouped(s, 4), False),
    Contender("TPE grouped, 8 random first", lambda s: _grouped(s, 8), False),
    Contender("TPE grouped, n/4 random first", lambda s: _grouped(s, _quarter(s)), True),
    Contender(
        "TPE multivariate, 8 random first",
        lambda s: _tpe(s, multivariate=True, n_startup_trials=8),
        False,
    ),
    Contender("TPE independent, 6 random first", lambda s: _tpe(s, n_startup_trials=6), False),
    Contender("LHS 8, then TPE grouped", lambda s: _started(s, _grouped(s, 1), 8), False),
    Contender(
        "LHS n/4, then TPE grouped", lambda s: _started(s, _grouped(s, 1), _quarter(s)), True
    ),
    Contender(
        "LHS n/4, then NSGA-II pop n/4",
        lambda s: _started(s, _nsga2(s, _quarter(s)), _quarter(s)),
        True,
    ),
    Contender("NSGA-II, population 8", lambda s: _nsga2(s, 8), False),
)


def bench_spec(budget: int, seed: int, objectives: Sequence[str] = OBJECTIVES) -> StudySpec:
    """The quickstart study over the table's box, `sampler` unset, `budget` trials."""
    data = yaml.safe_load(QUICKSTART.read_text())
    data["space"], data["regularizer"] = SPACE, {"family": "pwd"}
    data["objectives"] = [{"metric": m, "mode": "max"} for m in objectives]
    data["search"] = {"n_trials": budget, "max_concurrent": CONCURRENT, "seed": seed}
    return validate_spec(data)


@dataclass
class Score:
    hv_fraction: float
    regret: float
    duplicates: int


@dataclass(frozen=True)
class Truth:
    """What the best search could find: the true front's hypervolume and the best val_acc."""

    hypervolume: float
    best_acc: float
    reference: Values

    @classmethod
    def of(cls, surrogate: Surrogate) -> Truth:
        dense, reference = surrogate.dense(), (surrogate.table_min_acc, 0.0)
        return cls(hypervolume(dense, reference), float(dense[:, 0].max()), reference)


def score(values: list[Values], duplicates: int, truth: Truth) -> Score:
    """One search's hypervolume fraction, val_acc regret (points) and duplicates."""
    return Score(
        hypervolume(values, truth.reference) / truth.hypervolume,
        100 * (truth.best_acc - max(v[0] for v in values)),
        duplicates,
    )


def run_contender(
    contender: Contender,
    surrogate: Surrogate,
    seeds: int,
    truth: Truth,
    objectives: Sequence[str] = OBJECTIVES,
) -> dict[int, list[Score]]:
    """Scores per budget over `seeds` seeds (one run at the largest budget as prefixes when the
    contender does not know the budget)."""
    scores: dict[int, list[Score]] = {b: [] for b in BUDGETS}
    for seed in range(seeds):
        runs = BUDGETS if contender.knows_budget else (max(BUDGETS),)
        for run_budget in runs:
            spec = bench_spec(run_budget, seed, objectives)
            trace = run_search(contender.factory(spec), spec, surrogate, run_budget)
            for budget in BUDGETS if not contender.knows_budget else (run_budget,):
                scores[budget].append(score(*trace.first(budget), truth))
    return scores


# ---------------------------------------------------------------- report


def median(scores: list[Score], attribute: str) -> float:
    return statistics.median(getattr(s, attribute) for s in scores)


def repeats(name: str, by_budget: dict[int, list[Score]]) -> tuple[int, int]:
    """Duplicates among all the asks a contender made, and those asks (a contender that does not
    know the budget ran once at the largest, the smaller budgets being its prefixes)."""
    knows_budget = next(c.knows_budget for c in CONTENDERS + EXPLORE if c.name == name)
    budgets = BUDGETS if knows_budget else (max(BUDGETS),)
    duplicates = sum(s.duplicates for b in budgets for s in by_budget[b])
    return duplicates, sum(b * len(by_budget[b]) for b in budgets)


def print_table(results: dict[str, dict[int, list[Score]]], seconds: dict[str, float]) -> None:
    head = " ".join(f"{'hv@' + str(b):>14} {'regret@' + str(b):>9}" for b in BUDGETS)
    print(f"{'contender':<36} {head} {'repeats':>10} {'s':>5}")
    for name, by_budget in results.items():
        cells = []
        for budget in BUDGETS:
            runs = by_budget[budget]
            low, mid, high = np.percentile([s.hv_fraction for s in runs], [25, 50, 75])
            cells.append(f"{mid:5.3f} [{low:.2f}-{high:.2f}] {median(runs, 'regret'):9.2f}")
        dups, asks = repeats(name, by_budget)
        print(f"{name:<36} {' '.join(cells)} {f'{dups}/{asks}':>10} {seconds[name]:5.1f}")
    print("hv@n: median [quartiles] over seeds of the front's hypervolume / the true front's;")
    print("regret@n: median points of val_acc below the true best; repeats: configurations")
    print("asked again (told the earlier result, no training) / all asks; s: seconds")


def print_regrets(results: dict[str, dict[int, list[Score]]]) -> None:
    """The one-objective runs: median regret of the best val_acc, in points."""
    print("\none objective (val_acc): median points below the true best val_acc")
    print(f"{'contender':<36} " + " ".join(f"{'regret@' + str(b):>10}" for b in BUDGETS))
    for name, by_budget in results.items():
        cells = " ".join(f"{median(by_budget[b], 'regret'):10.2f}" for b in BUDGETS)
        print(f"{name:<36} {cells}")


def summary(results: dict[str, dict[int, list[Score]]]) -> dict[str, Any]:
    """The last line's numbers: ratios of medians against baselines from this run."""

    def hv(name: str, budget: int) -> float:
        return median(results[name][budget], "hv_fraction")

    default, optuna_default = "decaylab default", "Optuna default: TPESampler()"
    line: dict[str, Any] = {}
    for budget in BUDGETS:
        line[f"default_hv_{budget}"] = round(hv(default, budget), 4)
        line[f"default_vs_optuna_hv_{budget}"] = round(
            hv(default, budget) / hv(optuna_default, budget), 3
        )
        line[f"default_vs_random_hv_{budget}"] = round(
            hv(default, budget) / hv("random", budget), 3
        )
        line[f"default_vs_before_hv_{budget}"] = round(
            hv(default, budget) / hv("before: NSGA-II, population n/4", budget), 3
        )
        line[f"default_regret_{budget}"] = round(median(results[default][budget], "regret"), 3)
    line["duplicates"], line["default_asks"] = repeats(default, results[default])
    line["target_met"] = bool(
        line["default_hv_32"] >= 0.9
        and line["default_vs_optuna_hv_32"] > 1
        and line["default_vs_random_hv_32"] > 1
    )
    return line


# ---------------------------------------------------------------- building the table


def build_table(exports: Sequence[Path], output: Path = TABLE) -> int:
    """Write the table from `decaylab export --format csv` files of the grid studies."""
    rows = []
    for path in exports:
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if row["state"] != "completed":
                    raise SystemExit(f"{path}: trial {row['trial']} is {row['state']}")
                rows.append({c: row[c] for c in TABLE_COLUMNS})
    rows.sort(key=lambda r: (r["schedule"] != "full", float(r["until"] or 0), float(r["p"]),
                             float(r["lambda"])))  # fmt: skip
    with output.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=TABLE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {output} ({len(rows)} rows)")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--explore", action="store_true", help="also the default's candidates")
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--build-table", nargs="+", type=Path, metavar="EXPORT_CSV")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.build_table:
        return build_table(args.build_table, args.table)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    surrogate = Surrogate.from_rows(read_table(args.table))
    truth = Truth.of(surrogate)
    print(f"table: {args.table.name}; true best val_acc {truth.best_acc:.4f}; reference point "
          f"(val_acc {surrogate.table_min_acc:.4f}, sparsity 0); {args.seeds} seeds")  # fmt: skip
    results: dict[str, dict[int, list[Score]]] = {}
    seconds: dict[str, float] = {}
    for contender in CONTENDERS + (EXPLORE if args.explore else ()):
        start = time.perf_counter()
        results[contender.name] = run_contender(contender, surrogate, args.seeds, truth)
        seconds[contender.name] = time.perf_counter() - start
    print_table(results, seconds)
    single = {
        c.name: run_contender(c, surrogate, args.seeds, truth, ("val_acc",))
        for c in CONTENDERS
        if c.name in ONE_OBJECTIVE
    }
    print_regrets(single)
    line = summary(results)
    line["one_objective_regret_32"] = {
        n: round(median(r[32], "regret"), 3) for n, r in single.items()
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
