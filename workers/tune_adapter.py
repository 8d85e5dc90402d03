"""The thin seams between decaylab and Ray Tune: the trainable, the searcher and the scheduler.

`run_trial` wraps `workers.train.train` in a few lines; `StudySearcher` is a Ray Tune `Searcher`
that owns the study's Optuna study (ask and tell), with seed replicates, no configuration trained
twice, and a correct account of early-stopped trials; `make_scheduler` builds ASHA / median
stopping from the spec.
"""

from __future__ import annotations

import math
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any

import optuna
import ray
from optuna.trial import TrialState as OptunaState
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule, TrialScheduler
from ray.tune.search import Searcher

from studies.optuna_tables import finished_for_real, recover_lost_trials
from studies.repository import DUPLICATE_ATTR
from studies.search_space import configuration_key, directions, resolve_config, suggest
from studies.spec import StudySpec
from studies.states import TrialState
from studies.trial_config import TrialConfig
from workers.data import DatasetSplits
from workers.train import train

# keys the trainable adds to its reports beside the metrics
EPOCH, TRIAL_INFO, TRIAL_ERROR = "epoch", "trial_info", "trial_error"
# config keys that carry bookkeeping, not training settings
# keys the searcher adds to a trial's Tune config (the trainable drops every "_" key): which
# configuration and replicate it is, and exactly what Optuna suggested (for the recorder)
CONFIG_NUMBER, CONFIG_REPLICATE, CONFIG_PARAMS = "_config_number", "_replicate", "_params"


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


def trial_outcome(result: dict[str, Any] | None, epochs: int, error: bool) -> TrialState:
    """How a finished Tune trial ended: completed, pruned, diverged or failed."""
    if error or not result or TRIAL_ERROR in result:
        return TrialState.FAILED
    if result.get("diverged"):
        return TrialState.DIVERGED
    return TrialState.COMPLETED if result.get(EPOCH, 0) >= epochs else TrialState.PRUNED


@dataclass
class _Config:
    """One suggested configuration and the replicates (seeds) it runs as."""

    ot_trial: optuna.Trial
    params: dict[str, Any]
    key: tuple[Any, ...]
    outcomes: dict[int, tuple[TrialState, dict[str, Any] | None]] = field(default_factory=dict)
    # later suggestions of the same configuration, told this one's result when it ends
    duplicates: list[optuna.Trial] = field(default_factory=list)


class StudySearcher(Searcher):
    """Ray Tune's searcher over the study's Optuna study, through Optuna's ask-and-tell API.

    Each suggested configuration runs as `seeds` Tune trials (replicate r with seed r); once all
    ended Optuna is told the mean over seeds (COMPLETE), PRUNED when a scheduler stopped one
    early (Ray's OptunaSearch would tell COMPLETE with the truncated score, so the sampler would
    learn from half-trained results), FAIL when one failed or diverged.

    No configuration trains twice (`configuration_key` says which are the same). A repeated
    suggestion spends one ask of the budget and no training, and is told the earlier
    configuration's outcome, with `duplicate_of` (its trial number) in its user attrs: at once
    when that one has ended, else when it ends. A failed configuration is not retried either:
    its replicates would run with the same seeds. The budget is `n_trials` asks, less those that
    finished for real before this driver (`remaining_configurations`); once it is spent and every
    replicate handed out, the searcher tells Tune it has FINISHED.
    """

    def __init__(
        self,
        spec: StudySpec,
        *,
        storage: optuna.storages.BaseStorage,
        study_name: str,
        sampler: optuna.samplers.BaseSampler,
    ) -> None:
        metrics = [o.metric for o in spec.objectives]
        modes = [o.mode for o in spec.objectives]
        many = len(metrics) > 1
        super().__init__(metric=metrics if many else metrics[0], mode=modes if many else modes[0])
        self.spec = spec
        self.storage = storage
        # trials only report for Optuna's plots: no pruner may stop them (Tune's scheduler does)
        self.study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            sampler=sampler,
            pruner=optuna.pruners.NopPruner(),
            directions=directions(spec),
            load_if_exists=True,
        )
        if self.study.get_trials(deepcopy=False):
            # a resumed study: the seeded sampler, started afresh, would replay its first
            # suggestions, configurations that already ran
            sampler.reseed_rng()
        self._configs: dict[int, _Config] = {}
        self._queue: list[tuple[int, int]] = []  # (config number, replicate) still to hand out
        self._tune_trials: dict[str, tuple[int, int]] = {}
        self._asks_left: int | None = None  # set by `remaining_configurations`
        self._ended: dict[tuple[Any, ...], optuna.trial.FrozenTrial] = {}  # by configuration key
        self._running: dict[tuple[Any, ...], _Config] = {}

    @property
    def optuna_study(self) -> optuna.Study:
        """The Optuna study behind the search."""
        return self.study

    def recover_lost_trials(self) -> int:
        """Fail the trials a dead driver left running and queue their configurations again."""
        return recover_lost_trials(self.study, self.storage)

    def remaining_configurations(self) -> int:
        """Learn what already ran, and return how many configurations the budget still allows.

        Call it after `recover_lost_trials`: lost trials neither count nor make a duplicate.
        """
        ended = finished_for_real(self.study)
        self._ended = {}
        for trial in ended:  # the first of equal configurations is the one a repeat points at
            self._ended.setdefault(configuration_key(self.spec, trial.params), trial)
        self._asks_left = max(0, self.spec.search.n_trials - len(ended))
        return self._asks_left

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        """Refuse Tune's space, metric and mode: the StudySpec fixes all three."""
        return False

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The next (configuration, replicate) as a Tune config; FINISHED once out of budget."""
        if not self._queue and not self._ask_new_configuration():
            return Searcher.FINISHED
        number, replicate = self._queue.pop(0)
        self._tune_trials[trial_id] = (number, replicate)
        params = self._configs[number].params
        config = resolve_config(self.spec, params, seed=replicate)
        return {
            **config,
            CONFIG_NUMBER: number,
            CONFIG_REPLICATE: replicate,
            CONFIG_PARAMS: dict(params),
        }

    def _ask_new_configuration(self) -> bool:
        """Ask Optuna until it suggests a configuration not yet run; False once out of asks."""
        if self._asks_left is None:
            self.remaining_configurations()
        assert self._asks_left is not None
        while self._asks_left > 0:
            self._asks_left -= 1
            ot_trial = self.study.ask()
            params = suggest(ot_trial, self.spec)
            key = configuration_key(self.spec, params)
            if key in self._ended:
                self._tell_duplicate(ot_trial, self._ended[key])
            elif key in self._running:
                self._running[key].duplicates.append(ot_trial)
            else:
                config = _Config(ot_trial, params, key)
                self._configs[ot_trial.number] = self._running[key] = config
                self._queue = [(ot_trial.number, r) for r in range(self.spec.seeds)]
                return True
        return False

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
            ended = self._tell(config)
            del self._configs[number], self._running[config.key]
            self._ended.setdefault(config.key, ended)
            for duplicate in config.duplicates:
                self._tell_duplicate(duplicate, ended)

    def _tell(self, config: _Config) -> optuna.trial.FrozenTrial:
        states = {state for state, _ in config.outcomes.values()}
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        if states <= {TrialState.COMPLETED}:
            values = [
                sum(float(r[m]) for _, r in config.outcomes.values() if r) / len(config.outcomes)
                for m in metrics
            ]
            return self.study.tell(config.ot_trial, values)
        if states & {TrialState.FAILED, TrialState.DIVERGED}:
            return self.study.tell(config.ot_trial, state=OptunaState.FAIL)
        return self.study.tell(config.ot_trial, state=OptunaState.PRUNED)

    def _tell_duplicate(self, ot_trial: optuna.Trial, earlier: optuna.trial.FrozenTrial) -> None:
        """Tell a repeated suggestion what its configuration's earlier trial was told."""
        ot_trial.set_user_attr(DUPLICATE_ATTR, earlier.number)
        if earlier.state == OptunaState.COMPLETE:
            self.study.tell(ot_trial, earlier.values)
            return
        if earlier.state == OptunaState.PRUNED and isinstance(self.metric, str):
            # a pruned trial's value is its last report, and its curve is how samplers rank it
            for step, value in sorted(earlier.intermediate_values.items()):
                ot_trial.report(value, step)
        self.study.tell(ot_trial, state=earlier.state)

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
    "CONFIG_PARAMS",
    "CONFIG_REPLICATE",
    "TRIAL_ERROR",
    "TRIAL_INFO",
    "CancelStopper",
    "StudySearcher",
    "make_scheduler",
    "run_trial",
    "trial_outcome",
]
