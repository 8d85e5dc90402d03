"""Decay and lr schedules: exact tables, properties, and validation messages."""

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studies.schedules import (
    DECAY_SCHEDULES,
    LR_SCHEDULES,
    DecaySchedule,
    LRSchedule,
    ScheduleError,
)

# wall-clock limits fail tests on a busy machine without saying anything about the code
no_deadline = settings(deadline=None)

fractions = st.floats(min_value=1e-6, max_value=1 - 1e-6)
totals = st.integers(min_value=1, max_value=100_000)


def any_decay_schedule() -> st.SearchStrategy[DecaySchedule]:
    return st.one_of(
        st.just(DecaySchedule("full")),
        st.just(DecaySchedule("none")),
        fractions.map(lambda f: DecaySchedule("early", until=f)),
        fractions.map(lambda f: DecaySchedule("late", start=f)),
    )


def any_lr_schedule() -> st.SearchStrategy[LRSchedule]:
    return st.one_of(
        st.just(LRSchedule("constant")),
        st.just(LRSchedule("cosine")),
        fractions.map(lambda f: LRSchedule("warmup_cosine", warmup=f)),
    )


@pytest.mark.parametrize(
    ("schedule", "total", "expected"),
    [
        (DecaySchedule(), 4, [1, 1, 1, 1, 1]),
        (DecaySchedule("none"), 4, [0, 0, 0, 0, 0]),
        # until·T = 2: steps 0 and 1 decay
        (DecaySchedule("early", until=0.5), 4, [1, 1, 0, 0, 0]),
        # until·T = 1.2: steps 0 and 1 are before it
        (DecaySchedule("early", until=0.3), 4, [1, 1, 0, 0, 0]),
        (DecaySchedule("early", until=0.25), 4, [1, 0, 0, 0, 0]),
        (DecaySchedule("late", start=0.5), 4, [0, 0, 1, 1, 1]),
        (DecaySchedule("late", start=0.3), 4, [0, 0, 1, 1, 1]),
        (DecaySchedule("late", start=0.9), 4, [0, 0, 0, 0, 1]),
        # one step in total: early decays step 0 only, late never within the run
        (DecaySchedule("early", until=0.5), 1, [1, 0]),
        (DecaySchedule("late", start=0.5), 1, [0, 1]),
    ],
)
def test_decay_multiplier_table(schedule, total, expected):
    assert [schedule.multiplier(step, total) for step in range(total + 1)] == expected


@pytest.mark.parametrize(
    ("schedule", "total", "switch"),
    [
        (DecaySchedule(), 10, None),
        (DecaySchedule("none"), 10, None),
        (DecaySchedule("early", until=0.5), 10, 5),
        (DecaySchedule("early", until=0.31), 10, 4),
        (DecaySchedule("late", start=0.2), 100, 20),
        (DecaySchedule("late", start=0.999), 10, 10),
    ],
)
def test_switch_step_table(schedule, total, switch):
    assert schedule.switch_step(total) == switch


@pytest.mark.parametrize(
    ("schedule", "fraction"),
    [
        (DecaySchedule(), None),
        (DecaySchedule("none"), None),
        (DecaySchedule("early", until=0.4), 0.4),
        (DecaySchedule("late", start=0.7), 0.7),
    ],
)
def test_switch_fraction(schedule, fraction):
    assert schedule.switch_fraction == fraction


def test_from_params_reads_spec_names():
    assert DecaySchedule.from_params({"schedule": "late", "from": 0.25}) == DecaySchedule(
        "late", start=0.25
    )
    assert DecaySchedule.from_params({"schedule": "early", "until": 0.5}).until == 0.5
    assert DecaySchedule.from_params({}) == DecaySchedule("full")


@no_deadline
@given(schedule=any_decay_schedule(), total=totals, data=st.data())
def test_decay_multiplier_is_zero_or_one(schedule, total, data):
    step = data.draw(st.integers(min_value=0, max_value=2 * total))
    assert schedule.multiplier(step, total) in (0.0, 1.0)


@no_deadline
@given(fraction=fractions, total=st.integers(min_value=1, max_value=5000))
def test_early_and_late_cover_every_step_exactly_once(fraction, total):
    early, late = DecaySchedule("early", until=fraction), DecaySchedule("late", start=fraction)
    sums = {early.multiplier(s, total) + late.multiplier(s, total) for s in range(total + 1)}
    assert sums == {1.0}


@no_deadline
@given(schedule=any_decay_schedule(), total=totals)
def test_decay_endpoints(schedule, total):
    first, last = schedule.multiplier(0, total), schedule.multiplier(total, total)
    expected = {"full": (1, 1), "none": (0, 0), "early": (1, 0), "late": (0, 1)}[schedule.kind]
    assert (first, last) == expected


@no_deadline
@given(schedule=any_decay_schedule(), total=totals)
def test_switch_step_is_where_the_multiplier_changes(schedule, total):
    switch = schedule.switch_step(total)
    if switch is None:
        return
    assert 1 <= switch <= total
    assert schedule.multiplier(switch - 1, total) == schedule.multiplier(0, total)
    assert schedule.multiplier(switch, total) != schedule.multiplier(0, total)


@pytest.mark.parametrize(
    ("schedule", "total", "expected"),
    [
        (LRSchedule(), 4, [1, 1, 1, 1, 1, 1]),
        # 0.5·(1 + cos(π·t/4)) for t = 0..4, then clamped
        (LRSchedule("cosine"), 4, [1, 0.5 + 0.25 * 2**0.5, 0.5, 0.5 - 0.25 * 2**0.5, 0, 0]),
        # 2 warm-up steps: 1/3, 2/3, then cosine over the remaining 2 steps: 1, 0.5, 0
        (LRSchedule("warmup_cosine", warmup=0.5), 4, [1 / 3, 2 / 3, 1, 0.5, 0, 0]),
        # ceil(0.1·10) = 1 warm-up step at 1/2, then 0.5·(1 + cos(π·(t-1)/9))
        (LRSchedule("warmup_cosine", warmup=0.1), 10, [0.5, 1, 0.5 + 0.5 * math.cos(math.pi / 9)]),
        # a one-step run has no room to warm up: it runs at the peak
        (LRSchedule("warmup_cosine", warmup=0.5), 1, [1, 0]),
    ],
)
def test_lr_multiplier_table(schedule, total, expected):
    got = [schedule.multiplier(step, total) for step in range(len(expected))]
    assert got == pytest.approx(expected, abs=1e-15)


@no_deadline
@given(schedule=any_lr_schedule(), total=totals, data=st.data())
def test_lr_multiplier_in_unit_interval(schedule, total, data):
    step = data.draw(st.integers(min_value=0, max_value=2 * total))
    assert 0.0 <= schedule.multiplier(step, total) <= 1.0


@no_deadline
@given(total=totals)
def test_cosine_is_exact_at_endpoints(total):
    cosine = LRSchedule("cosine")
    assert cosine.multiplier(0, total) == 1.0
    assert cosine.multiplier(total, total) == 0.0


@no_deadline
@given(fraction=fractions, total=st.integers(min_value=2, max_value=100_000))
def test_warmup_cosine_endpoints(fraction, total):
    schedule = LRSchedule("warmup_cosine", warmup=fraction)
    warm = schedule.warmup_steps(total)
    assert 0 < schedule.multiplier(0, total) <= 0.5
    assert 1 <= warm < total
    assert schedule.multiplier(warm, total) == 1.0
    assert schedule.multiplier(total, total) == 0.0


@no_deadline
@given(schedule=any_lr_schedule(), total=st.integers(min_value=1, max_value=2000))
def test_lr_rises_then_never_increases(schedule, total):
    values = [schedule.multiplier(step, total) for step in range(total + 2)]
    warm = schedule.warmup_steps(total)
    assert all(a < b for a, b in itertools.pairwise(values[: warm + 1]))
    assert all(a >= b for a, b in itertools.pairwise(values[warm:]))


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda: DecaySchedule("sometimes"), "schedule"),
        (lambda: DecaySchedule("early"), "until"),
        (lambda: DecaySchedule("early", until=0.0), "until"),
        (lambda: DecaySchedule("early", until=1.0), "until"),
        (lambda: DecaySchedule("early", until=float("nan")), "until"),
        (lambda: DecaySchedule("early", until=True), "until"),
        (lambda: DecaySchedule("early", until=0.5, start=0.5), "from"),
        (lambda: DecaySchedule("late"), "from"),
        (lambda: DecaySchedule("late", start=1.5), "from"),
        (lambda: DecaySchedule("late", start=-0.1), "from"),
        (lambda: DecaySchedule("late", until=0.5, start=0.5), "until"),
        (lambda: DecaySchedule("full", until=0.5), "until"),
        (lambda: DecaySchedule("none", start=0.5), "from"),
        (lambda: DecaySchedule().multiplier(0, 0), "total_steps"),
        (lambda: DecaySchedule().multiplier(-1, 10), "step"),
        (lambda: DecaySchedule().multiplier(1.5, 10), "step"),
        (lambda: DecaySchedule("early", until=0.5).switch_step(0), "total_steps"),
        (lambda: LRSchedule("step_decay"), "lr_schedule"),
        (lambda: LRSchedule("warmup_cosine"), "warmup"),
        (lambda: LRSchedule("warmup_cosine", warmup=1.0), "warmup"),
        (lambda: LRSchedule("cosine", warmup=0.1), "warmup"),
        (lambda: LRSchedule("cosine").multiplier(3, 0), "total_steps"),
    ],
)
def test_validation_names_the_parameter(build, name):
    with pytest.raises(ScheduleError) as raised:
        build()
    assert str(raised.value).split()[0] == name


def test_schedule_errors_are_value_errors():
    with pytest.raises(ValueError, match="until"):
        DecaySchedule("early", until=2.0)


@pytest.mark.parametrize("kind", DECAY_SCHEDULES)
def test_every_listed_decay_kind_builds(kind):
    params = {"early": {"until": 0.5}, "late": {"start": 0.5}}.get(kind, {})
    assert DecaySchedule(kind, **params).multiplier(0, 10) in (0.0, 1.0)


@pytest.mark.parametrize("kind", LR_SCHEDULES)
def test_every_listed_lr_kind_builds(kind):
    assert LRSchedule(kind, 0.1 if kind == "warmup_cosine" else 0.0).multiplier(5, 10) > 0.0
