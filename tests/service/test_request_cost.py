"""What one request may cost: the largest spec accepted is checked quickly, and a large body
being parsed never holds up other requests (a real uvicorn server, not the test client)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_harness import served
from factories import migrated_engine

from studies.catalog import FAMILIES
from studies.policy import Limits, enforce
from studies.spec import MAX_CHOICES, validate_spec


def _fractions(count: int) -> list[float]:
    return [round((i + 1) / (count + 1), 6) for i in range(count)]


def largest_spec() -> dict[str, Any]:
    """A spec at the caps: every searchable parameter with the most choices, conditions."""
    many = [round(1e-4 * (i + 1), 8) for i in range(MAX_CHOICES)]
    categorical = {"type": "categorical"}
    return {
        "name": "largest",
        "description": "d" * 2000,
        "task": {"dataset": "mnist1d", "model": "mlp", "epochs": 1000,
                 "model_options": {"width": 64, "depth": 2, "norm": "layernorm"}},
        "space": {
            "family": {**categorical, "choices": list(FAMILIES)},
            "schedule": {**categorical, "choices": ["full", "early", "late"]},
            "p": {**categorical, "choices": many, "when": {"family": ["pwd", "lp_coupled"]}},
            "lambda": {**categorical, "choices": many,
                       "when": {"family": ["l2", "decoupled", "pwd", "lp_coupled"]}},
            "lr": {**categorical, "choices": many},
            "until": {**categorical, "choices": _fractions(MAX_CHOICES),
                      "when": {"schedule": "early"}},
            "from": {**categorical, "choices": _fractions(MAX_CHOICES),
                     "when": {"schedule": ["late"] * MAX_CHOICES}},
            "batch_size": {**categorical, "choices": list(range(1, MAX_CHOICES + 1))},
        },
        "objectives": [{"metric": "val_acc"}, {"metric": "sparsity"}],
        "search": {"sampler": "tpe", "n_trials": 1000},
    }  # fmt: skip


def test_the_largest_accepted_spec_is_checked_well_under_a_second() -> None:
    data = largest_spec()
    started = time.process_time()
    spec = validate_spec(data)
    enforce(spec, Limits(), [{"CPU": 2.0}])
    spent = time.process_time() - started
    assert len(spec.space) == 8 and len(spec.space["p"].values()) == MAX_CHOICES
    # the bound; the cubic checks took 5-7 s on 1,500 parameters, which caps now refuse
    assert spent < 1.0, f"{spent:.3f} s of CPU"


@pytest.fixture
def live_api(tmp_path: Path, sqlite_url: str) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port (no launcher: nothing reaches Ray)."""
    migrated_engine(sqlite_url).dispose()
    with served(tmp_path / "home", sqlite_url) as url:
        yield url


def test_health_answers_while_a_large_spec_is_parsed(live_api: str) -> None:
    # ~250 KB of YAML that takes the parser about a second; refused afterwards (too many options)
    options = ", ".join(f"o{i}: {i}" for i in range(18_000))
    body = f"name: big\ntask: {{dataset: mnist1d, model: mlp, model_options: {{{options}}}}}\n"
    posted: dict[str, Any] = {}

    def post() -> None:
        response = httpx.post(
            f"{live_api}/studies",
            content=body.encode(),
            headers={"Content-Type": "application/yaml"},
            timeout=60,
        )
        posted["status"], posted["done"] = response.status_code, time.monotonic()

    poster = threading.Thread(target=post)
    poster.start()
    time.sleep(0.2)  # the body is sent and being parsed
    health = httpx.get(f"{live_api}/health", timeout=60)
    answered = time.monotonic()
    poster.join()
    assert health.status_code == 200
    assert posted["status"] == 422
    assert answered < posted["done"], "/health waited for the spec to be parsed"
