"""The states of a study and of a trial, with the moves allowed between them: one place for both.

The values are the strings stored in `dl_study.status` and `dl_trial.state` and shown by the API
(a StrEnum compares equal to its string, so rows read back as plain strings still match).
"""

from __future__ import annotations

from enum import StrEnum


class StudyState(StrEnum):
    """Where a study is in its life."""

    QUEUED = "queued"  # stored, its driver not yet running
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TrialState(StrEnum):
    """How one training run stands or ended."""

    RUNNING = "running"
    COMPLETED = "completed"
    PRUNED = "pruned"  # stopped early by the scheduler, with a result
    FAILED = "failed"
    DIVERGED = "diverged"  # its loss went non-finite
    CANCELLED = "cancelled"


STUDY_TRANSITIONS: dict[StudyState, frozenset[StudyState]] = {
    StudyState.QUEUED: frozenset({StudyState.RUNNING, StudyState.CANCELLED, StudyState.FAILED}),
    # back to queued: resumed after its driver died
    StudyState.RUNNING: frozenset(
        {StudyState.SUCCEEDED, StudyState.FAILED, StudyState.CANCELLED, StudyState.QUEUED}
    ),
    StudyState.FAILED: frozenset({StudyState.QUEUED, StudyState.RUNNING}),
    StudyState.CANCELLED: frozenset({StudyState.QUEUED, StudyState.RUNNING}),
    StudyState.SUCCEEDED: frozenset(),
}
# a study that ended (a resume may start it again, except a success)
TERMINAL_STUDY_STATES = frozenset({StudyState.SUCCEEDED, StudyState.FAILED, StudyState.CANCELLED})
# a study with a driver that is, or is about to be, writing to it
ACTIVE_STUDY_STATES = (StudyState.QUEUED, StudyState.RUNNING)
# a trial leaves RUNNING once, for one of these
FINISHED_TRIAL_STATES = tuple(state for state in TrialState if state is not TrialState.RUNNING)
# the trials whose results count (a pruned trial reports its last value)
RESULT_TRIAL_STATES = frozenset({TrialState.COMPLETED, TrialState.PRUNED})


def can_move(current: str, wanted: str) -> bool:
    """Whether a study may go from `current` to `wanted` (staying put is always allowed)."""
    return current == wanted or StudyState(wanted) in STUDY_TRANSITIONS[StudyState(current)]
