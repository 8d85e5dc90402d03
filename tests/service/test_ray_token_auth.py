"""A Ray cluster that requires Ray's token auth, for real: a head started with RAY_AUTH_MODE=token
and its token in `~/.ray/auth_token` of its HOME, and `decaylab serve` pointed at its Jobs API
with RAY_AUTH_MODE=token and RAY_AUTH_TOKEN in its environment.

The service submits, watches and stops studies through the token; each study's driver joins the
cluster with the token its node holds; a client without the token is refused.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from engine_support import Service, wait_until
from factories import training_spec_data
from ray.exceptions import AuthenticationError

from service.ray_head import LocalRayHead, free_port
from service.ray_jobs import RayJobLauncher
from studies.settings import Settings

pytestmark = pytest.mark.slow
FINISHED = {"succeeded", "failed", "cancelled"}


@dataclass
class TokenRayHead(LocalRayHead):
    """The loopback head of the embedded default, with Ray's token auth on."""

    token: str = field(default_factory=lambda: secrets.token_hex(16))

    def environment(self) -> dict[str, str]:
        environment = super().environment()
        # where `ray get-auth-token --generate` puts it; not the service's HOME, nor the driver's
        token_file = Path(environment["HOME"]) / ".ray" / "auth_token"
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.write_text(self.token)
        return {**environment, "RAY_AUTH_MODE": "token"}


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenRayHead]:
    running = TokenRayHead(tmp_path_factory.mktemp("ray"), dashboard_port=free_port(), num_cpus=2)
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def service(head: TokenRayHead, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    home = tmp_path_factory.mktemp("home")
    running = Service(home, home / "data", ray_address=head.dashboard_url)
    running.env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": head.token}
    running.start()
    yield running
    running.stop()


def submit(service: Service, spec: dict[str, Any]) -> str:
    response = httpx.post(f"{service.url}/studies", json=spec, timeout=30)
    assert response.status_code == 201, response.text + service.log()
    study_id: str = response.json()["id"]
    return study_id


def job(head: TokenRayHead, ray_job_id: str) -> dict[str, Any]:
    authorization = {"Authorization": f"Bearer {head.token}"}
    response = httpx.get(f"{head.dashboard_url}/api/jobs/{ray_job_id}", headers=authorization)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def test_the_jobs_api_requires_the_token(head: TokenRayHead) -> None:
    jobs = f"{head.dashboard_url}/api/jobs/"
    assert httpx.get(jobs).status_code == 401
    assert httpx.get(jobs, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert httpx.get(jobs, headers={"Authorization": f"Bearer {head.token}"}).status_code == 200


def test_a_launcher_without_the_token_is_refused(head: TokenRayHead, tmp_path: Path) -> None:
    # this test process has no RAY_AUTH_MODE=token: Ray's client sends no token
    settings = Settings(home=tmp_path, database_url="", database_url_file=None)
    with pytest.raises(AuthenticationError, match="Authentication required"):
        RayJobLauncher(head.dashboard_url, settings).status("decaylab-no-such-job")
    with pytest.raises(AuthenticationError, match="Authentication required"):
        RayJobLauncher(head.dashboard_url, settings).submit("no-such-study")


def test_studies_run_and_stop_on_a_token_auth_cluster(
    head: TokenRayHead, service: Service
) -> None:
    study_id = submit(service, training_spec_data(n_trials=2, epochs=2, width=16))
    wait_until(lambda: service.study(study_id)["status"] in FINISHED, timeout=300)
    detail = service.study(study_id)
    # the driver joined the cluster with its node's token, and wrote every trial
    assert detail["status"] == "succeeded", service.log()
    assert detail["progress"]["counts"]["completed"] == 2
    # the driver records the study's end just before it exits
    wait_until(lambda: job(head, detail["ray_job_id"])["status"] == "SUCCEEDED", timeout=60)

    long_id = submit(service, training_spec_data(n_trials=2, epochs=200, width=256))
    wait_until(lambda: service.study(long_id)["progress"]["counts"]["running"] > 0, 180)
    cancelled = service.cli("cancel", long_id)
    assert cancelled.returncode == 0, cancelled.stderr
    wait_until(lambda: service.study(long_id)["status"] == "cancelled", timeout=60)
    ray_job_id = service.study(long_id)["ray_job_id"]
    wait_until(lambda: job(head, ray_job_id)["status"] == "STOPPED", timeout=60)
    # the reconciler asked the Jobs API for the running studies' statuses all along
    log = (service.home / "service.log").read_text(errors="replace")
    assert "reconciling studies with Ray jobs failed" not in log
