"""Several Ray nodes for real: a head and a second node started with `ray start` on this machine,
the service pointed at the head's Jobs API, results in PostgreSQL.

Each node has one CPU and each trial asks for one, so two concurrent trials must run on two
nodes; killing the second node's raylet mid-study must cost nothing but a retry.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from engine_support import Service, processes_matching, wait_until
from factories import training_spec_data
from ray.util.state import list_nodes
from sqlalchemy import func, select

from service.ray_head import LocalRayHead, free_port
from studies.db import Metric, Trial, make_engine, session_factory
from studies.settings import ray_environment

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
FINISHED = {"succeeded", "failed", "cancelled"}


@dataclass
class RayNode:
    """A second Ray node joining `head` (`ray start --address=...`), in its own process group."""

    head: LocalRayHead
    num_cpus: int = 1
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        ray = str(Path(sys.executable).with_name("ray"))
        command = [
            ray, "start", f"--address={self.head.gcs_address}", "--block",
            f"--num-cpus={self.num_cpus}", "--num-gpus=0", "--disable-usage-stats",
            f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
        ]  # fmt: skip
        log = (self.head.home / "ray-node.log").open("ab")
        env = {**os.environ, **ray_environment(self.head.home)}
        self.process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def raylet_pids(self) -> list[int]:
        """The raylet of this node (the head's raylet is in another process group)."""
        assert self.process is not None
        pids = []
        for pid in processes_matching("raylet"):
            try:
                if os.getpgid(pid) == self.process.pid:
                    pids.append(pid)
            except ProcessLookupError:
                continue
        return pids

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None


def alive_nodes(head: LocalRayHead) -> list[str]:
    # a dead node's entry counts as "missing output" to the state API: filtered out, not an error
    nodes = list_nodes(address=head.dashboard_url, raise_on_missing_output=False)
    return [node.node_id for node in nodes if node.state == "ALIVE"]


@dataclass
class Cluster:
    head: LocalRayHead
    node: RayNode
    head_node_id: str
    second_node_id: str


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    # a second node joins by the machine's address (Ray rewrites a loopback --address to it, and
    # refuses loopback-only multi-node clusters): this test cluster is configured to be reachable
    head = LocalRayHead(
        tmp_path / "ray", dashboard_port=free_port(), num_cpus=1, loopback_only=False
    )
    head.start()
    node = RayNode(head)
    try:
        wait_until(lambda: len(alive_nodes(head)) == 1, timeout=60)
        (head_node_id,) = alive_nodes(head)
        node.start()
        wait_until(lambda: len(alive_nodes(head)) == 2, timeout=120)
        (second_node_id,) = set(alive_nodes(head)) - {head_node_id}
        yield Cluster(head, node, head_node_id, second_node_id)
    finally:
        node.stop()
        head.stop()


@pytest.fixture
def service(
    cluster: Cluster, tmp_path: Path, make_postgres_database: Callable[[], str]
) -> Iterator[tuple[Service, str]]:
    url = make_postgres_database()
    running = Service(
        tmp_path / "home", tmp_path / "data", ray_address=cluster.head.dashboard_url,
        database_url=url,
    )  # fmt: skip
    running.start()
    try:
        yield running, url
    finally:
        running.stop()


def spec(*, n_trials: int, epochs: int, width: int) -> dict[str, Any]:
    return training_spec_data(
        n_trials=n_trials, epochs=epochs, width=width, name="cluster",
        search={"sampler": "random"}, resources={"cpu": 1, "gpu": 0},
    )  # fmt: skip


def submit(service: Service, body: dict[str, Any]) -> str:
    response = httpx.post(f"{service.url}/studies", json=body, timeout=30)
    assert response.status_code == 201, response.text
    study_id: str = response.json()["id"]
    return study_id


def trials(service: Service, study_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{service.url}/studies/{study_id}/trials", params={"limit": 100})
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def wait_for_end(service: Service, study_id: str, timeout: float = 600) -> dict[str, Any]:
    wait_until(lambda: service.study(study_id)["status"] in FINISHED, timeout=timeout)
    return service.study(study_id)


def metric_rows_per_trial(url: str, study_id: str) -> dict[int, tuple[int, int]]:
    """{trial number: (metric rows, distinct epochs)} straight from SQL."""
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            query = (
                select(Trial.number, func.count(), func.count(func.distinct(Metric.epoch)))
                .join(Metric, Metric.trial_id == Trial.id)
                .where(Trial.study_id == study_id)
                .group_by(Trial.number)
            )
            return {number: (rows, epochs) for number, rows, epochs in session.execute(query)}
    finally:
        engine.dispose()


def test_trials_run_on_both_nodes(cluster: Cluster, service: tuple[Service, str]) -> None:
    running, url = service
    # trials long enough to overlap on a busy machine (short ones can run one after the other)
    study_id = submit(running, spec(n_trials=4, epochs=16, width=128))
    detail = wait_for_end(running, study_id)
    assert detail["status"] == "succeeded", running.log()
    rows = trials(running, study_id)
    assert [t["state"] for t in rows] == ["completed"] * 4
    # one CPU per node and per trial: two concurrent trials cannot share a node
    assert {t["node"] for t in rows} == {cluster.head_node_id, cluster.second_node_id}
    assert all(counts[1] == 16 for counts in metric_rows_per_trial(url, study_id).values())


def test_a_node_that_dies_mid_study_loses_nothing(
    cluster: Cluster, service: tuple[Service, str]
) -> None:
    running, url = service
    epochs = 25
    study_id = submit(running, spec(n_trials=4, epochs=epochs, width=256))

    def on_the_second_node() -> list[dict[str, Any]]:
        return [
            t
            for t in trials(running, study_id)
            if t["node"] == cluster.second_node_id and t["state"] == "running" and t["epochs_done"]
        ]

    wait_until(lambda: bool(on_the_second_node()), timeout=300)
    (victim,) = on_the_second_node()
    (raylet,) = cluster.node.raylet_pids()
    os.kill(raylet, signal.SIGKILL)
    wait_until(lambda: cluster.second_node_id not in alive_nodes(cluster.head), timeout=120)

    detail = wait_for_end(running, study_id)
    assert detail["status"] == "succeeded", running.log()
    rows = {t["number"]: t for t in trials(running, study_id)}
    assert [t["state"] for t in rows.values()] == ["completed"] * 4, rows
    assert all(t["epochs_done"] == epochs for t in rows.values())
    # the trial the dead node was running was retried on the head and finished there
    assert rows[victim["number"]]["node"] == cluster.head_node_id
    per_trial = metric_rows_per_trial(url, study_id)
    assert sorted(per_trial) == sorted(rows)
    assert {epochs_seen for _, epochs_seen in per_trial.values()} == {epochs}
    # every trial has as many metric rows as every other: nothing lost, nothing stored twice
    assert len({metric_rows for metric_rows, _ in per_trial.values()}) == 1
