"""The Launcher that runs each study as a Ray Job, so it shows in the dashboard's Jobs view and
outlives a restart of the service."""

from __future__ import annotations

import logging
import sys
import uuid
from dataclasses import dataclass, field

from ray.job_submission import JobSubmissionClient
from sqlalchemy.engine import make_url

from studies.settings import Settings

log = logging.getLogger("decaylab.jobs")
# seconds a cancelled driver gets between SIGTERM and SIGKILL to mark its trials cancelled
STOP_GRACE_S = 30


@dataclass
class RayJobLauncher:
    """Submits `python -m workers.run <study_id>` to the Ray Jobs API at `address`.

    A cluster with Ray's token auth needs RAY_AUTH_MODE=token and the token (RAY_AUTH_TOKEN,
    RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token) in this process's environment when it starts:
    Ray's client then sends `Authorization: Bearer <token>` with every request by itself.
    """

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
            **database_env(settings),
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

    def nodes(self) -> list[dict[str, float]] | None:
        """The total resources of each live node, from Ray's state API; None when it fails."""
        from ray.util.state import list_nodes

        try:
            found = list_nodes(address=self.address, timeout=10, raise_on_missing_output=False)
        except Exception as error:  # an old or unreachable dashboard: the configured limits apply
            log.warning("cannot list the Ray cluster's nodes: %s", error)
            return None
        alive = [dict(node.resources_total) for node in found if node.state == "ALIVE"]
        # none yet: a head that has just started registers its node a few seconds after its
        # Jobs API answers, and "no node" is not "no CPU"
        return alive or None


def database_env(settings: Settings) -> dict[str, str]:
    """How a study's driver finds the service's database, told through the Jobs API.

    The Jobs API shows every job's environment to whoever asks (`GET /api/jobs/`), so a URL
    with a password never goes there: the driver reads it from its node's own environment
    (DECAYLAB_DATABASE_URL or DECAYLAB_DATABASE_URL_FILE) and checks it against the URL less its
    password. A URL without one (SQLite, trust or certificate auth) is sent as it is.
    """
    url, public = settings.resolved_database_url(), settings.public_database_url()
    if public == make_url(url).render_as_string(hide_password=False):
        return {"DECAYLAB_DATABASE_URL": url}
    return {"DECAYLAB_EXPECTED_DATABASE_URL": public}
