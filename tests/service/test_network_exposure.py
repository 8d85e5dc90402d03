"""What the embedded default shows the network: nothing. `decaylab serve` and the Ray head it
starts listen on loopback only (the Ray Client server and the Jobs API run any code they are
sent), and the Jobs API, which shows every job's environment to whoever asks, shows no database
password."""

from __future__ import annotations

import ipaddress
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from engine_support import Service, wait_until
from factories import training_spec_data
from sqlalchemy.engine import make_url

from service.ray_head import descendants

pytestmark = pytest.mark.slow
FINISHED = {"succeeded", "failed", "cancelled"}


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except OSError:
        return "?"


def listening_sockets(pids: set[int]) -> list[tuple[str, int, str]]:
    """(local address, pid, command line) of every TCP socket that one of `pids` listens on."""
    listing = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True)
    found = []
    for line in listing.stdout.splitlines():
        address = line.split()[3]
        for pid in map(int, re.findall(r"pid=(\d+),", line)):
            if pid in pids:
                found.append((address, pid, command_line(pid)))
    return found


def is_loopback(address: str) -> bool:
    """`127.0.0.1:80`, `[::1]:80` or `[::ffff:127.0.0.1]:80`; not `*:80` or `0.0.0.0:80`."""
    host = address.rsplit(":", 1)[0].split("%")[0].strip("[]")
    if host == "*":
        return False
    ip = ipaddress.ip_address(host)
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return (mapped or ip).is_loopback


def submit(service: Service, spec: dict[str, Any]) -> str:
    response = httpx.post(f"{service.url}/studies", json=spec, timeout=30)
    assert response.status_code == 201, response.text
    study_id: str = response.json()["id"]
    return study_id


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    home = tmp_path_factory.mktemp("home")
    running = Service(home, home / "data")
    running.start()
    yield running
    running.stop()


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1:8000") and is_loopback("[::1]:8000")
    assert is_loopback("[::ffff:127.0.0.1]:8000")
    assert not is_loopback("*:8000") and not is_loopback("0.0.0.0:8000")
    assert not is_loopback("192.0.2.2:8000") and not is_loopback("[::ffff:192.0.2.2]:8000")
    assert not is_loopback("[fe80::1]%eth0:8000")


def test_nothing_listens_beyond_loopback(service: Service) -> None:
    assert service.process is not None
    # a running study: the job's driver and the trials' workers listen as well
    study_id = submit(service, training_spec_data(n_trials=2, epochs=200, width=256))
    wait_until(lambda: service.study(study_id)["progress"]["counts"]["running"] > 0, 180)
    pids = {service.process.pid} | {pid for pid, _ in descendants(service.process.pid)}
    sockets = listening_sockets(pids)
    service.cli("cancel", study_id)
    addresses = {address for address, _, _ in sockets}
    dashboard_port = service.env["DECAYLAB_DASHBOARD_PORT"]
    assert {f"127.0.0.1:{service.port}", f"127.0.0.1:{dashboard_port}"} <= addresses, sockets
    exposed = [socket for socket in sockets if not is_loopback(socket[0])]
    assert not exposed, "listening beyond loopback:\n" + "\n".join(
        f"{address} pid {pid}: {command}" for address, pid, command in exposed
    )


@pytest.mark.postgres
def test_the_jobs_api_shows_no_database_password(
    tmp_path: Path, make_postgres_database: Callable[[], str]
) -> None:
    url = make_url(make_postgres_database())
    # the test server trusts its clients and ignores a password it is sent
    secret = url.password or "pw-never-in-the-jobs-api"
    url_with_secret = url.set(password=secret).render_as_string(hide_password=False)
    running = Service(tmp_path / "home", tmp_path / "data", database_url=url_with_secret)
    running.start()
    try:
        study_id = submit(running, training_spec_data(n_trials=1, epochs=1, width=16))
        wait_until(lambda: running.study(study_id)["status"] in FINISHED, timeout=300)
        # the driver found the database through its node's environment
        assert running.study(study_id)["status"] == "succeeded", running.log()
        dashboard = httpx.get(f"{running.url}/health", timeout=10).json()["ray_dashboard"]
        jobs = httpx.get(f"{dashboard}/api/jobs/", timeout=30)
        assert jobs.status_code == 200 and f"decaylab-{study_id[:8]}" in jobs.text
        assert secret not in jobs.text
    finally:
        running.stop()
