"""Helpers for tests that run real studies: a local Ray cluster, studies in a real database,
and the driver as the separate process a Ray Job would run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from service.ray_head import free_port
from studies import repository
from studies.db import make_engine, session_factory
from studies.migrations import upgrade
from studies.settings import ray_environment
from studies.spec import validate_spec

ROOT = Path(__file__).resolve().parent.parent
DECAYLAB = str(Path(sys.executable).with_name("decaylab"))


@contextmanager
def local_ray(home: Path, num_cpus: int = 2) -> Iterator[str]:
    """A local Ray head in this process that sends nothing off the machine; yields its address."""
    import ray

    saved = dict(os.environ)
    os.environ.update(ray_environment(home))
    # Ray's socket paths must stay under 108 characters: a short directory, removed afterwards
    temp_dir = tempfile.mkdtemp(prefix="dlray", dir="/tmp")
    try:
        context = ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            _temp_dir=temp_dir,
            log_to_driver=False,
        )
        os.environ.clear()
        os.environ.update(saved)
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()
        os.environ.clear()
        os.environ.update(saved)
        subprocess.run(["rm", "-rf", temp_dir], check=False)


def create_study(url: str, spec: dict[str, Any]) -> str:
    """Migrate the database and insert a queued study; returns its id."""
    upgrade(url)
    with session_factory(make_engine(url))() as session:
        study = repository.create_study(session=session, spec=validate_spec(spec))
        session.commit()
        return study.id


def driver_env(url: str, home: Path, data_dir: Path) -> dict[str, str]:
    """The environment of a driver process for one test database."""
    return {
        **os.environ,
        "DECAYLAB_DATABASE_URL": url,
        "DECAYLAB_HOME": str(home),
        "DECAYLAB_DATA_DIR": str(data_dir),
        "PYTHONPATH": str(ROOT),
    }


def start_driver(
    study_id: str, address: str, env: dict[str, str], *, resume: bool = False
) -> subprocess.Popen[str]:
    """`python -m workers.run <id>` against the test's Ray cluster, as a Ray Job would run it."""
    command = [sys.executable, "-m", "workers.run", study_id, "--ray-address", address]
    if resume:
        command.append("--resume")
    return subprocess.Popen(
        command,
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_driver(study_id: str, address: str, env: dict[str, str], *, resume: bool = False) -> str:
    """Run the driver to its end; returns its output (asserting it exited)."""
    process = start_driver(study_id, address, env, resume=resume)
    output, _ = process.communicate(timeout=600)
    assert process.returncode is not None, output
    return output


def wait_until(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.25)


def processes_matching(text: str) -> list[int]:
    """PIDs of this machine's processes whose command line contains `text`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            pids.append(int(entry.name))
    return pids


class Service:
    """`decaylab serve` in its own process group, on free ports, with its own home."""

    def __init__(self, home: Path, data_dir: Path, **settings: str) -> None:
        """`settings` are further DECAYLAB_* variables by their lower-case suffix."""
        self.home, self.port = home, free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DECAYLAB_")}
        self.env |= {
            "DECAYLAB_HOME": str(home),
            "DECAYLAB_DATA_DIR": str(data_dir),
            "DECAYLAB_API_PORT": str(self.port),
            "DECAYLAB_DASHBOARD_PORT": str(free_port()),
            **{f"DECAYLAB_{name.upper()}": value for name, value in settings.items()},
        }
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        log = (self.home / "service.log").open("ab")
        self.process = subprocess.Popen(
            [DECAYLAB, "serve"], env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

        def healthy() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log()
            try:
                return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=180)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def log(self) -> str:
        path = self.home / "service.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DECAYLAB, "--api", self.url, *args],
            env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def study(self, study_id: str) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(f"{self.url}/studies/{study_id}", timeout=10).json()
        return result
