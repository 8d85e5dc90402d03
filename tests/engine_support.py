"""Helpers for tests that run real studies: a local Ray cluster, studies in a real database,
and the driver as the separate process a Ray Job would run."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from studies import repository
from studies.db import make_engine, session_factory
from studies.migrations import upgrade
from studies.settings import ray_environment
from studies.spec import validate_spec

ROOT = Path(__file__).resolve().parent.parent


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
