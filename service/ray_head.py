"""The embedded default's Ray head: started and stopped by the service, loopback only.

Every socket of the head listens on 127.0.0.1: the Jobs API and the Ray Client server run any code
they are sent, and the head runs without Ray's token auth (`ray_environment`), so nothing but
this machine's processes may reach them.

`ray start --head --block` runs in its own session so that the whole head (GCS, raylet,
dashboard, job server) is stopped by one signal to its process group; `ray stop` would kill every
Ray process of the machine, including other people's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from studies.settings import ray_environment

log = logging.getLogger("decaylab.ray")
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port nobody listens on right now (Ray's default 6379 is Redis's here)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalRayHead:
    """A Ray head on this machine for the embedded default."""

    home: Path
    dashboard_port: int = 8265
    num_cpus: int | None = None
    gcs_port: int = field(default_factory=free_port)
    # Ray 2.60 turns a joining node's loopback --address into the machine's address, so no other
    # node can join a loopback-only head, not even one on this machine: False lets them (and the
    # network) reach its GCS, raylet and workers on every interface
    loopback_only: bool = True
    process: subprocess.Popen[bytes] | None = None

    @property
    def gcs_address(self) -> str:
        """What other Ray nodes join (`ray start --address=...`)."""
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        """Where the Ray dashboard and the Jobs API answer."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    def command(self) -> list[str]:
        """The `ray start` command line: loopback only (by default), every port chosen free."""
        ray = str(Path(sys.executable).with_name("ray"))
        command = [
            ray, "start", "--head", "--block", "--disable-usage-stats",
            f"--port={self.gcs_port}",
            f"--dashboard-host={LOOPBACK}",
            f"--dashboard-port={self.dashboard_port}",
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}",
            f"--temp-dir={self._temp_dir()}",
        ]  # fmt: skip
        if self.loopback_only:
            # a node whose IP is loopback binds every server to loopback: the GCS, the raylet's
            # node and object managers, every worker, the client server, the agents, metrics
            command.append(f"--node-ip-address={LOOPBACK}")
        if self.num_cpus is not None:
            command.append(f"--num-cpus={self.num_cpus}")
        return command

    def _temp_dir(self) -> Path:
        # Ray's socket paths must stay under 108 characters: keep the directory short
        path = (self.home / "ray").resolve()
        if len(str(path)) > 40:
            path = Path("/tmp") / f"decaylab-ray-{os.getuid()}-{abs(hash(str(path))) % 10**8}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def start(self, timeout: float = 120.0) -> None:
        """Start the head and wait until its Jobs API answers."""
        if self._answers():
            raise RuntimeError(
                f"something already answers on {self.dashboard_url}: set DECAYLAB_RAY_ADDRESS to "
                "use that Ray cluster, or DECAYLAB_DASHBOARD_PORT to start ours elsewhere"
            )
        log_path = self.home / "ray-head.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.command(),
            env=self.environment(),
            stdout=log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the local Ray head did not start; see {log_path}")
            time.sleep(0.5)
        log.info("local Ray head up, dashboard at %s", self.dashboard_url)

    def environment(self) -> dict[str, str]:
        """The head's environment: this process's, with `ray_environment` and free metrics ports.

        The dashboard and the autoscaler export metrics on fixed default ports (44227, 44217):
        free ones let several heads share a machine.
        """
        environment = {
            **os.environ,
            **ray_environment(self.home),
            "DASHBOARD_METRIC_PORT": str(free_port()),
            "AUTOSCALER_METRIC_PORT": str(free_port()),
        }
        if self.loopback_only:
            # Ray replaces a loopback --node-ip-address with the machine's address, except in a
            # single-node "cluster" as on Windows and macOS: this keeps 127.0.0.1, in the head
            # and in every process it starts (job drivers connect to it by that address)
            environment["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        return environment

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.dashboard_url}/api/version", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # it answers, if only to refuse (a head with token auth: 401)
        except OSError:
            return False

    def stop(self, grace: float = 3.0) -> None:
        """Stop every process of the head: SIGTERM to its group, then SIGKILL to what is left.

        The GCS server ignores SIGTERM, so the group always gets the SIGKILL. Ray Jobs start
        their drivers in sessions of their own, out of the group's reach: they are killed too
        (not SIGTERMed, which would end their studies as cancelled; a restarted service
        resumes them instead).
        """
        if self.process is None:
            return
        process, self.process = self.process, None
        strays = {group for _, group in descendants(process.pid)} - {process.pid, os.getpgrp()}
        for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(process.pid, signum)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        for group in strays:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        log.info("local Ray head stopped")


def descendants(pid: int) -> list[tuple[int, int]]:
    """(pid, process group) of every process below `pid`: its children, theirs, and so on."""
    listing = subprocess.run(
        ["ps", "-A", "-o", "pid=,ppid=,pgid="], capture_output=True, text=True, check=False
    )
    children: dict[int, list[tuple[int, int]]] = {}
    for line in listing.stdout.splitlines():
        child, parent, group = (int(field) for field in line.split())
        children.setdefault(parent, []).append((child, group))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += [child for child, _ in below]
    return found
