"""The seam between the service and Ray: how a study becomes a job (interface only).

The service calls a Launcher and never Ray itself, so every query and lifecycle route runs
without a cluster; the implementation that submits Ray Jobs lives beside this interface.
"""

from __future__ import annotations

from typing import Protocol


class Launcher(Protocol):
    """Submits, stops and inspects the Ray job that drives a study."""

    def submit(self, study_id: str, *, resume: bool = False) -> str:
        """Start the study's driver (`python -m workers.run <id> [--resume]`); the job id."""
        ...

    def stop(self, ray_job_id: str) -> None:
        """Ask the job to stop (its driver marks the study cancelled)."""
        ...

    def status(self, ray_job_id: str) -> str | None:
        """The job's Ray JobStatus name (PENDING, RUNNING, STOPPED, ...), None when unknown."""
        ...

    def nodes(self) -> list[dict[str, float]] | None:
        """The total resources of each live node ({"CPU": 16.0, "GPU": 2.0}); None: unknown."""
        ...


# Ray JobStatus names of a job whose driver is no longer alive
ENDED_JOB_STATUSES = frozenset({"STOPPED", "SUCCEEDED", "FAILED"})
