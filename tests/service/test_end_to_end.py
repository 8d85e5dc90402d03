"""The real service end to end: `decaylab serve` under uvicorn with its own local Ray head, and the
`decaylab` CLI against it, as a person would use them."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml
from engine_support import Service, processes_matching, wait_until
from factories import training_spec_data

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Service]:
    running = Service(tmp_path_factory.mktemp("home"), data_dir)
    running.start()
    yield running
    running.stop()


def write_spec(path: Path, *, epochs: int, n_trials: int, width: int = 32) -> Path:
    objectives = [{"metric": "val_acc", "mode": "max"}, {"metric": "sparsity", "mode": "max"}]
    spec = training_spec_data(
        n_trials=n_trials, epochs=epochs, width=width, name="e2e", objectives=objectives
    )
    path.write_text(yaml.safe_dump(spec))
    return path


def submitted_id(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.split("study ", 1)[1].split()[0]


def test_submit_watch_and_query_a_study_with_the_cli(service: Service, tmp_path: Path) -> None:
    submitted = service.cli("submit", str(write_spec(tmp_path / "s.yaml", epochs=2, n_trials=4)))
    study_id = submitted_id(submitted)
    health = httpx.get(f"{service.url}/health", timeout=10).json()
    assert health["ray_dashboard"] == f"http://127.0.0.1:{service.env['DECAYLAB_DASHBOARD_PORT']}"
    assert f"{health['ray_dashboard']}/#/jobs/decaylab-{study_id[:8]}" in submitted.stdout
    watched = service.cli("watch", study_id)
    assert watched.returncode == 0, watched.stdout + watched.stderr + service.log()
    assert f"study {study_id} succeeded" in watched.stdout
    detail = service.study(study_id)
    assert detail["progress"]["finished"] == detail["progress"]["budget"] == 4

    best = service.cli("best", study_id)
    assert best.returncode == 0 and "val_acc" in best.stdout and "sparsity" in best.stdout
    pareto = service.cli("pareto", study_id)
    assert pareto.returncode == 0 and "Pareto front" in pareto.stdout
    trials = service.cli("trials", study_id, "--sort", "val_acc", "--order", "desc")
    assert trials.returncode == 0 and "of 4" in trials.stdout

    export = service.cli(
        "export", study_id, "--format", "parquet", "-o", str(tmp_path / "t.parquet")
    )
    assert export.returncode == 0, export.stderr
    frame = pd.read_parquet(tmp_path / "t.parquet")
    assert len(frame) == 4 and "val_acc" in frame.columns

    report = service.cli("report", study_id, "-o", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    pngs = list((tmp_path / "report").glob("*.png"))
    assert pngs and (tmp_path / "report" / "index.html").exists()
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_bad_input_is_a_one_line_error(service: Service, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    spec = {
        "name": "bad",
        "task": {"dataset": "mnist1d", "model": "mlp"},
        "space": {"p": {"type": "float", "low": -1, "high": 2}},
    }
    bad.write_text(yaml.safe_dump(spec))
    result = service.cli("submit", str(bad))
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "space.p" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    missing = service.cli("show", "no-such-study")  # no id starts with it
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "no study id starts with 'no-such-study'" in missing.stderr


def test_cancel_ends_a_running_study_within_seconds(service: Service, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "long.yaml", epochs=200, n_trials=4, width=256)
    study_id = submitted_id(service.cli("submit", str(spec)))
    wait_until(lambda: service.study(study_id)["progress"]["counts"]["running"] > 0, timeout=180)
    started = time.monotonic()
    result = service.cli("cancel", study_id)
    assert result.returncode == 0, result.stderr
    wait_until(lambda: service.study(study_id)["status"] == "cancelled", timeout=30)
    wait_until(lambda: service.study(study_id)["progress"]["counts"]["running"] == 0, timeout=60)
    assert time.monotonic() - started < 60


def test_a_study_survives_a_restart_of_the_service(
    tmp_path_factory: pytest.TempPathFactory, data_dir: Path, tmp_path: Path
) -> None:
    service = Service(tmp_path_factory.mktemp("restart-home"), data_dir)
    service.start()
    try:
        spec = write_spec(tmp_path / "s.yaml", epochs=15, n_trials=6, width=128)
        study_id = submitted_id(service.cli("submit", str(spec)))
        wait_until(lambda: service.study(study_id)["progress"]["counts"]["completed"] >= 1, 300)
        service.stop()  # stops the embedded Ray head too: the study's driver dies with it
        # ... for real: a driver left behind would go on writing beside the resumed one
        assert not processes_matching(f"workers.run {study_id}")
        service.start()  # reconciles: the study's job is gone, so it is resumed
        watched = service.cli("watch", study_id)
        assert watched.returncode == 0, watched.stdout + service.log()
        detail = service.study(study_id)
        assert detail["status"] == "succeeded"
        assert detail["progress"]["counts"]["completed"] == 6
        trials = httpx.get(
            f"{service.url}/studies/{study_id}/trials", params={"limit": 100}
        ).json()
        # trials the dead driver left running are failed with the reason, none is still running
        assert all(t["state"] != "running" for t in trials["items"])
        lost = [t for t in trials["items"] if t["state"] == "failed"]
        assert all("driver lost" in (t["error"] or "") for t in lost)
        assert json.dumps(detail)  # the study reads back whole
    finally:
        service.stop()
