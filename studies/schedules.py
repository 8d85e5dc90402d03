"""When the regularizer is on and how the learning rate moves: pure functions of (step, total).

A schedule returns a multiplier in [0, 1]: the decay schedule multiplies the strength λ
(docs/science.md §2), the lr schedule the base learning rate. No torch in here, so the spec,
the search space and the training loop all share one definition.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DECAY_SCHEDULES = ("full", "early", "late", "none")
LR_SCHEDULES = ("constant", "cosine", "warmup_cosine")


class ScheduleError(ValueError):
    """A schedule parameter is invalid; the message starts with the parameter's spec name."""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_fraction(name: str, value: object, kind: str) -> None:
    if not _is_number(value) or not 0.0 < value < 1.0:  # type: ignore[operator]
        raise ScheduleError(f"{name} must be in (0, 1) for schedule {kind!r}, got {value!r}")


def _check_steps(step: int, total_steps: int) -> None:
    if not _is_integer(total_steps) or total_steps < 1:
        raise ScheduleError(f"total_steps must be an integer >= 1, got {total_steps!r}")
    if not _is_integer(step) or step < 0:
        raise ScheduleError(f"step must be an integer >= 0, got {step!r}")


@dataclass(frozen=True)
class DecaySchedule:
    """The multiplier on λ: `full`, `early` (until a fraction), `late` (from a fraction) or `none`.

    Args:
        kind: one of DECAY_SCHEDULES.
        until: for `early` only: decay while step < until · total_steps.
        start: for `late` only (the spec's `from`): decay once step >= start · total_steps.
    """

    kind: str = "full"
    until: float | None = None
    start: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in DECAY_SCHEDULES:
            raise ScheduleError(
                f"schedule must be one of {', '.join(DECAY_SCHEDULES)}, got {self.kind!r}"
            )
        if self.kind == "early":
            _check_fraction("until", self.until, self.kind)
        elif self.until is not None:
            raise ScheduleError(f"until only applies to schedule 'early', not {self.kind!r}")
        if self.kind == "late":
            _check_fraction("from", self.start, self.kind)
        elif self.start is not None:
            raise ScheduleError(f"from only applies to schedule 'late', not {self.kind!r}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> DecaySchedule:
        """Build from spec-style keys: `schedule` (default full), `until`, `from`."""
        return cls(params.get("schedule", "full"), params.get("until"), params.get("from"))

    @property
    def switch_fraction(self) -> float | None:
        """The fraction of training where the multiplier changes (None for full and none)."""
        return self.until if self.kind == "early" else self.start

    def switch_step(self, total_steps: int) -> int | None:
        """The first step whose multiplier differs from step 0's (None for full and none).

        It may equal total_steps when the fraction rounds up past the last step (0 .. T-1).
        """
        _check_steps(0, total_steps)
        fraction = self.switch_fraction
        # step < f·T  ⇔  step < ceil(f·T) for integer steps: the same float product as multiplier()
        return None if fraction is None else math.ceil(fraction * total_steps)

    def multiplier(self, step: int, total_steps: int) -> float:
        """The factor on λ at `step` (0-based) of `total_steps`; steps past the end clamp."""
        _check_steps(step, total_steps)
        if self.kind == "full":
            return 1.0
        if self.kind == "none":
            return 0.0
        # early and late test the same inequality, so a pair with one switch point sums to 1
        before_switch = step < self.switch_fraction * total_steps  # type: ignore[operator]
        on = before_switch if self.kind == "early" else not before_switch
        return 1.0 if on else 0.0


@dataclass(frozen=True)
class LRSchedule:
    """The multiplier on the base learning rate.

    Args:
        kind: one of LR_SCHEDULES.
        warmup: for `warmup_cosine` only: the fraction of training spent warming up, in (0, 1).
    """

    kind: str = "constant"
    warmup: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in LR_SCHEDULES:
            raise ScheduleError(
                f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.kind!r}"
            )
        if self.kind == "warmup_cosine":
            _check_fraction("warmup", self.warmup, self.kind)
        elif self.warmup != 0.0:
            raise ScheduleError(f"warmup only applies to 'warmup_cosine', not {self.kind!r}")

    def warmup_steps(self, total_steps: int) -> int:
        """How many leading steps warm up: ceil(warmup · T), below T so the peak is reached."""
        _check_steps(0, total_steps)
        return min(math.ceil(self.warmup * total_steps), total_steps - 1)

    def multiplier(self, step: int, total_steps: int) -> float:
        """The factor on the base lr at `step` (0-based) of `total_steps`; later steps clamp."""
        _check_steps(step, total_steps)
        if self.kind == "constant":
            return 1.0
        warm = self.warmup_steps(total_steps)
        if step < warm:
            # nanoGPT's (it + 1) / (warmup + 1): starts near 0 without a zero-lr step
            return (step + 1) / (warm + 1)
        progress = min(1.0, (step - warm) / (total_steps - warm))
        return 0.5 * (1.0 + math.cos(math.pi * progress))
