"""`decaylab report` against the real app over a real SQLite database, through the REST API.

Three studies are seeded through the repository, as the driver writes them: a finished study
over three families and all four decay schedules with per-epoch curves, a failed study with
pruned, failed and diverged trials, and a running study with no completed trial yet.
"""

from __future__ import annotations

import math
import random
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pytest
from api_harness import TestClient
from factories import database, make_study
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from service.app import create_app
from service.client.api import ApiClient
from service.client.report import write_report
from service.client.report.data import MAX_CURVES_PER_GROUP, curve_sample
from service.client.report.importance import param_importances, used_params
from service.client.report.plots import p_levels, switch_epoch
from studies import repository as repo
from studies.settings import Settings

EPOCHS = 12
FIGURES = (
    "accuracy_vs_sparsity",
    "p_effects",
    "curves_by_schedule",
    "weight_histogram",
    "importance",
)
WEIGHTS = 10_000  # decayed weights per seeded histogram
SWITCHES = {"early": (0.25, 0.5), "late": (0.5, 0.75)}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SEARCH_SPACE: dict[str, Any] = {
    "family": {"type": "categorical", "choices": ["decoupled", "pwd", "l2"]},
    "p": {"type": "float", "low": 0.5, "high": 2.0, "when": {"family": "pwd"}},
    "lambda": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "schedule": {"type": "categorical", "choices": ["none", "full", "early", "late"]},
    "until": {"type": "float", "low": 0.2, "high": 0.6, "when": {"schedule": "early"}},
    "from": {"type": "float", "low": 0.4, "high": 0.8, "when": {"schedule": "late"}},
}


@dataclass(frozen=True)
class Seeded:
    """What the test wrote for one trial, to compute expected answers without the report."""

    number: int
    state: str
    schedule: str
    val_acc: float | None
    sparsity: float | None


def _curves(
    final_acc: float, norm_end: float, schedule: str, switch: float | None, noise: random.Random
) -> dict:
    """Plausible per-epoch curves: accuracy saturating, the norm shaped by the schedule."""
    acc = [final_acc * (1 - math.exp(-(e + 1) / 2.5)) for e in range(EPOCHS)]
    acc = [a + noise.gauss(0, 0.006) for a in acc[:-1]] + [final_acc]
    grow = [8.0 + 1.2 * (e + 1) for e in range(EPOCHS)]
    shrink = [norm_end + (8.0 - norm_end) * math.exp(-(e + 1) / 2) for e in range(EPOCHS)]
    edge = int((switch or 0) * EPOCHS)
    norm = {
        "none": grow,
        "full": shrink,
        "early": shrink[:edge] + [shrink[edge - 1] + 0.4 * k for k in range(1, EPOCHS - edge + 1)],
        "late": grow[:edge]
        + [max(norm_end, grow[edge - 1] * math.exp(-k / 2)) for k in range(1, EPOCHS - edge + 1)],
    }[schedule]
    scale = noise.uniform(0.85, 1.15)
    return {"val_acc": acc, "weight_norm": [scale * n for n in norm]}


def _histogram(sparsity: float, noise: random.Random) -> dict:
    """A final |w| histogram as workers.metrics.weight_histogram writes it: the sparse share
    spread over tiny decades (a tenth of it exact zeros), the rest around 1e-2."""
    edges = list(range(-45, 3))
    counts = [0] * (len(edges) - 1)
    sparse = round(sparsity * WEIGHTS)
    zeros = sparse // 10
    for _ in range(sparse - zeros):
        counts[edges.index(noise.randint(-38, -8))] += 1
    for _ in range(WEIGHTS - sparse):
        counts[edges.index(min(1, round(noise.gauss(-2, 0.8))))] += 1
    return {"edges": [float(e) for e in edges], "counts": counts, "zeros": zeros, "total": WEIGHTS}


def _seed_trial(
    session: Session,
    study_id: str,
    state: str,
    config: dict,
    final: dict | None,
    curves: dict | None,
    histogram: dict | None = None,
    **finish: Any,
) -> None:
    searched = {
        "family": config["family"],
        "p": config["p"],
        "lambda": config["lam"],
        "schedule": config["schedule"],
        "until": config["until"],
        "from": config["start"],
    }
    trial = repo.start_trial(session=session, study_id=study_id, config=config, params=searched)
    if histogram is not None:
        repo.update_trial_info(session=session, trial_id=trial.id, weight_histogram=histogram)
    names = list(curves or {})
    for epoch, values in enumerate(zip(*(curves or {}).values(), strict=True), start=1):
        metrics = dict(zip(names, values, strict=True))
        repo.record_metrics(session=session, trial_id=trial.id, epoch=epoch, metrics=metrics)
    if state != "running":
        repo.finish_trial(
            session=session, trial_id=trial.id, state=state, final_metrics=final, **finish
        )


def _config(
    family: str, p: float, lam: float, schedule: str, switch: float | None, seed: int
) -> dict:
    return {
        "family": family,
        "p": p,
        "lam": lam,
        "schedule": schedule,
        "lr": 1e-3,
        "seed": seed,
        "until": switch if schedule == "early" else None,
        "start": switch if schedule == "late" else None,
    }


def seed_finished_study(session: Session) -> tuple[str, list[Seeded]]:
    """decoupled, pwd (five p values) and l2 under none/full/early/late, two seeds each."""
    study = make_study(
        session,
        status="succeeded",
        name="families-and-schedules",
        task={"dataset": "mnist1d", "model": "mlp", "epochs": EPOCHS},
        space=SEARCH_SPACE,
        search={"n_trials": 20},
    )
    noise, seeded = random.Random(7), []
    configs = [("pwd", p, s) for p in (0.6, 0.8, 1.0, 1.5, 2.0) for s in ("full", "early")]
    configs += [
        (f, 2.0, s) for f in ("decoupled", "l2") for s in ("none", "full", "early", "late")
    ]
    configs += [("pwd", 0.8, "late"), ("pwd", 0.8, "none")]
    for index, (family, p, schedule) in enumerate(configs):
        switch = SWITCHES.get(schedule, (None, None))[index % 2]
        decays = schedule != "none"
        base_sparsity = max(0.0, 0.93 - 0.5 * (p - 0.6)) if family == "pwd" and decays else 0.02
        for seed in (0, 1):
            acc = 0.74 + (0.02 if family == "decoupled" else 0) - (0.03 if family == "l2" else 0)
            acc += noise.gauss(0, 0.008) - (0.03 if p < 0.7 and family == "pwd" else 0)
            sparsity = min(
                1.0,
                max(
                    0.0, base_sparsity * (0.6 if schedule == "late" else 1) + noise.gauss(0, 0.02)
                ),
            )
            curves = _curves(acc, 3.0 if decays else 20.0, schedule, switch, noise)
            final = {
                "val_acc": acc,
                "sparsity": sparsity,
                "test_acc": acc - 0.01,
                "weight_norm": curves["weight_norm"][-1],
                "pruned_val_acc": acc - 0.005,
            }
            _seed_trial(
                session,
                study.id,
                "completed",
                _config(family, p, 10 ** -(1 + index % 3), schedule, switch, seed),
                final,
                curves,
                _histogram(sparsity, noise),
            )
            seeded.append(Seeded(len(seeded), "completed", schedule, acc, sparsity))
    return study.id, seeded


def seed_failing_study(session: Session) -> tuple[str, list[Seeded]]:
    """A pWD study that failed: 6 completed, 2 pruned, 2 failed and 1 diverged trial."""
    study = make_study(session, status="failed", name="with-failures", search={"n_trials": 8})
    repo.set_study_status(
        session=session,
        study_id=study.id,
        status="failed",
        error="the driver lost its Ray cluster",
    )
    plan = [("completed", 0.6 + 0.25 * i, "full" if i % 2 else "early") for i in range(6)]
    plan += [
        ("pruned", 1.9, "full"),
        ("pruned", 0.5, "early"),
        ("failed", 1.0, "full"),
        ("failed", 1.2, "early"),
        ("diverged", 0.4, "full"),
    ]
    seeded = []
    for number, (state, p, schedule) in enumerate(plan):
        acc = {"completed": 0.7 + 0.01 * number, "pruned": 0.99}.get(state)
        sparsity = None if acc is None else max(0.0, 0.95 - 0.4 * p)
        epochs = {"completed": 3, "pruned": 1, "failed": 0, "diverged": 2}[state]
        curves = _curves(acc or 0.1, 3.0, schedule, 0.5, random.Random(number))
        curves = {name: values[:epochs] for name, values in curves.items()}
        final = None if acc is None else {"val_acc": acc, "sparsity": sparsity}
        finish = {"error": "CUDA error: out of memory"} if state == "failed" else {}
        if state == "diverged":
            final, finish = {"val_acc": float("nan")}, {"diverged_epoch": 2}
        config = _config("pwd", p, 1e-3, schedule, 0.5, seed=number % 2)
        completed = state == "completed"
        histogram = _histogram(sparsity or 0.0, random.Random(number)) if completed else None
        _seed_trial(session, study.id, state, config, final, curves, histogram, **finish)
        seeded.append(Seeded(number, state, schedule, acc, sparsity))
    return study.id, seeded


def seed_empty_study(session: Session) -> str:
    """A running study whose only trials are one failed and one still running."""
    study = make_study(session, status="running", name="just-started")
    _seed_trial(
        session,
        study.id,
        "failed",
        _config("pwd", 1.0, 1e-3, "full", None, 0),
        None,
        None,
        error="killed",
    )
    _seed_trial(
        session,
        study.id,
        "running",
        _config("pwd", 0.8, 1e-3, "early", 0.3, 1),
        None,
        {"val_acc": [0.3], "weight_norm": [7.0]},
    )
    return study.id


@dataclass(frozen=True)
class Reports:
    """The three reports, written once for the module."""

    root: Path
    finished: tuple[str, list[Seeded]]
    failing: tuple[str, list[Seeded]]
    empty: str
    client: ApiClient

    def directory(self, name: str) -> Path:
        return self.root / name

    def html(self, name: str) -> str:
        return (self.root / name / "index.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reports]:
    root = tmp_path_factory.mktemp("report")
    url = f"sqlite:///{root / 'decaylab.sqlite'}"
    with database(url) as sessions, sessions.begin() as session:
        finished, failing, empty = (
            seed_finished_study(session),
            seed_failing_study(session),
            seed_empty_study(session),
        )
    settings = Settings(
        home=root / "home", database_url=url, api_key="", read_auth=False, ray_address=""
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as http:
        client = ApiClient(base_url=str(http.base_url), _http=http)
        for name, study_id in (
            ("finished", finished[0]),
            ("failing", failing[0]),
            ("empty", empty),
        ):
            index = write_report(client, study_id, root / name)
            assert index == root / name / "index.html"
        yield Reports(root, finished, failing, empty, client)


def assert_real_png(path: Path) -> None:
    """A PNG a person can look at: right magic, decodes, not tiny, not one flat colour."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > 5_000, (path, len(data))
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and min(pixels.shape[:2]) > 200, (path, pixels.shape)
    rgb = (pixels[..., :3] * 255).astype(np.uint32)
    colours = np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2])
    assert len(colours) > 50, (path, len(colours))


@pytest.mark.parametrize("study", ["finished", "failing"])
def test_every_figure_is_a_real_png_embedded_and_linked(reports: Reports, study: str) -> None:
    html = reports.html(study)
    for name in FIGURES:
        assert_real_png(reports.directory(study) / f"{name}.png")
        assert f'<a href="{name}.png">' in html
    assert html.count('src="data:image/png;base64,') == len(FIGURES)
    assert "not drawn" not in html
    assert sorted(p.name for p in reports.directory(study).iterdir()) == sorted(
        [*(f"{name}.png" for name in FIGURES), "index.html"]
    )


def _section(html: str, heading: str) -> str:
    start = html.index(heading)
    end = html.find("<h2>", start + 1)
    return html[start : end if end != -1 else len(html)]


def _front(seeded: list[Seeded]) -> set[int]:
    """Brute force: completed trials no other completed trial beats on both objectives."""
    done = [s for s in seeded if s.state == "completed"]
    return {
        s.number
        for s in done
        if not any(
            o.val_acc >= s.val_acc
            and o.sparsity >= s.sparsity  # type: ignore[operator]
            and (o.val_acc, o.sparsity) != (s.val_acc, s.sparsity)
            for o in done
        )
    }


@pytest.mark.parametrize("study", ["finished", "failing"])
def test_tables_list_the_best_trials_and_the_pareto_front(reports: Reports, study: str) -> None:
    seeded = reports.finished[1] if study == "finished" else reports.failing[1]
    html = reports.html(study)
    done = [s for s in seeded if s.state == "completed"]
    most_accurate = max(done, key=lambda s: s.val_acc or 0)
    sparsest = max(done, key=lambda s: s.sparsity or 0)
    best_rows = re.findall(
        r"<tr><td class=l>(\w+) \(max\)</td><td class=l>#(\d+)<", _section(html, "<h2>Best trials")
    )
    assert best_rows == [
        ("val_acc", str(most_accurate.number)),
        ("sparsity", str(sparsest.number)),
    ]
    pareto = _section(html, "<h2>Pareto front over val_acc (max), sparsity (max)")
    assert {int(n) for n in re.findall(r"<td class=l>#(\d+)</td>", pareto)} == _front(seeded)
    assert f"of {len(done)} completed trials are non-dominated" in pareto


def test_header_counts_every_state_but_figures_use_completed_trials(reports: Reports) -> None:
    html = reports.html("failing")
    assert "<h1>with-failures</h1>" in html
    assert "status <b>failed</b> · error: the driver lost its Ray cluster" in html
    assert "11 of 16 training runs finished" in html  # 8 trials × 2 seeds budget
    for count in ("completed 6", "pruned 2", "failed 2", "diverged 1", "running 0"):
        assert count in html
    # the pruned trials report 99% accuracy: a figure that drew them would count 8 dots
    assert "Each dot is one completed trial (n=6)" in html
    assert "the figures use the 6 completed trials that did not diverge, of 11" in html
    assert "99.00%" not in html


def test_effects_tables_summarize_each_schedule_and_family(reports: Reports) -> None:
    html = reports.html("finished")
    assert "families decoupled, pwd, l2 · searched: family, p, lambda, schedule, until" in html
    schedules = _section(html, "<h2>Effects by decay schedule")
    # none: decoupled, l2 and pwd p=0.8 with two seeds each
    none = [s for s in reports.finished[1] if s.schedule == "none"]
    mean_none = sum(s.val_acc or 0 for s in none) / len(none)
    assert re.search(
        rf"<td class=l>none</td><td>{100 * mean_none:.2f}% \[[^]]+\] \(n=6\)", schedules
    )
    for level in ("early", "full", "late"):
        assert f"<td class=l>{level}</td>" in schedules
    families = _section(html, "<h2>Effects by family")
    assert [f for f in ("decoupled", "l2", "pwd") if f"<td class=l>{f}</td>" in families] == [
        "decoupled",
        "l2",
        "pwd",
    ]


def test_a_study_without_completed_trials_renders_with_notes(reports: Reports) -> None:
    html = reports.html("empty")
    assert list(reports.directory("empty").iterdir()) == [
        reports.directory("empty") / "index.html"
    ]
    assert html.count("<p class=note>not drawn:") == len(FIGURES)
    assert "no completed trial reports both val_acc and sparsity yet" in html
    assert "no completed trial has p" in html
    assert "importance needs at least 4 completed trials reporting val_acc; there are 0" in html
    assert "<h2>Best trials</h2><p class=note>no completed trial yet</p>" in html
    assert "running 1 · completed 0 · pruned 0 · failed 1" in html


def test_a_report_into_a_used_directory_removes_figures_it_no_longer_draws(
    reports: Reports, tmp_path: Path
) -> None:
    shutil.copytree(reports.directory("finished"), tmp_path, dirs_exist_ok=True)
    assert (tmp_path / "importance.png").exists()
    write_report(reports.client, reports.empty, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html"]


def test_several_studies_share_one_report_with_their_trials_numbered_apart(
    reports: Reports, tmp_path: Path
) -> None:
    (finished, seeded), (failing, failing_seeded) = reports.finished, reports.failing
    index = write_report(reports.client, [finished, failing], tmp_path)
    html = index.read_text(encoding="utf-8")
    last = len(seeded) + len(failing_seeded) - 1
    title = f"families-and-schedules #0–#{len(seeded) - 1} + with-failures #{len(seeded)}–#{last}"
    assert f"<h1>{title}</h1>" in html
    for name in FIGURES:
        assert_real_png(tmp_path / f"{name}.png")
    assert "not drawn" not in html
    completed = len(seeded) + sum(s.state == "completed" for s in failing_seeded)
    assert f"Each dot is one completed trial (n={completed})" in html
    assert "status <b>failed, succeeded</b>" in html
    # the best val_acc over both studies, under its new number
    best = max(
        [(s.val_acc or 0, s.number) for s in seeded]
        + [
            (s.val_acc or 0, len(seeded) + s.number)
            for s in failing_seeded
            if s.state == "completed"
        ]
    )
    best_rows = re.findall(r"<td class=l>val_acc \(max\)</td><td class=l>#(\d+)<", html)
    assert best_rows == [str(best[1])]


def test_an_unknown_study_is_an_api_error(reports: Reports, tmp_path: Path) -> None:
    from service.client.api import ApiError

    with pytest.raises(ApiError, match="404"):
        write_report(reports.client, "no-such-study", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- the pure pieces


def _trial(params: dict, value: float | None, p: float | None = 1.0) -> dict:
    return {"params": params, "p": p, "final_metrics": {"val_acc": value}}


@pytest.mark.parametrize(
    ("trial", "expected"),
    [
        (_trial({"p": 0.8, "lambda": 1e-3}, 0.9), {"p": 0.8, "lambda": 1e-3}),
        # the recorder stores inactive conditional parameters as null
        (_trial({"schedule": "full", "until": None}, 0.9), {"schedule": "full"}),
        # a family without p keeps the unused fixed p in params; its typed p column is null
        (_trial({"family": "decoupled", "p": 2.0}, 0.9, p=None), {"family": "decoupled"}),
    ],
)
def test_used_params_drop_what_a_trial_did_not_use(trial: dict, expected: dict) -> None:
    assert used_params(trial) == expected


IMPORTANCE_SPACE = {
    "x": {"type": "float", "low": 0.0, "high": 1.0, "log": False},
    "noise": {"type": "float", "low": 0.0, "high": 1.0, "log": False},
}


@pytest.mark.parametrize(
    ("trials", "note"),
    [
        ([_trial({"x": 0.1, "noise": 0.2}, 0.5)] * 3, "at least 4 completed trials"),
        ([_trial({"x": i / 10, "noise": 0.5}, i / 10) for i in range(6)], "found x"),
        (
            [_trial({"x": i / 10, "noise": (i * 7 % 5) / 5}, 0.5) for i in range(6)],
            "val_acc is the same in every completed trial",
        ),
        ([_trial({"x": i / 10, "noise": 0.3}, None) for i in range(6)], "there are 0"),
    ],
)
def test_importance_is_skipped_with_a_reason(trials: list[dict], note: str) -> None:
    result = param_importances(IMPORTANCE_SPACE, trials, "val_acc", "max")
    assert isinstance(result, str) and note in result


def test_importance_finds_the_parameter_the_objective_depends_on() -> None:
    spread = random.Random(0)
    trials = [
        _trial({"x": (x := spread.random()), "noise": spread.random()}, 3 * x) for _ in range(30)
    ]
    result = param_importances(IMPORTANCE_SPACE, trials, "val_acc", "max")
    assert isinstance(result, dict) and set(result) == {"x", "noise"}
    assert result["x"] > 0.9 and math.isclose(sum(result.values()), 1.0)


@pytest.mark.parametrize(
    ("trial", "expected"),
    [
        ({"schedule": "early", "until": 0.25}, 3.0),
        ({"schedule": "late", "from": 0.5}, 6.0),
        ({"schedule": "full", "until": None}, None),
        ({"schedule": "none"}, None),
    ],
)
def test_switch_point_is_the_fraction_of_the_epochs(trial: dict, expected: float | None) -> None:
    assert switch_epoch(trial, 12) == expected


def test_few_p_values_are_levels_and_many_are_buckets() -> None:
    levels = p_levels([0.5, 0.5, 2.0, 1.0], [0.2, 0.4, 0.9, 0.6])
    assert [(x, s.count, s.mean) for x, s in levels] == [
        (0.5, 2, pytest.approx(0.3)),
        (1.0, 1, 0.6),
        (2.0, 1, 0.9),
    ]
    many = [0.5 + 0.1 * i for i in range(13)]  # 0.5 ... 1.7: 6 buckets of width 0.2
    buckets = p_levels(many, [1.0] * 13)
    assert [round(x, 6) for x, _ in buckets] == [0.6, 0.8, 1.0, 1.2, 1.4, 1.6]
    assert sum(s.count for _, s in buckets) == 13


@settings(deadline=None, max_examples=50)
@given(
    st.lists(
        st.tuples(st.sampled_from(["pwd", "l2"]), st.sampled_from(["full", "early"])),
        max_size=3 * MAX_CURVES_PER_GROUP,
    )
)
def test_curve_sample_caps_each_group_and_keeps_the_first(groups: list[tuple[str, str]]) -> None:
    trials = [{"number": n, "family": f, "schedule": s} for n, (f, s) in enumerate(groups)]
    sample = curve_sample(list(reversed(trials)))
    for key in set(groups):
        wanted = [t["number"] for t in trials if (t["family"], t["schedule"]) == key]
        got = [t["number"] for t in sample if (t["family"], t["schedule"]) == key]
        assert got == wanted[:MAX_CURVES_PER_GROUP]
