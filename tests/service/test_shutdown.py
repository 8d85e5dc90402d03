"""Stopping `decaylab serve` with SIGTERM (docker stop, systemd, Kubernetes) or SIGINT (Ctrl-C)
stops everything it started: its own process and the embedded Ray head with its dashboard."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest
from engine_support import Service, processes_matching

from service.ray_head import descendants

pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its parent's wait is missing


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_service_and_its_ray_head(tmp_path: Path, signum: int) -> None:
    service = Service(tmp_path / "home", tmp_path / "data")
    service.start()
    assert service.process is not None
    started = [pid for pid, _ in descendants(service.process.pid)]
    dashboard = f"http://127.0.0.1:{service.env['DECAYLAB_DASHBOARD_PORT']}"
    assert httpx.get(f"{dashboard}/api/version", timeout=5).status_code == 200
    assert any(pid in processes_matching("gcs_server") for pid in started), "no Ray head"

    os.kill(service.process.pid, signum)  # the service alone, as an init system does
    assert service.process.wait(timeout=90) == (0 if signum == signal.SIGTERM else 130), (
        service.log()
    )

    left = [pid for pid in started if _alive(pid)]
    assert left == [], f"still running after {signum.name}: {left}"
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{dashboard}/api/version", timeout=2)
