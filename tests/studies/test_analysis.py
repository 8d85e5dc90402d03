"""Pareto fronts, best picks, level summaries and buckets, against hand computations and brute
force."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from studies.analysis import (
    CONFIDENCE,
    Summary,
    best_index,
    bucket_edges,
    bucket_index,
    effects,
    effects_answer,
    pareto_front,
    ranked_front,
    summarize,
)

# two-sided 95% Student t quantiles t(0.975, df), from a printed table
T975 = {1: 12.7062047362, 2: 4.30265272975, 3: 3.18244630528}


@pytest.mark.parametrize(
    ("points", "modes", "front"),
    [
        ([(1, 1), (2, 0), (0, 2), (0.5, 0.5), (1, 1)], ["max", "max"], [0, 1, 2, 4]),
        ([(1, 1), (2, 0), (0, 2), (0.5, 0.5)], ["min", "min"], [1, 2, 3]),
        ([(0.9, 0.1), (0.8, 0.5), (0.7, 0.4), (0.9, 0.05)], ["max", "max"], [0, 1]),
        ([(0.9, 3.0), (0.8, 1.0), (0.95, 5.0), (0.7, 2.0)], ["max", "min"], [0, 1, 2]),
        ([(3,), (1,), (3,)], ["max"], [0, 2]),  # one objective: the ties of the best
        ([(1, 2, 3), (3, 2, 1), (1, 1, 1), (2, 2, 2)], ["max"] * 3, [0, 1, 3]),
        ([], ["max", "max"], []),
    ],
)
def test_pareto_front_table(points, modes, front) -> None:
    assert pareto_front(points, modes) == front


def test_pareto_front_refuses_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="modes"):
        pareto_front([(1, 2)], ["max", "up"])


def _brute_force_front(points, modes) -> list[int]:
    sign = [1 if m == "max" else -1 for m in modes]

    def dominated(i: int) -> bool:
        a = [s * v for s, v in zip(sign, points[i], strict=True)]
        for j, other in enumerate(points):
            b = [s * v for s, v in zip(sign, other, strict=True)]
            pairs = list(zip(a, b, strict=True))
            if j != i and all(y >= x for x, y in pairs) and any(y > x for x, y in pairs):
                return True
        return False

    return [i for i in range(len(points)) if not dominated(i)]


values = st.integers(0, 6).map(lambda v: v / 2)  # a coarse grid makes ties and duplicates


@given(
    st.integers(1, 3).flatmap(
        lambda k: st.tuples(
            st.lists(st.tuples(*[values] * k), max_size=40),
            st.lists(st.sampled_from(["max", "min"]), min_size=k, max_size=k),
        )
    )
)
def test_pareto_front_equals_brute_force(case) -> None:
    points, modes = case
    assert pareto_front(points, modes) == _brute_force_front(points, modes)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], Summary(0, None, None, None, None)),
        ([0.7], Summary(1, 0.7, None, None, None)),
        # mean 2, sample std 1, half-width t(0.975, 2)·1/√3
        ([1.0, 2.0, 3.0], Summary(3, 2.0, 1.0, 2 - T975[2] / 3**0.5, 2 + T975[2] / 3**0.5)),
        # mean 0.5, std √0.02 = 0.1414..., half-width t(0.975, 1)·0.1414/√2 = 12.706·0.1
        ([0.4, 0.6], Summary(2, 0.5, 0.02**0.5, 0.5 - T975[1] * 0.1, 0.5 + T975[1] * 0.1)),
        ([5.0, 5.0, 5.0, 5.0], Summary(4, 5.0, 0.0, 5.0, 5.0)),
    ],
)
def test_summarize_table(values, expected: Summary) -> None:
    got = summarize(values)
    assert got.count == expected.count
    for field in ("mean", "std", "ci_low", "ci_high"):
        want = getattr(expected, field)
        assert getattr(got, field) == (None if want is None else pytest.approx(want, abs=1e-10))


@pytest.mark.parametrize(
    ("values", "buckets", "log", "edges"),
    [
        ([0.5, 2.0, 1.1], 3, False, [0.5, 1.0, 1.5, 2.0]),
        ([1e-4, 1e-1, 3e-3], 3, True, [1e-4, 1e-3, 1e-2, 1e-1]),
        ([0.8, 0.8], 5, False, [0.8, 0.8]),  # one value: one bucket
        ([], 5, False, []),
    ],
)
def test_bucket_edges_table(values, buckets, log, edges) -> None:
    assert bucket_edges(values, buckets, log=log) == pytest.approx(edges, rel=1e-12)


@pytest.mark.parametrize(
    ("value", "log", "index"),
    [(0.5, False, 0), (0.99, False, 0), (1.0, False, 1), (1.5, False, 2), (2.0, False, 2),
     (1e-4, True, 0), (1e-3, True, 1), (9.9e-3, True, 1), (1e-2, True, 2), (1e-1, True, 2)],
)  # fmt: skip
def test_bucket_index_puts_edges_in_the_upper_bucket_and_the_max_in_the_last(
    value: float, log: bool, index: int
) -> None:
    edges = [1e-4, 1e-3, 1e-2, 1e-1] if log else [0.5, 1.0, 1.5, 2.0]
    assert bucket_index(value, edges, log=log) == index


def test_bucket_edges_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="buckets"):
        bucket_edges([1.0], 0)
    with pytest.raises(ValueError, match="positive"):
        bucket_edges([0.0, 1.0], 2, log=True)


def test_category_effects_group_equal_levels_and_skip_missing_values() -> None:
    levels = effects(
        ["full", "early", "full", "early", "late", None],
        [0.9, 0.8, 0.7, None, 0.5, 0.99],
        scale="category",
    )
    assert [(lv.level, lv.summary.count) for lv in levels] == [
        ("early", 1), ("full", 2), ("late", 1)
    ]  # fmt: skip
    assert levels[1].summary.mean == pytest.approx(0.8)
    assert levels[1].summary.std == pytest.approx(math.sqrt(0.02))


def test_linear_buckets_of_p() -> None:
    # p range [0.5, 2.0] in 3 buckets of width 0.5: [0.5,1.0) [1.0,1.5) [1.5,2.0]
    p, metric = [0.5, 0.7, 1.0, 2.0, 1.9], [1.0, 3.0, 5.0, 7.0, 9.0]
    levels = effects(p, metric, scale="linear", buckets=3)
    assert [lv.level for lv in levels] == ["[0.5, 1)", "[1, 1.5)", "[1.5, 2]"]
    assert [lv.summary.count for lv in levels] == [2, 1, 2]
    assert [lv.summary.mean for lv in levels] == [2.0, 5.0, 8.0]
    assert (levels[0].low, levels[0].high) == (0.5, 1.0)


def test_log_buckets_of_lambda_keep_zero_apart() -> None:
    lams = [0.0, 1e-4, 2e-4, 1e-2, 1e-1, 0.0]
    levels = effects(lams, [0.1, 0.2, 0.4, 0.6, 0.8, 0.3], scale="log", buckets=3)
    assert [lv.level for lv in levels] == ["0", "[0.0001, 0.001)", "[0.01, 0.1]"]
    assert [lv.summary.count for lv in levels] == [2, 2, 2]
    assert [lv.summary.mean for lv in levels] == pytest.approx([0.2, 0.3, 0.7])


@given(
    st.lists(st.tuples(st.floats(0.1, 3.0), st.floats(0.0, 1.0)), min_size=1, max_size=50),
    st.integers(1, 8),
    st.booleans(),
)
def test_buckets_hold_every_observation_inside_their_range(pairs, buckets, log) -> None:
    factors, metric = [f for f, _ in pairs], [v for _, v in pairs]
    levels = effects(factors, metric, scale="log" if log else "linear", buckets=buckets)
    assert sum(lv.summary.count for lv in levels) == len(pairs)
    assert len(levels) <= buckets
    for level in levels:
        inside = [
            v for f, v in pairs
            if level.low * (1 - 1e-9) <= f <= level.high * (1 + 1e-9)
        ]  # fmt: skip
        assert level.summary.count <= len(inside)


@pytest.mark.parametrize(
    ("points", "modes", "ranked", "considered"),
    [
        # best first on the first objective; incomplete points are neither members nor counted
        ([(0.5, 0.9), (None, 1.0), (0.9, 0.1), (0.7, 0.5)], ["max", "max"], [2, 3, 0], 3),
        ([(0.9, 0.9), (0.5, 0.1), (0.7, None)], ["min", "max"], [1, 0], 2),
        ([(0.9, 0.2), (0.9, 0.2), (0.1, 0.1)], ["max", "max"], [0, 1], 3),  # ties: input order
        ([(0.3, 1.0), (0.3, 2.0)], ["max", "min"], [0], 2),
        ([(None, 1.0)], ["max", "max"], [], 0),
        ([], ["max"], [], 0),
    ],
)
def test_ranked_front_table(points, modes, ranked, considered) -> None:
    assert ranked_front(points, modes) == (ranked, considered)


@pytest.mark.parametrize(
    ("values", "mode", "index"),
    [
        ([0.5, 0.9, None, 0.9, 0.1], "max", 1),  # the first of equal values
        ([0.5, 0.9, None, 0.9, 0.1], "min", 4),
        ([None, math.nan, math.inf, 0.2], "max", 3),  # not finite: not a value
        ([None, None], "max", None),
        ([], "min", None),
    ],
)
def test_best_index_table(values, mode, index) -> None:
    assert best_index(values, mode) == index


def test_best_index_refuses_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="mode"):
        best_index([1.0], "maximize")


def test_effects_answer_is_what_get_effects_answers() -> None:
    answer = effects_answer("schedule", "val_acc", ["full", "early", "full", None], [1, 2, 3, 4])
    assert answer == {
        "factor": "schedule",
        "metric": "val_acc",
        "confidence": CONFIDENCE,
        "buckets": None,  # a category factor is not bucketed
        "levels": [
            {"level": "early", "low": None, "high": None, "count": 1, "mean": 2.0}
            | {"std": None, "ci_low": None, "ci_high": None},
            {"level": "full", "low": None, "high": None, **vars(summarize([1.0, 3.0]))},
        ],
    }
    bucketed = effects_answer("p", "val_acc", [0.5, 1.0, 2.0], [1, 2, 3], buckets=3)
    assert bucketed["buckets"] == 3
    assert [lv["level"] for lv in bucketed["levels"]] == ["[0.5, 1)", "[1, 1.5)", "[1.5, 2]"]
