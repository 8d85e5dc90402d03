"""Eight studies submitted at once to the real service with room for two drivers: never more
than two run, the others wait as queued, and all eight succeed."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from engine_support import Service
from factories import training_spec_data

pytestmark = pytest.mark.slow
LIMIT = 2


def test_eight_studies_at_once_run_two_at_a_time(tmp_path: Path) -> None:
    service = Service(tmp_path / "home", tmp_path / "data", max_running_studies=str(LIMIT))
    service.start()
    try:
        spec = training_spec_data(n_trials=1, epochs=1, width=16, name="queued")
        ids = []
        for _ in range(8):
            response = httpx.post(f"{service.url}/studies", json=spec, timeout=30)
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        most, deadline = 0, time.monotonic() + 900
        while time.monotonic() < deadline:
            studies = [service.study(study_id) for study_id in ids]
            # a driver is running once its study has a Ray job and has not ended
            drivers = [
                s for s in studies if s["status"] in ("queued", "running") and s["ray_job_id"]
            ]
            most = max(most, len(drivers))
            if all(s["status"] not in ("queued", "running") for s in studies):
                break
            time.sleep(0.5)
        assert [s["status"] for s in studies] == ["succeeded"] * 8, service.log()
        assert most == LIMIT  # the slots were used, and never more
    finally:
        service.stop()
