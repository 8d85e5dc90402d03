"""The Launcher that runs each study as a Ray Job, so it shows in the dashboard's Jobs view and
outlives a restart of the service."""

from __future__ import annotations

import logging
import sys
import uuid
from dataclasses import dataclass, field

from ray.job_submission import JobSubmissionClient

from studies.settings import Settings

log = logging.getLogger("decaylab.jobs")
# seconds a cancelled driver gets between SIGTERM and SIGKILL to mark its trials cancelled
STOP_GRACE_S = 30


@dataclass
class RayJobLauncher:
    """Submits `python -m workers.run <study_id>` to the Ray Jobs API at `address`."""

    address: str
    settings: Settings
    _client: JobSubmissionClient | None = field(default=None, repr=False)

    @property
    def client(self) -> JobSubmissionClient:
        """The Jobs API client, created on first use."""
        if self._client is None:
            self._client = JobSubmissionClient(self.address)
        return self._client

    def job_env(self) -> dict[str, str]:
        """What the driver needs to find the same database and data as this service."""
        settings = self.settings
        return {
            "DECAYLAB_DATABASE_URL": settings.resolved_database_url(),
            "DECAYLAB_HOME": str(settings.home.resolve()),
            "DECAYLAB_DATA_DIR": str(settings.data_dir.resolve()),
            "DECAYLAB_DOWNLOAD": "1" if settings.download else "0",
            "RAY_JOB_STOP_WAIT_TIME_S": str(STOP_GRACE_S),
            "RAY_USAGE_STATS_ENABLED": "0",
        }

    def submit(self, study_id: str, *, resume: bool = False) -> str:
        """Start the study's driver as a Ray Job; returns the job id."""
        # the venv's interpreter: a job runs with the PATH of whoever started the head
        entrypoint = f"{sys.executable} -m workers.run {study_id}"
        if resume:
            entrypoint += " --resume"
        job_id = self.client.submit_job(
            entrypoint=entrypoint,
            submission_id=f"decaylab-{study_id[:8]}-{uuid.uuid4().hex[:8]}",
            runtime_env={"env_vars": self.job_env()},
            metadata={"decaylab_study": study_id, "resume": str(resume)},
        )
        log.info("study %s submitted as Ray job %s", study_id, job_id)
        return job_id

    def stop(self, ray_job_id: str) -> None:
        """Ask the job to stop: SIGTERM, which its driver turns into a cancelled study."""
        self.client.stop_job(ray_job_id)

    def status(self, ray_job_id: str) -> str | None:
        """The job's status name, or None when the cluster does not know the job."""
        try:
            return str(self.client.get_job_status(ray_job_id).value)
        except RuntimeError:  # the Jobs API answers 404 for a job it never saw
            return None
