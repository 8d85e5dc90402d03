"""`make run`: the main job on the embedded default, end to end, the way a person would do it.

Starts `decaylab serve` (SQLite under ./.decaylab/, a local Ray head, the API on 127.0.0.1:8000),
submits the bundled quickstart study, watches it, prints the best trials and the Pareto front,
writes the report, and shuts everything down. `make serve` keeps the service up instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

from service.client.api import ApiClient, ApiError
from studies.settings import Settings

DECAYLAB = str(Path(sys.executable).with_name("decaylab"))


def start_service(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """`decaylab serve` in its own process group, its log in `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [DECAYLAB, "serve"],
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for_api(client: ApiClient, service: subprocess.Popen[bytes], log_path: Path) -> dict:
    """Poll /health until the API answers; fail with the log's tail if the service died."""
    deadline = time.monotonic() + 300
    while True:
        try:
            health: dict = client.get("/health")
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
def running_service(settings: Settings) -> Iterator[tuple[ApiClient, dict]]:
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


def run_quickstart(client: ApiClient, spec: Path, settings: Settings) -> int:
    """Submit, watch, summarise and report one study; the exit status of `watch`."""
    study_id = client.submit(spec)["id"]
    print(f"submitted {spec.name} as study {study_id}")
    status = cli("watch", study_id)
    for command in (("best", study_id), ("pareto", study_id)):
        cli(*command)
    cli("effects", study_id, "--factor", "schedule", "--metric", "val_acc")
    report_dir = settings.home / "reports" / study_id
    cli("report", study_id, "-o", str(report_dir))
    print(f"\nreport:   {report_dir / 'index.html'}")
    print(f"database: {settings.resolved_database_url()} (try the views in the README)")
    return status


if __name__ == "__main__":
    sys.exit(main())
