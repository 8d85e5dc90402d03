"""The claim verdicts of `make reproduce` on hand-built trial rows (no Ray, no database)."""

from __future__ import annotations

from typing import Any

import pytest

from service.client import claims
from service.client.claims import CLAIMS, FAILS, HOLDS, INCONCLUSIVE, NOT_MEASURED, VERDICTS
from studies.analysis import summarize

SEEDS = (0, 1, 2)


def trial(seed: int, *, state: str = "completed", **fields: Any) -> dict[str, Any]:
    """An API trial dict: parameters as top-level fields, metrics in final_metrics."""
    params = {
        k: fields.pop(k, None) for k in ("family", "p", "lambda", "schedule", "until", "from")
    }
    return {
        "state": state,
        "seed": seed,
        "diverged_epoch": None,
        **params,
        "final_metrics": fields,
    }


def replicates(values: dict[str, tuple[float, ...]], **params: Any) -> list[dict[str, Any]]:
    """One trial per seed, metric `m` of seed i being values[m][i]."""
    return [
        trial(seed, **params, **{m: v[i] for m, v in values.items()})
        for i, seed in enumerate(SEEDS)
    ]


def claim(name: str) -> claims.Claim:
    return next(c for c in CLAIMS if c.claim == name)


def judge(name: str, trials: dict[str, list[dict[str, Any]]]) -> claims.Verdict:
    return claims.evaluate(trials, [claim(name)])[0]


def sparsity_arms(pwd_test: tuple[float, ...], pwd_sparsity: tuple[float, ...]) -> dict:
    pwd = replicates(
        {"val_acc": (0.64, 0.65, 0.63), "test_acc": pwd_test, "sparsity": pwd_sparsity},
        family="pwd",
        p=0.8,
        **{"lambda": 0.05},
    ) + replicates(  # accurate but dense: never the pick while a sparse one exists
        {"val_acc": (0.70,) * 3, "test_acc": (0.70,) * 3, "sparsity": (0.1,) * 3},
        family="pwd",
        p=0.8,
        **{"lambda": 0.01},
    )
    decoupled = replicates(
        {"val_acc": (0.65, 0.66, 0.64), "test_acc": (0.64, 0.645, 0.65), "sparsity": (0.0,) * 3},
        family="decoupled",
        **{"lambda": 0.1},
    )
    return {"pwd_sparsity_pwd": pwd, "pwd_sparsity_decoupled": decoupled}


def test_claim_1_holds_for_a_sparse_pwd_run_at_decoupled_accuracy() -> None:
    verdict = judge("1", sparsity_arms((0.635, 0.64, 0.645), (0.7, 0.72, 0.68)))
    assert verdict.verdict == HOLDS, verdict.reason
    assert verdict.numbers["pwd_config"] == "pwd p=0.8 λ=0.05"
    assert verdict.numbers["pwd_sparsity"]["mean"] == pytest.approx(0.70)
    difference = verdict.numbers["test_acc_difference"]
    assert difference["mean"] == pytest.approx(-0.005)
    expected = summarize([-0.005, -0.005, -0.005])
    assert difference["ci_low"] == pytest.approx(expected.ci_low)
    assert "70.0% [" in verdict.measured


def test_claim_1_does_not_hold_when_pwd_loses_accuracy() -> None:
    verdict = judge("1", sparsity_arms((0.60, 0.61, 0.59), (0.7, 0.72, 0.68)))
    assert verdict.verdict == FAILS
    assert "pWD's test accuracy is -4.5 pt [-7.8, -1.2]" in verdict.reason


def test_claim_1_does_not_hold_when_no_pwd_run_is_mostly_sparse() -> None:
    verdict = judge("1", sparsity_arms((0.64, 0.645, 0.65), (0.3, 0.35, 0.4)))
    assert verdict.verdict == FAILS
    assert "no pWD p<1 configuration has most weights < 1e-6" in verdict.reason
    assert verdict.numbers["pwd_sparsity"]["mean"] == pytest.approx(0.35)


def test_a_claim_without_its_trials_is_not_measured_never_holds() -> None:
    arms = sparsity_arms((0.64,) * 3, (0.7,) * 3)
    for row in arms["pwd_sparsity_pwd"]:
        row["state"] = "failed"
    verdict = judge("1", arms)
    assert verdict.verdict == NOT_MEASURED
    assert "no completed trials in pwd_sparsity_pwd" in verdict.reason


def p_sweep(sparsity: dict[float, float], test_acc: dict[float, float]) -> dict:
    rows = []
    for p in sparsity:
        noise = (-0.002, 0.0, 0.002)
        rows += replicates(
            {
                "sparsity": tuple(sparsity[p] + n for n in noise),
                "test_acc": tuple(test_acc[p] + n for n in noise),
            },
            family="pwd",
            p=p,
            **{"lambda": 0.05},
        )
    return {"p_sweep": rows}


def test_claim_2a_holds_when_sparsity_falls_with_p_and_fails_on_a_rise() -> None:
    falling = {0.6: 0.8, 0.8: 0.7, 1.0: 0.1, 1.6: 0.0, 2.0: 0.0}
    accuracy = dict.fromkeys(falling, 0.6)
    verdict = judge("2a", p_sweep(falling, accuracy))
    assert verdict.verdict == HOLDS, verdict.reason
    assert verdict.numbers["sparsity_drop"]["mean"] == pytest.approx(0.8)
    rising = {**falling, 1.6: 0.3}
    verdict = judge("2a", p_sweep(rising, accuracy))
    assert verdict.verdict == FAILS
    assert "p=1→1.6 (+20.0 points)" in verdict.reason


def test_claim_2b_reads_the_confidence_interval_of_the_best_p() -> None:
    sparsity = {0.8: 0.7, 1.3: 0.0, 2.0: 0.0}
    inside_best = judge("2b", p_sweep(sparsity, {0.8: 0.60, 1.3: 0.65, 2.0: 0.62}))
    assert inside_best.verdict == HOLDS
    assert inside_best.numbers["difference"]["mean"] == pytest.approx(0.03)
    outside_best = judge("2b", p_sweep(sparsity, {0.8: 0.60, 1.3: 0.60, 2.0: 0.65}))
    assert outside_best.verdict == FAILS
    assert "outside (1, 2)" in outside_best.reason


def schedule_rows(family: str, acc: dict[str, float], norm: dict[str, float]) -> dict:
    rows = []
    for schedule in acc:
        extra = {"until": 0.3} if schedule == "early" else {}
        extra |= {"from": 0.5} if schedule == "late" else {}
        rows += replicates(
            {
                "test_acc": tuple(acc[schedule] + d for d in (-0.001, 0.0, 0.001)),
                "weight_norm": tuple(norm[schedule] + d for d in (-0.3, 0.0, 0.5)),
            },
            family=family,
            schedule=schedule,
            **extra,
        )
    return {f"early_vs_full_{family}": rows}


def test_claim_3_early_matches_full_keeps_the_norm_small_and_late_is_like_none() -> None:
    acc = {"none": 0.985, "full": 0.994, "early": 0.992, "late": 0.986}
    norm = {"none": 15.0, "full": 7.0, "early": 10.0, "late": 13.0}
    trials = schedule_rows("decoupled", acc, norm)
    verdicts = {v.claim: v for v in claims.evaluate(trials, CLAIMS[3:6])}
    assert {name: v.verdict for name, v in verdicts.items()} == {
        "3a decoupled": HOLDS,
        "3b decoupled": HOLDS,
        "3c decoupled": HOLDS,
    }
    assert verdicts["3b decoupled"].numbers["none_minus_early"]["mean"] == pytest.approx(5.0)
    # the same norms for early and none: not "holds", whatever the accuracy says
    same = schedule_rows("decoupled", acc, {**norm, "early": 15.0})
    assert judge("3b decoupled", same).verdict == INCONCLUSIVE
    worse = schedule_rows("decoupled", {**acc, "early": 0.95, "late": 0.95}, norm)
    assert judge("3a decoupled", worse).verdict == FAILS
    assert judge("3c decoupled", worse).verdict == FAILS


def test_claim_4_is_inconclusive_when_the_interval_contains_zero() -> None:
    def arms(l2_test: tuple[float, ...]) -> dict:
        return {
            "pwd_sparsity_decoupled": replicates(
                {"val_acc": (0.65,) * 3, "test_acc": (0.64, 0.65, 0.66)},
                family="decoupled",
                **{"lambda": 0.1},
            ),
            "pwd_sparsity_l2": replicates(
                {"val_acc": (0.65,) * 3, "test_acc": l2_test}, family="l2", **{"lambda": 1e-3}
            ),
        }

    assert judge("4 adam", arms((0.66, 0.63, 0.67))).verdict == INCONCLUSIVE
    assert judge("4 adam", arms((0.62, 0.63, 0.63))).verdict == HOLDS
    assert judge("4 adam", arms((0.67, 0.68, 0.69))).verdict == FAILS


def test_failed_pruned_and_diverged_trials_are_not_replicates() -> None:
    rows = replicates({"test_acc": (0.5, 0.6, 0.7)}, family="pwd", p=0.8)
    rows += [trial(3, state="pruned", family="pwd", p=0.8, test_acc=0.1)]
    rows += [{**trial(4, family="pwd", p=0.8, test_acc=0.1), "diverged_epoch": 3}]
    [config] = claims.configurations("s", rows)
    assert config.values("test_acc") == {0: 0.5, 1: 0.6, 2: 0.7}


def test_every_claim_gets_a_verdict_and_claim_5_points_to_its_test() -> None:
    verdicts = claims.evaluate({})
    assert [v.claim for v in verdicts] == [c.claim for c in CLAIMS]
    assert {v.verdict for v in verdicts} == {NOT_MEASURED}
    assert all(v.verdict in VERDICTS for v in verdicts)
    assert "test_rotational_equilibrium.py" in verdicts[-1].reason
    assert set(claims.studies_for(CLAIMS)) == {
        "pwd_sparsity_pwd",
        "pwd_sparsity_decoupled",
        "pwd_sparsity_l2",
        "p_sweep",
        "early_vs_full_decoupled",
        "early_vs_full_pwd",
        "l2_vs_decoupled_sgd_decoupled",
        "l2_vs_decoupled_sgd_l2",
    }
