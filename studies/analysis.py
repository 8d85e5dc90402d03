"""Pure computations behind /best, /pareto and /effects: non-dominated sets, level summaries,
buckets.

Nothing here touches the database: the service reads rows through the repository and hands
plain numbers to these functions, so each can be checked against a hand computation. The report
(service.client.report) calls the same functions on the API's trial dicts when it merges several
studies, so a merged report ranks and summarizes exactly as the API does for one study.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

Mode = Literal["max", "min"]
Scale = Literal["category", "linear", "log"]
CONFIDENCE = 0.95
# the factors /effects knows, and how their values become levels
FACTOR_SCALES: dict[str, Scale] = {
    "schedule": "category",
    "family": "category",
    "p": "linear",
    "lambda": "log",
}


def _front_2d(scored: np.ndarray) -> list[int]:
    """Non-dominated rows of an (n, 2) array to maximize, by one sweep in sorted order."""
    order = np.lexsort((-scored[:, 1], -scored[:, 0]))  # first column descending, then second
    firsts, seconds = scored[order, 0], scored[order, 1]
    front: list[int] = []
    best_second = -np.inf  # the best second value among strictly larger first values
    start = 0
    while start < len(order):
        end = start
        while end < len(order) and firsts[end] == firsts[start]:
            end += 1
        top = seconds[start]  # the group's best second value: only its holders can be kept
        if top > best_second:
            front += [int(order[k]) for k in range(start, end) if seconds[k] == top]
            best_second = top
        start = end
    return front


def _front_nd(scored: np.ndarray) -> list[int]:
    """Non-dominated rows of an (n, k) array to maximize.

    The lexicographically largest row left is never dominated (a row dominating it would sort
    before it); keep it, drop every row it dominates, repeat: one vectorized pass per member
    of the front.
    """
    order = np.lexsort(tuple(-scored[:, c] for c in reversed(range(scored.shape[1]))))
    rows, indices = scored[order], order
    front: list[int] = []
    while len(indices):
        best = rows[0]
        front.append(int(indices[0]))
        dropped = np.all(rows <= best, axis=1) & np.any(rows < best, axis=1)
        dropped[0] = True  # equal rows stay: they are next, and kept in turn
        rows, indices = rows[~dropped], indices[~dropped]
    return front


def pareto_front(points: Sequence[Sequence[float]], modes: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points, in input order; equal points are all kept.

    Args:
        points: one tuple of objective values per candidate (finite numbers).
        modes: "max" or "min" for each objective.
    """
    if any(mode not in ("max", "min") for mode in modes):
        raise ValueError(f"modes must be 'max' or 'min', got {list(modes)}")
    if len(points) == 0:
        return []
    signs = np.array([1.0 if mode == "max" else -1.0 for mode in modes])
    scored = np.asarray(points, dtype=float).reshape(len(points), len(modes)) * signs
    if scored.shape[1] == 1:
        return [int(i) for i in np.flatnonzero(scored[:, 0] == scored[:, 0].max())]
    front = _front_2d(scored) if scored.shape[1] == 2 else _front_nd(scored)
    return sorted(front)


def ranked_front(
    points: Sequence[Sequence[float | None]], modes: Sequence[str]
) -> tuple[list[int], int]:
    """The Pareto front as GET /pareto lists it, over the points that have every value.

    Returns the indices of the non-dominated complete points, best on the first objective first
    (input order on ties, so trial-number order for points listed in it), and how many points
    were complete.
    """
    complete: list[tuple[int, list[float]]] = []
    for index, point in enumerate(points):
        values = [float(v) for v in point if v is not None]
        if len(values) == len(point):
            complete.append((index, values))
    members = pareto_front([values for _, values in complete], modes)
    sign = -1.0 if modes[0] == "max" else 1.0
    ranked = sorted((sign * complete[k][1][0], complete[k][0]) for k in members)
    return [index for _, index in ranked], len(complete)


def best_index(values: Sequence[float | None], mode: str) -> int | None:
    """The index of the best finite value (the first of equal ones), None when there is none.

    GET /best's rule (the lowest trial number on ties) for values listed in trial-number order;
    the route applies it in SQL (repository.best_trials) so that only the winner is read.
    """
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    best: tuple[float, int] | None = None
    for index, value in enumerate(values):
        if value is None or not math.isfinite(value):
            continue
        if best is None or (value > best[0] if mode == "max" else value < best[0]):
            best = (value, index)
    return None if best is None else best[1]


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation and a t-interval of a group of observations."""

    count: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    """Summary of observations; std and interval need two of them (None otherwise)."""
    count = len(values)
    if count == 0:
        return Summary(0, None, None, None, None)
    mean = math.fsum(values) / count
    if count == 1:
        return Summary(1, mean, None, None, None)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (count - 1))
    half = float(stats.t.ppf((1 + confidence) / 2, count - 1)) * std / math.sqrt(count)
    return Summary(count, mean, std, mean - half, mean + half)


def bucket_edges(values: Sequence[float], buckets: int, *, log: bool = False) -> list[float]:
    """`buckets` + 1 equal-width edges over the range of `values` (in log10 space if `log`)."""
    if buckets < 1:
        raise ValueError(f"buckets must be >= 1, got {buckets}")
    if not values:
        return []
    if log and min(values) <= 0:
        raise ValueError("log buckets need positive values")
    scaled = [math.log10(v) for v in values] if log else list(values)
    low, high = min(scaled), max(scaled)
    if low == high:
        buckets = 1
    edges = [low + (high - low) * i / buckets for i in range(buckets)] + [high]
    return [10**e for e in edges] if log else edges


def bucket_index(value: float, edges: Sequence[float], *, log: bool = False) -> int:
    """The bucket of `value`: [e_i, e_i+1) for each bucket, the last one closed."""
    scaled = math.log10 if log else float
    low, high = scaled(edges[0]), scaled(edges[-1])
    count = len(edges) - 1
    if high == low:
        return 0
    # computed from the ends, not by searching the edges, so 10**log10(x) rounding never moves
    # a value at an edge into the bucket before it
    position = (scaled(value) - low) / (high - low) * count
    return min(max(math.floor(position + 1e-9), 0), count - 1)


@dataclass(frozen=True)
class Level:
    """One level of a factor: its label, its range for a bucketed factor, and its summary."""

    level: str
    low: float | None
    high: float | None
    summary: Summary


def _label(low: float, high: float, last: bool) -> str:
    return f"[{low:.3g}, {high:.3g}{']' if last else ')'}"


def _category_levels(factors: Sequence[object], values: Sequence[float]) -> list[Level]:
    groups: dict[str, list[float]] = {}
    for factor, value in zip(factors, values, strict=True):
        groups.setdefault(str(factor), []).append(value)
    return [Level(name, None, None, summarize(groups[name])) for name in sorted(groups)]


def _bucket_levels(
    factors: Sequence[float], values: Sequence[float], buckets: int, log: bool
) -> list[Level]:
    levels: list[Level] = []
    if log and any(f == 0 for f in factors):  # λ = 0 has no logarithm: a level of its own
        zero = [v for f, v in zip(factors, values, strict=True) if f == 0]
        levels.append(Level("0", 0.0, 0.0, summarize(zero)))
        pairs = [(f, v) for f, v in zip(factors, values, strict=True) if f != 0]
        factors, values = [f for f, _ in pairs], [v for _, v in pairs]
    edges = bucket_edges(factors, buckets, log=log)
    groups: dict[int, list[float]] = {}
    for factor, value in zip(factors, values, strict=True):
        groups.setdefault(bucket_index(factor, edges, log=log), []).append(value)
    last = len(edges) - 2
    for i in sorted(groups):
        label = _label(edges[i], edges[i + 1], i == last)
        levels.append(Level(label, edges[i], edges[i + 1], summarize(groups[i])))
    return levels


def effects(
    factors: Sequence[str | float | None],
    values: Sequence[float | None],
    *,
    scale: Scale,
    buckets: int = 5,
) -> list[Level]:
    """Per level of a factor, the summary of a metric; pairs with a missing side are skipped.

    Args:
        factors: the factor's value for each observation (a category or a number).
        values: the metric for each observation; every replicate counts as one.
        scale: "category" groups equal values; "linear"/"log" group numbers into `buckets`
            equal-width buckets over their range (log: in log10 space, with 0 its own level).
    """
    pairs = [
        (f, v)
        for f, v in zip(factors, values, strict=True)
        if f is not None and v is not None and math.isfinite(v)
    ]
    kept_factors, kept_values = [f for f, _ in pairs], [float(v) for _, v in pairs]
    if scale == "category":
        return _category_levels(kept_factors, kept_values)
    numbers = [float(f) for f in kept_factors]
    return _bucket_levels(numbers, kept_values, buckets, scale == "log")


def effects_answer(
    factor: str,
    metric: str,
    factors: Sequence[str | float | None],
    values: Sequence[float | None],
    *,
    buckets: int = 5,
) -> dict[str, Any]:
    """What GET /effects answers: `effects` of a factor on a metric, with the factor's scale
    (FACTOR_SCALES) and the levels' summaries flattened."""
    scale = FACTOR_SCALES[factor]
    levels = effects(factors, values, scale=scale, buckets=buckets)
    return {
        "factor": factor,
        "metric": metric,
        "confidence": CONFIDENCE,
        "buckets": None if scale == "category" else buckets,
        "levels": [
            {"level": lv.level, "low": lv.low, "high": lv.high, **vars(lv.summary)}
            for lv in levels
        ],
    }
