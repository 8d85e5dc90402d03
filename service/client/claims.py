"""The seed papers' claims (docs/science.md §4) as pure functions from trial rows to verdicts.

`make reproduce` (service/client/reproduce.py) runs the bundled studies and hands their trials,
as the REST API returns them, to `evaluate`. Every number is a mean over seeds with a 95%
t-interval (`studies.analysis.summarize`); comparisons between two configurations use the
paired difference per seed (the same seed gives the same initialization and batch order).

Configurations are selected on validation accuracy and compared on test accuracy, so the
selection does not flatter the comparison. A verdict is one of VERDICTS; a claim whose studies
did not produce the trials it needs is "not measured", never "holds".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from studies.analysis import Summary, summarize
from studies.states import TrialState

Trial = Mapping[str, Any]
Trials = Mapping[str, Sequence[Trial]]  # study name -> its trials (API dicts)
HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURED = "holds", "does not hold", "inconclusive", "not measured"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURED)
# what tells two configurations apart (the seed is the replicate, not the configuration)
CONFIG_KEYS = ("family", "p", "lambda", "schedule", "until", "from", "lr")
ACC_TOLERANCE = 0.01  # "within about a point" of accuracy
MOST = 0.5  # "most decayed weights" below 1e-6
MONOTONE_SLACK = 0.02  # a sparsity rise smaller than this between p levels is noise


def final(trial: Trial, name: str) -> float | None:
    """A final metric of a trial, None when missing or not finite."""
    value = (trial.get("final_metrics") or {}).get(name)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


@dataclass(frozen=True)
class Config:
    """One configuration of a study and its seed replicates (completed, not diverged)."""

    study: str
    params: tuple[tuple[str, Any], ...]
    trials: tuple[Trial, ...]

    def get(self, name: str) -> Any:
        return dict(self.params).get(name)

    def values(self, metric: str) -> dict[int, float]:
        """{seed: final metric} of the replicates that report it."""
        return {
            int(t.get("seed") or 0): v for t in self.trials if (v := final(t, metric)) is not None
        }

    def summary(self, metric: str) -> Summary:
        return summarize(list(self.values(metric).values()))

    def mean(self, metric: str) -> float:
        """The mean over seeds (-inf without a value, so it never wins a max)."""
        mean = self.summary(metric).mean
        return -math.inf if mean is None else mean

    def label(self) -> str:
        """`pwd p=0.8 λ=0.05`: the parameters that were set."""
        names = {"lambda": "λ", "from": "from"}
        shown = [str(self.get("family"))] + [
            f"{names.get(k, k)}={v:.3g}" if isinstance(v, float) else f"{names.get(k, k)}={v}"
            for k, v in self.params
            if k not in ("family", "lr")
            and v is not None
            and not (k == "schedule" and v == "full")
        ]
        return " ".join(shown)


def usable(trial: Trial) -> bool:
    return trial.get("state") == TrialState.COMPLETED and trial.get("diverged_epoch") is None


def configurations(study: str, trials: Sequence[Trial]) -> list[Config]:
    """The study's configurations, in the order first seen, each with its usable replicates."""
    groups: dict[tuple[tuple[str, Any], ...], list[Trial]] = {}
    for trial in trials:
        if usable(trial):
            key = tuple((k, trial.get(k)) for k in CONFIG_KEYS)
            groups.setdefault(key, []).append(trial)
    return [Config(study, key, tuple(group)) for key, group in groups.items()]


def best(configs: Sequence[Config], metric: str = "val_acc") -> Config | None:
    """The configuration with the highest mean of `metric` (None when there is none)."""
    return max(configs, key=lambda c: c.mean(metric), default=None)


def paired_difference(a: Config, b: Config, metric: str) -> Summary:
    """Summary over the seeds both have of `metric(a) - metric(b)`."""
    left, right = a.values(metric), b.values(metric)
    return summarize([left[s] - right[s] for s in sorted(left.keys() & right.keys())])


def show(summary: Summary, percent: bool = False, signed: bool = False) -> str:
    """`64.3% [62.1, 66.5]`, `-1.2 pt [-3.0, 0.6]` or `+2.21 [0.49, 3.93]`: mean and 95% CI."""
    if summary.mean is None:
        return "n/a"
    scale = 100.0 if percent else 1.0
    unit = (" pt" if signed else "%") if percent else ""
    digits = ".1f" if percent else ".3g"

    def number(value: float) -> str:
        text = f"{scale * value:{digits}}"
        return text.lstrip("-") if float(text) == 0 else text  # never a "-0.0"

    text = f"{'+' if signed and summary.mean >= 0 else ''}{number(summary.mean)}{unit}"
    if summary.ci_low is None or summary.ci_high is None:
        return f"{text} (n={summary.count}, no CI)"
    return f"{text} [{number(summary.ci_low)}, {number(summary.ci_high)}]"


def as_json(summary: Summary) -> dict[str, Any]:
    return {
        "count": summary.count,
        "mean": summary.mean,
        "std": summary.std,
        "ci_low": summary.ci_low,
        "ci_high": summary.ci_high,
    }


@dataclass(frozen=True)
class Verdict:
    """One row of the reproduce table."""

    claim: str
    title: str
    paper: str
    rule: str
    measured: str
    verdict: str
    reason: str = ""
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "claim": self.claim,
            "title": self.title,
            "paper": self.paper,
            "rule": self.rule,
            "measured": self.measured,
            "verdict": self.verdict,
            "reason": self.reason,
            "numbers": self.numbers,
        }


@dataclass(frozen=True)
class Claim:
    """A claim, the bundled studies that test it, and the function that judges it."""

    claim: str
    title: str
    paper: str
    rule: str
    studies: tuple[str, ...]
    judge: Callable[[Claim, Mapping[str, list[Config]]], Verdict]

    def verdict(self, measured: str, verdict: str, reason: str = "", **numbers: Any) -> Verdict:
        return Verdict(
            self.claim, self.title, self.paper, self.rule, measured, verdict, reason, numbers
        )

    def not_measured(self, reason: str) -> Verdict:
        return self.verdict("n/a", NOT_MEASURED, reason)


def by_interval(difference: Summary) -> str:
    """holds when the 95% CI of a difference lies above 0, does not hold below, else neither."""
    if difference.ci_low is None or difference.ci_high is None:
        return INCONCLUSIVE
    if difference.ci_low > 0:
        return HOLDS
    return FAILS if difference.ci_high < 0 else INCONCLUSIVE


def _missing(configs: Mapping[str, list[Config]], studies: Sequence[str]) -> str:
    empty = [name for name in studies if not configs.get(name)]
    return f"no completed trials in {', '.join(empty)}" if empty else ""


# ---------------------------------------------------------------- claim 1


def _pick_sparse(candidates: Sequence[Config]) -> tuple[Config, bool]:
    """The most accurate (val_acc) candidate with most weights below 1e-6.

    Returns (config, whether it is sparse); without a sparse one, the sparsest candidate.
    """
    sparse = [c for c in candidates if c.mean("sparsity") >= MOST]
    if sparse:
        chosen = best(sparse)
        assert chosen is not None
        return chosen, True
    return max(candidates, key=lambda c: c.mean("sparsity")), False


def judge_sparse_at_no_cost(claim: Claim, configs: Mapping[str, list[Config]]) -> Verdict:
    """Claim 1: pWD with p < 1 is mostly sparse at the accuracy of the best decoupled run."""
    pwd_study, decoupled_study = claim.studies[0], claim.studies[1]
    below_one = [c for c in configs.get(pwd_study, []) if float(c.get("p") or 2.0) < 1]
    dense = best(configs.get(decoupled_study, []))
    if not below_one or dense is None:
        return claim.not_measured(_missing(configs, claim.studies[:2]) or "no pWD run with p < 1")
    sparse, is_sparse = _pick_sparse(below_one)
    sparsity, dense_sparsity = sparse.summary("sparsity"), dense.summary("sparsity")
    gap = paired_difference(sparse, dense, "test_acc")
    reasons = []
    if not is_sparse:
        reasons.append(
            f"no pWD p<1 configuration has most weights < 1e-6 (at best {show(sparsity, True)})"
        )
    if gap.mean is None or gap.mean < -ACC_TOLERANCE:
        reasons.append(f"pWD's test accuracy is {show(gap, True, True)} against decoupled")
    measured = (
        f"{sparse.label()}: sparsity {show(sparsity, True)}, test acc "
        f"{show(sparse.summary('test_acc'), True)}; best decoupled ({dense.label()}): sparsity "
        f"{show(dense_sparsity, True)}, test acc {show(dense.summary('test_acc'), True)}; "
        f"test acc pWD − decoupled {show(gap, True, True)}"
    )
    return claim.verdict(
        measured,
        FAILS if reasons else HOLDS,
        "; ".join(reasons),
        pwd_config=sparse.label(),
        decoupled_config=dense.label(),
        pwd_sparsity=as_json(sparsity),
        decoupled_sparsity=as_json(dense_sparsity),
        pwd_test_acc=as_json(sparse.summary("test_acc")),
        decoupled_test_acc=as_json(dense.summary("test_acc")),
        test_acc_difference=as_json(gap),
    )


# ---------------------------------------------------------------- claim 2


def _by_p(configs: Sequence[Config]) -> list[Config]:
    return sorted((c for c in configs if c.get("p") is not None), key=lambda c: float(c.get("p")))


def judge_sparsity_falls_with_p(claim: Claim, configs: Mapping[str, list[Config]]) -> Verdict:
    """Claim 2a: at fixed λ·lr, sparsity does not rise with p, and falls from the ends."""
    levels = _by_p(configs.get(claim.studies[0], []))
    if len(levels) < 3:
        return claim.not_measured(_missing(configs, claim.studies) or "fewer than 3 p levels")
    means = [c.mean("sparsity") for c in levels]
    rises = [
        f"p={a.get('p'):g}→{b.get('p'):g} (+{100 * (mb - ma):.1f} points)"
        for a, b, ma, mb in zip(levels, levels[1:], means, means[1:], strict=False)
        if mb > ma + MONOTONE_SLACK
    ]
    drop = paired_difference(levels[0], levels[-1], "sparsity")
    reasons = [f"sparsity rises at {', '.join(rises)}"] if rises else []
    if drop.mean is None or drop.mean <= MONOTONE_SLACK:
        reasons.append(f"sparsity(p_min) − sparsity(p_max) is only {show(drop, True, True)}")
    measured = "; ".join(f"p={c.get('p'):g}: {show(c.summary('sparsity'), True)}" for c in levels)
    return claim.verdict(
        measured + f"; p_min − p_max {show(drop, True, True)}",
        FAILS if reasons else HOLDS,
        "; ".join(reasons),
        sparsity_by_p={f"{c.get('p'):g}": as_json(c.summary("sparsity")) for c in levels},
        sparsity_drop=as_json(drop),
    )


def judge_best_p_between_one_and_two(claim: Claim, configs: Mapping[str, list[Config]]) -> Verdict:
    """Claim 2b: the best test accuracy is at 1 < p < 2 (paired CI against the best outside)."""
    levels = _by_p(configs.get(claim.studies[0], []))
    inside = [c for c in levels if 1 < float(c.get("p")) < 2]
    outside = [c for c in levels if not 1 < float(c.get("p")) < 2]
    if not inside or not outside:
        return claim.not_measured(_missing(configs, claim.studies) or "p not on both sides")
    best_in = max(inside, key=lambda c: c.mean("test_acc"))
    best_out = max(outside, key=lambda c: c.mean("test_acc"))
    gap = paired_difference(best_in, best_out, "test_acc")
    verdict = by_interval(gap)
    measured = "; ".join(
        f"p={c.get('p'):g}: {show(c.summary('test_acc'), True)}" for c in levels
    ) + (
        f"; best in (1,2) p={best_in.get('p'):g} − best outside p={best_out.get('p'):g}: "
        f"{show(gap, True, True)}"
    )
    reason = {
        FAILS: "a p outside (1, 2) generalizes better, beyond the seed noise",
        INCONCLUSIVE: "the difference is within the seed noise (the CI contains 0)",
    }.get(verdict, "")
    return claim.verdict(
        measured,
        verdict,
        reason,
        test_acc_by_p={f"{c.get('p'):g}": as_json(c.summary("test_acc")) for c in levels},
        difference=as_json(gap),
    )


# ---------------------------------------------------------------- claim 3


def _schedules(configs: Sequence[Config], family: str) -> dict[str, Config]:
    """The configuration of each schedule for one family (the first, if several)."""
    found: dict[str, Config] = {}
    for config in configs:
        if config.get("family") == family:
            found.setdefault(str(config.get("schedule")), config)
    return found


def _schedule_arms(
    claim: Claim, configs: Mapping[str, list[Config]], family: str, names: Sequence[str]
) -> list[Config] | Verdict:
    arms = _schedules(configs.get(claim.studies[0], []), family)
    missing = [n for n in names if n not in arms]
    if missing:
        why = _missing(configs, claim.studies) or f"no {family} run with {', '.join(missing)}"
        return claim.not_measured(why)
    return [arms[n] for n in names]


def judge_early_matches_full(
    claim: Claim, configs: Mapping[str, list[Config]], *, family: str
) -> Verdict:
    """Claim 3a: early decay's test accuracy is within a point of full decay's (or above)."""
    arms = _schedule_arms(claim, configs, family, ("early", "full", "none"))
    if isinstance(arms, Verdict):
        return arms
    early, full, none = arms
    gap = paired_difference(early, full, "test_acc")
    benefit = paired_difference(full, none, "test_acc")
    holds = gap.mean is not None and gap.mean >= -ACC_TOLERANCE
    measured = (
        f"test acc early({early.get('until'):g}) {show(early.summary('test_acc'), True)}, "
        f"full {show(full.summary('test_acc'), True)}, none "
        f"{show(none.summary('test_acc'), True)}; early − full {show(gap, True, True)}; "
        f"full − none {show(benefit, True, True)}"
    )
    reason = "" if holds else f"early is {show(gap, True, True)} below full"
    return claim.verdict(
        measured,
        HOLDS if holds else FAILS,
        reason,
        early_minus_full=as_json(gap),
        full_minus_none=as_json(benefit),
    )


def judge_early_keeps_norm_small(
    claim: Claim, configs: Mapping[str, list[Config]], *, family: str
) -> Verdict:
    """Claim 3b: the final weight norm after early decay is below the no-decay run's."""
    arms = _schedule_arms(claim, configs, family, ("early", "none"))
    if isinstance(arms, Verdict):
        return arms
    early, none = arms
    gap = paired_difference(none, early, "weight_norm")
    verdict = by_interval(gap)
    measured = (
        f"final ‖w‖ early {show(early.summary('weight_norm'))}, none "
        f"{show(none.summary('weight_norm'))}; none − early {show(gap, signed=True)}"
    )
    reason = "" if verdict == HOLDS else "the norms do not differ beyond the seed noise"
    return claim.verdict(
        measured,
        verdict,
        reason,
        early_weight_norm=as_json(early.summary("weight_norm")),
        none_weight_norm=as_json(none.summary("weight_norm")),
        none_minus_early=as_json(gap),
    )


def judge_late_like_none(
    claim: Claim, configs: Mapping[str, list[Config]], *, family: str
) -> Verdict:
    """Claim 3c: late decay's test accuracy is within a point of no decay's."""
    arms = _schedule_arms(claim, configs, family, ("late", "none", "full"))
    if isinstance(arms, Verdict):
        return arms
    late, none, full = arms
    gap = paired_difference(late, none, "test_acc")
    holds = gap.mean is not None and abs(gap.mean) <= ACC_TOLERANCE
    measured = (
        f"test acc late(from {late.get('from'):g}) {show(late.summary('test_acc'), True)}, "
        f"none {show(none.summary('test_acc'), True)}, full "
        f"{show(full.summary('test_acc'), True)}; late − none {show(gap, True, True)}"
    )
    reason = "" if holds else f"late differs from none by {show(gap, True, True)}"
    return claim.verdict(measured, HOLDS if holds else FAILS, reason, late_minus_none=as_json(gap))


# ---------------------------------------------------------------- claim 4


def judge_decoupled_beats_l2(claim: Claim, configs: Mapping[str, list[Config]]) -> Verdict:
    """Claim 4: the best decoupled run against the best L2 run (each chosen on val_acc)."""
    decoupled = best(configs.get(claim.studies[0], []))
    coupled = best(configs.get(claim.studies[1], []))
    if decoupled is None or coupled is None:
        return claim.not_measured(_missing(configs, claim.studies))
    gap = paired_difference(decoupled, coupled, "test_acc")
    verdict = by_interval(gap)
    measured = (
        f"best decoupled ({decoupled.label()}) {show(decoupled.summary('test_acc'), True)}, "
        f"best l2 ({coupled.label()}) {show(coupled.summary('test_acc'), True)}; "
        f"decoupled − l2 {show(gap, True, True)}"
    )
    reason = {
        FAILS: "L2 generalizes better here, beyond the seed noise",
        INCONCLUSIVE: "the difference is within the seed noise (the CI contains 0)",
    }.get(verdict, "")
    return claim.verdict(measured, verdict, reason, decoupled_minus_l2=as_json(gap))


def judge_elsewhere(claim: Claim, configs: Mapping[str, list[Config]]) -> Verdict:
    """Claim 5: tested by the test suite, not by a study."""
    return claim.not_measured(
        "covered by tests/workers/test_rotational_equilibrium.py (a direct loop measuring "
        "per-step angles); a study's angular_update is a per-epoch angle divided by the steps "
        "and averages in the unnormalized head layer, so it cannot be compared"
    )


def judge_no_difference(claim: Claim, configs: Mapping[str, list[Config]]) -> Verdict:
    """Claim 4 under SGD: decoupled and L2 coincide (the difference is within the noise)."""
    verdict = judge_decoupled_beats_l2(claim, configs)
    gap = verdict.numbers.get("decoupled_minus_l2") or {}
    if verdict.verdict == NOT_MEASURED or gap.get("mean") is None:
        return verdict
    holds = verdict.verdict == INCONCLUSIVE or abs(gap["mean"]) <= ACC_TOLERANCE
    reason = "" if holds else "one family is better beyond the seed noise and by over a point"
    return claim.verdict(verdict.measured, HOLDS if holds else FAILS, reason, **verdict.numbers)


# ---------------------------------------------------------------- the registry

PWD_ARMS = ("pwd_sparsity_pwd", "pwd_sparsity_decoupled", "pwd_sparsity_l2")
SGD_ARMS = ("l2_vs_decoupled_sgd_decoupled", "l2_vs_decoupled_sgd_l2")
EARLY = {"decoupled": "early_vs_full_decoupled", "pwd": "early_vs_full_pwd"}


def _schedule_claims(family: str) -> list[Claim]:
    study = (EARLY[family],)
    paper = "Bjorck et al. 2021; Golatkar et al. 2019"
    return [
        Claim(
            f"3a {family}",
            "Early decay matches full decay",
            f"{paper}: decay only early gives most or all of full decay's benefit",
            f"mean test acc early − full ≥ −{100 * ACC_TOLERANCE:g} point",
            study,
            partial(judge_early_matches_full, family=family),
        ),
        Claim(
            f"3b {family}",
            "Early decay keeps the weight norm below no decay",
            f"{paper}: the norm stays small after the decay stops",
            "95% CI of final ‖w‖ none − early above 0",
            study,
            partial(judge_early_keeps_norm_small, family=family),
        ),
        Claim(
            f"3c {family}",
            "Late decay behaves like no decay",
            f"{paper}: decay applied only late does little",
            f"|mean test acc late − none| ≤ {100 * ACC_TOLERANCE:g} point",
            study,
            partial(judge_late_like_none, family=family),
        ),
    ]


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "1",
        "pWD (p < 1) is sparse without losing accuracy",
        "Outmezguine & Levi 2024: FashionMNIST ≈93% for both, 83.6% of weights at zero with "
        "pWD vs ≈6% with AdamW; CIFAR-10 ResNet-18 p=0.8: 86–95% sparse, −0.5 points",
        f"the most accurate pWD p<1 configuration with mean sparsity ≥ {100 * MOST:g}% has "
        f"mean test acc ≥ best AdamW's − {100 * ACC_TOLERANCE:g} point",
        PWD_ARMS[:2],
        judge_sparse_at_no_cost,
    ),
    Claim(
        "2a",
        "Sparsity falls as p rises (fixed λ·lr)",
        "Outmezguine & Levi 2024: the smaller p, the sparser",
        f"mean sparsity never rises by > {100 * MONOTONE_SLACK:g} points from one p to the "
        "next, and falls from the smallest to the largest p",
        ("p_sweep",),
        judge_sparsity_falls_with_p,
    ),
    Claim(
        "2b",
        "Generalization is best for 1 < p < 2",
        "Outmezguine & Levi 2024: best test accuracy between p = 1 and p = 2",
        "95% CI of test acc (best p in (1,2)) − (best p outside) above 0",
        ("p_sweep",),
        judge_best_p_between_one_and_two,
    ),
    *_schedule_claims("decoupled"),
    *_schedule_claims("pwd"),
    Claim(
        "4 adam",
        "Decoupled beats coupled L2 under Adam",
        "Loshchilov & Hutter 2019: AdamW generalizes better than Adam + L2 at equal tuning",
        "95% CI of test acc (best decoupled) − (best l2) above 0; small on easy data",
        PWD_ARMS[1:],
        judge_decoupled_beats_l2,
    ),
    Claim(
        "4 sgd",
        "Under SGD, decoupled and L2 are equivalent",
        "Loshchilov & Hutter 2019: for SGD, L2 equals weight decay up to rescaling λ by lr",
        f"95% CI of test acc decoupled − l2 contains 0, or |mean| ≤ {100 * ACC_TOLERANCE:g} pt",
        SGD_ARMS,
        judge_no_difference,
    ),
    Claim(
        "5",
        "Rotational equilibrium",
        "Kosson et al. 2024: AdamW rows turn by sqrt(2ηλ(1−β1)/(1+β1)) per step "
        "(3.24e-3 at η=1e-3, λ=0.1)",
        "per-step angle of the normalized rows within 20% of the prediction, in "
        "tests/workers/test_rotational_equilibrium.py",
        (),
        judge_elsewhere,
    ),
)


def studies_for(claims: Sequence[Claim]) -> list[str]:
    """The bundled studies the claims need, each once, in order."""
    return list(dict.fromkeys(name for claim in claims for name in claim.studies))


def evaluate(trials: Trials, claims: Sequence[Claim] = CLAIMS) -> list[Verdict]:
    """A verdict per claim from the trials of each study (by study name)."""
    configs = {name: configurations(name, rows) for name, rows in trials.items()}
    return [claim.judge(claim, configs) for claim in claims]
