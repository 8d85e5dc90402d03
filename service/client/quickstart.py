"""`make run`: the main job on the embedded default, end to end, the way a person would do it.

Starts `decaylab serve` (SQLite under ./.decaylab/, a local Ray head, the API on 127.0.0.1:8000),
submits the bundled quickstart study, watches it, prints the best trials, the Pareto front in
percent with its headline in words (a trial at least half sparse within 1.5 points of the best
validation accuracy, or the closest there is), how lambda drives sparsity, writes the report,
and shuts everything down. `make serve` keeps the service up instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from service.client.api import ApiClient, ApiError
from studies.settings import Settings

DECAYLAB = str(Path(sys.executable).with_name("decaylab"))
# the headline: a trial with at least half its weights at zero, within 1.5 points of the best
SPARSE, CLOSE = 0.5, 0.015


def start_service(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """`decaylab serve` in its own process group, its log in `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [DECAYLAB, "serve"],
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for_api(
    client: ApiClient, service: subprocess.Popen[bytes], log_path: Path
) -> dict[str, Any]:
    """Poll /health until the API answers; fail with the log's tail if the service died."""
    deadline = time.monotonic() + 300
    while True:
        try:
            health: dict[str, Any] = client.get("/health")
            return health
        except ApiError:
            if service.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace").splitlines()[-20:]
                raise SystemExit("the service did not start:\n" + "\n".join(tail)) from None
            time.sleep(1.0)


def stop_service(service: subprocess.Popen[bytes]) -> None:
    """Ctrl-C for the service (it stops its Ray head), then make sure its group is gone."""
    if service.poll() is None:
        os.killpg(service.pid, signal.SIGINT)
        try:
            service.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(service.pid, signal.SIGKILL)
            service.wait()


@contextmanager
def running_service(settings: Settings) -> Iterator[tuple[ApiClient, dict[str, Any]]]:
    """`decaylab serve` for the block: yields its client and its /health, then stops it."""
    log_path = settings.home / "service.log"
    client = ApiClient(f"http://{settings.api_host}:{settings.api_port}", settings.api_key)
    print(f"starting the decaylab service (log: {log_path}) ...", flush=True)
    service = start_service(settings, log_path)
    try:
        yield client, wait_for_api(client, service, log_path)
    finally:
        print("stopping the service ...", flush=True)
        stop_service(service)


def cli(*args: str) -> int:
    """Run one `decaylab` command, its output straight to the terminal."""
    print(f"\n$ decaylab {' '.join(args)}", flush=True)
    return subprocess.run([DECAYLAB, *args], check=False).returncode


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m service.client.quickstart`."""
    parser = argparse.ArgumentParser(
        prog="python -m service.client.quickstart", description=__doc__
    )
    default_spec = Path(str(files("studies") / "examples" / "quickstart.yaml"))
    parser.add_argument("spec", nargs="?", type=Path, default=default_spec)
    args = parser.parse_args(argv)
    settings = Settings()
    try:
        with running_service(settings) as (client, health):
            print(f"API        {client.base_url}  (docs: {client.base_url}/docs)")
            print(f"Ray        {health.get('ray_dashboard') or 'see the service log'}")
            print(f"database   {health['database']} ({settings.resolved_database_url()})")
            return run_quickstart(client, args.spec, settings)
    except ApiError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _decay(trial: dict[str, Any]) -> str:
    """When the trial's weight decay was on, in words."""
    schedule, until, start = trial.get("schedule"), trial.get("until"), trial.get("from")
    if schedule == "early" and until is not None:
        return f"on for the first {until:.0%} of training"
    if schedule == "late" and start is not None:
        return f"on for the last {1 - start:.0%} of training"
    return {"full": "on for all of training", "none": "never on"}.get(str(schedule), "-")


def _settings(trial: dict[str, Any]) -> str:
    """The trial's searched settings in words: p, lambda and when decay was on."""
    named = [f"{n} = {trial[n]:.3g}" for n in ("p", "lambda") if trial.get(n) is not None]
    return ", ".join([*named, f"decay {_decay(trial)}"])


def _front_line(trial: dict[str, Any]) -> str:
    metrics = trial["final_metrics"]
    p = "-" if trial.get("p") is None else f"{trial['p']:.2f}"
    lam = "-" if trial.get("lambda") is None else f"{trial['lambda']:.2g}"
    return (
        f"  {trial['number']:>5}  {_percent(metrics.get('val_acc')):>8}  "
        f"{_percent(metrics.get('sparsity')):>8}  {_percent(metrics.get('test_acc')):>8}  "
        f"{p:>5}  {lam:>7}  {_decay(trial)}"
    )


def headline(trials: list[dict[str, Any]]) -> str:
    """The quickstart's finding in words: the sparsest front trial within CLOSE of the best."""
    accuracy = [t["final_metrics"]["val_acc"] for t in trials]
    best = trials[accuracy.index(max(accuracy))]
    best_acc = max(accuracy)
    close = [t for t in trials if t["final_metrics"]["val_acc"] >= best_acc - CLOSE]
    sparsest = max(close, key=lambda t: t["final_metrics"]["sparsity"])
    metrics = sparsest["final_metrics"]
    gap = 100 * (best_acc - metrics["val_acc"])
    what = (
        f"trial {sparsest['number']} ({_settings(sparsest)}) reaches"
        f" {_percent(metrics['val_acc'])} validation"
        f" accuracy, {gap:.1f} points below the best trial's {_percent(best_acc)}"
        f" (trial {best['number']}), with {_percent(metrics['sparsity'])} of its weights"
        " at zero."
    )
    if metrics["sparsity"] >= SPARSE:
        return f"Sparse and accurate: {what}"
    return f"No trial is {SPARSE:.0%} sparse within {100 * CLOSE:.1f} points of the best: {what}"


def print_front(client: ApiClient, study_id: str) -> None:
    """The Pareto front of accuracy and sparsity, in percent, and what it shows in words."""
    front = client.get(f"/studies/{study_id}/pareto", x="val_acc", y="sparsity")
    trials = sorted(
        (point["trial"] for point in front["items"]),
        key=lambda t: -t["final_metrics"]["val_acc"],
    )
    print(
        f"\nThe Pareto front: {len(trials)} of {front['considered']} trials, those that no other"
        " trial beats on both\nvalidation accuracy and sparsity. Sparsity is the share of the"
        " decayed weights that weight decay\ndrove to zero (|w| < 1e-6): they can be pruned away."
    )
    print(f"  {'trial':>5}  {'val acc':>8}  {'sparsity':>8}  {'test acc':>8}  {'p':>5}  "
          f"{'lambda':>7}  decay")  # fmt: skip
    for trial in trials:
        print(_front_line(trial))
    if trials:
        print("\n" + textwrap.fill(headline(trials), width=100))


def run_quickstart(client: ApiClient, spec: Path, settings: Settings) -> int:
    """Submit, watch, summarise and report one study; the exit status of `watch`."""
    study_id = client.submit(spec)["id"]
    print(f"submitted {spec.name} as study {study_id}")
    status = cli("watch", study_id)
    cli("best", study_id)
    print_front(client, study_id)
    # how the decay strength drives sparsity (the table behind quickstart.yaml: the schedule
    # does not, early decay keeps none)
    cli("effects", study_id, "--factor", "lambda", "--metric", "sparsity", "--buckets", "3")
    report_dir = settings.home / "reports" / study_id
    cli("report", study_id, "-o", str(report_dir))
    print(f"\nreport:   {report_dir / 'index.html'}")
    print(f"database: {settings.resolved_database_url()} (try the views in the README)")
    return status


if __name__ == "__main__":
    sys.exit(main())
