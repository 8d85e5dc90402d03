"""The thin seams between decaylab and Ray Tune: the trainable, the searcher and the scheduler.

`run_trial` wraps `workers.train.train` in a few lines; `StudySearcher` is Ray's `OptunaSearch`
with the study's define-by-run space, seed replicates, and a correct account of early-stopped
trials; `make_scheduler` builds ASHA / median stopping from the spec.
"""

from __future__ import annotations

import math
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any

import optuna
import ray
from optuna.trial import TrialState
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule, TrialScheduler
from ray.tune.search.optuna import OptunaSearch

from studies.search_space import resolve_config, suggest
from studies.spec import StudySpec
from studies.trial_config import TrialConfig
from workers.data import DatasetSplits
from workers.train import train

# keys the trainable adds to its reports beside the metrics
EPOCH, TRIAL_INFO, TRIAL_ERROR = "epoch", "trial_info", "trial_error"
# config keys that carry bookkeeping, not training settings
CONFIG_NUMBER, CONFIG_REPLICATE = "_config_number", "_replicate"


# Set by the driver's signal handler and read by the Stopper through this module: the Stopper is
# pickled with the Tuner, an Event cannot be (and `python -m workers.run` is `__main__`, whose
# globals cloudpickle would copy).
CANCEL = threading.Event()


class CancelStopper(tune.Stopper):
    """Ends the whole run once the study is cancelled."""

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return CANCEL.is_set()


def _finite_only(metrics: dict[str, float]) -> dict[str, float]:
    # NaN/inf cannot be stored as JSON nor ranked by a scheduler; `diverged` says what happened
    return {k: v for k, v in metrics.items() if math.isfinite(v)}


def run_trial(config: dict[str, Any], data: DatasetSplits) -> None:
    """Tune function trainable: train one configuration, reporting every epoch to Tune."""
    settings = {k: v for k, v in config.items() if not k.startswith("_")}
    # the Ray node id, not node_ip: several nodes can share one machine's address
    info: dict[str, Any] = {"node": ray.get_runtime_context().get_node_id()}

    def report(epoch: int, metrics: dict[str, float]) -> None:
        payload: dict[str, Any] = {**_finite_only(metrics), EPOCH: epoch}
        if info:
            payload[TRIAL_INFO] = dict(info)
            info.clear()
        tune.report(payload)

    try:
        trial_config = TrialConfig.model_validate(settings)
        train(trial_config, report, data, on_start=info.update, on_end=info.update)
    except Exception:
        # A trial that raises is a result (failed, with its reason), not a crash: retrying a
        # deterministic error wastes the budget. A dead worker is retried by Tune instead.
        tune.report({EPOCH: 0, TRIAL_ERROR: traceback.format_exc(limit=20)})


def trial_dirname(trial: Any) -> str:
    """Short trial directory names (Tune's default spells out the whole config)."""
    return f"trial_{trial.trial_id}"


def trial_outcome(result: dict[str, Any] | None, epochs: int, error: bool) -> str:
    """How a finished Tune trial ended: completed, pruned, diverged or failed."""
    if error or not result or TRIAL_ERROR in result:
        return "failed"
    if result.get("diverged"):
        return "diverged"
    return "completed" if result.get(EPOCH, 0) >= epochs else "pruned"


@dataclass
class _Config:
    """One suggested configuration and the replicates (seeds) it runs as."""

    ot_trial: optuna.Trial
    params: dict[str, Any]
    outcomes: dict[int, tuple[str, dict[str, Any] | None]] = field(default_factory=dict)


class StudySearcher(OptunaSearch):
    """OptunaSearch over a StudySpec, with `seeds` replicates per suggested configuration.

    Ray's OptunaSearch tells Optuna COMPLETE with the truncated score when a scheduler stops a
    trial early, so the sampler learns from half-trained results. Here such a trial is told
    PRUNED, a diverged or failed one FAIL, and a configuration's value is the mean over seeds.
    """

    def __init__(
        self,
        spec: StudySpec,
        *,
        storage: optuna.storages.BaseStorage,
        study_name: str,
        sampler: optuna.samplers.BaseSampler,
    ) -> None:
        self.spec = spec
        metrics = [o.metric for o in spec.objectives]
        modes = [o.mode for o in spec.objectives]
        super().__init__(
            space=self._define_by_run,
            metric=metrics if len(metrics) > 1 else metrics[0],
            mode=modes if len(modes) > 1 else modes[0],
            sampler=sampler,
            study_name=study_name,
            storage=storage,
        )
        self._configs: dict[int, _Config] = {}
        self._queue: list[tuple[int, int]] = []  # (config number, replicate) still to hand out
        self._tune_trials: dict[str, tuple[int, int]] = {}
        self._reported: set[int] = set()

    def _define_by_run(self, trial: optuna.Trial) -> dict[str, Any]:
        return suggest(trial, self.spec)

    @property
    def optuna_study(self) -> optuna.Study:
        """The Optuna study behind the search."""
        return self._ot_study

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """The next (configuration, replicate) as a Tune config."""
        if not self._queue:
            ot_trial = self._ot_study.ask()
            params = self._define_by_run(ot_trial)
            self._configs[ot_trial.number] = _Config(ot_trial, params)
            self._queue = [(ot_trial.number, r) for r in range(self.spec.seeds)]
        number, replicate = self._queue.pop(0)
        self._tune_trials[trial_id] = (number, replicate)
        params = self._configs[number].params
        config = resolve_config(self.spec, params, seed=replicate)
        return {**config, CONFIG_NUMBER: number, CONFIG_REPLICATE: replicate}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Intermediate values for Optuna's plots: single objective, first replicate only."""
        number, replicate = self._tune_trials[trial_id]
        if isinstance(self.metric, str) and replicate == 0 and self.metric in result:
            self._configs[number].ot_trial.report(result[self.metric], result[EPOCH])

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Record one replicate; tell Optuna once every replicate of the configuration ended."""
        number, replicate = self._tune_trials.pop(trial_id)
        config = self._configs[number]
        config.outcomes[replicate] = (
            trial_outcome(result, self.spec.task.epochs, error),
            result,
        )
        if len(config.outcomes) == self.spec.seeds:
            self._tell(config)
            del self._configs[number]

    def _tell(self, config: _Config) -> None:
        states = {state for state, _ in config.outcomes.values()}
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        if states <= {"completed"}:
            values = [
                sum(float(r[m]) for _, r in config.outcomes.values() if r) / len(config.outcomes)
                for m in metrics
            ]
            self._ot_study.tell(config.ot_trial, values if len(values) > 1 else values[0])
        elif "failed" in states or "diverged" in states:
            self._ot_study.tell(config.ot_trial, state=TrialState.FAIL)
        else:
            self._ot_study.tell(config.ot_trial, state=TrialState.PRUNED)

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the study resumes from the database, not from Tune's checkpoint."""

    def restore(self, checkpoint_path: str) -> None:
        """Nothing to restore (see `save`)."""


def make_scheduler(spec: StudySpec) -> TrialScheduler:
    """ASHA, median stopping or FIFO, on the first objective, with epochs as time."""
    options = spec.search.scheduler
    objective = spec.objectives[0]
    grace = spec.grace_period_epochs()
    common = {"time_attr": EPOCH, "metric": objective.metric, "mode": objective.mode}
    if options.type == "asha":
        return ASHAScheduler(
            max_t=spec.task.epochs,
            grace_period=grace,
            reduction_factor=options.reduction_factor,
            **common,
        )
    if options.type == "median":
        return MedianStoppingRule(grace_period=float(grace), **common)
    return FIFOScheduler()


__all__ = [
    "CANCEL",
    "CONFIG_NUMBER",
    "CONFIG_REPLICATE",
    "TRIAL_ERROR",
    "TRIAL_INFO",
    "CancelStopper",
    "StudySearcher",
    "make_scheduler",
    "run_trial",
    "trial_outcome",
]
