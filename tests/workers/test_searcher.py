"""The StudySearcher driven as Tune drives it, without Ray, on a real Optuna study.

A space of four configurations and a budget of twelve asks makes repeated suggestions frequent;
whatever the sampler, no configuration trains twice, every ask is told, and the study ends.
The studies live in Optuna's in-memory storage, except where a resume reads what another
driver left in SQLite (each SQLite commit costs this machine's disk a sync).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from factories import make_spec
from ray.tune.search import Searcher

from studies.optuna_tables import LOST_ATTR
from studies.repository import DUPLICATE_ATTR
from studies.search_space import SAMPLERS, configuration_key, make_sampler
from studies.spec import StudySpec
from workers.tune_adapter import CONFIG_NUMBER, EPOCH, TRIAL_ERROR, StudySearcher

optuna.logging.set_verbosity(optuna.logging.WARNING)

EPOCHS = 3
SEEDS = 2
# two values each: four configurations, for every sampler (cmaes and qmc take only ranges)
SMALL_SPACE = {
    "batch_size": {"type": "int", "low": 32, "high": 64, "step": 32},
    "lr": {"type": "float", "low": 0.001, "high": 0.002, "step": 0.001},
}
Result = Callable[[dict[str, Any]], dict[str, Any]]


def small_spec(sampler: str, n_trials: int = 12, **overrides: Any) -> StudySpec:
    objectives = [{"metric": "val_acc", "mode": "max"}]
    if sampler == "nsga2":
        objectives.append({"metric": "sparsity", "mode": "max"})
    return make_spec(
        task={"dataset": "mnist1d", "model": "mlp", "epochs": EPOCHS},
        space=SMALL_SPACE,
        objectives=objectives,
        search={"sampler": sampler, "n_trials": n_trials, "seed": 3},
        seeds=SEEDS,
        **overrides,
    )


def new_searcher(spec: StudySpec, url: str | None = None) -> StudySearcher:
    """A searcher on the SQLite database at `url`, else on a fresh in-memory storage."""
    storage = optuna.storages.RDBStorage(url) if url else optuna.storages.InMemoryStorage()
    return StudySearcher(
        spec,
        storage=storage,
        study_name="searcher-test",
        sampler=make_sampler(spec),
    )


def score(config: dict[str, Any]) -> dict[str, Any]:
    """A made-up result that depends on the configuration and the seed, for every epoch."""
    val_acc = config["lr"] * 100 + config["batch_size"] / 1000 + config["seed"] / 100
    return {"val_acc": val_acc, "sparsity": config["lr"], EPOCH: EPOCHS}


def run_like_tune(
    searcher: StudySearcher,
    result: Result = score,
    *,
    max_concurrent: int = 2,
    stop_after: int | None = None,
) -> list[dict[str, Any]]:
    """Suggest and complete trials as Tune does (first started, first done) until FINISHED.

    Returns every config handed out; with `stop_after`, stops (as a dead driver) after that many
    completions, leaving the live trials unfinished.
    """
    handed_out: list[dict[str, Any]] = []
    live: list[tuple[str, dict[str, Any]]] = []
    finished, completed = False, 0
    while True:
        while not finished and len(live) < max_concurrent:
            trial_id = f"tune-{len(handed_out)}"
            config = searcher.suggest(trial_id)
            if config == Searcher.FINISHED:
                finished = True
            elif isinstance(config, dict):
                handed_out.append(config)
                live.append((trial_id, config))
        if not live or completed == stop_after:
            return handed_out
        trial_id, config = live.pop(0)
        outcome = result(config)
        for epoch in range(1, outcome[EPOCH] + 1):
            searcher.on_trial_result(trial_id, {**outcome, EPOCH: epoch})
        searcher.on_trial_complete(trial_id, result=outcome)
        completed += 1


def trained_numbers(handed_out: list[dict[str, Any]]) -> list[int]:
    return sorted({config[CONFIG_NUMBER] for config in handed_out})


def check_no_configuration_trained_twice(
    spec: StudySpec, study: optuna.Study, trained: list[int]
) -> None:
    trials = {t.number: t for t in study.get_trials()}
    keys = [configuration_key(spec, trials[n].params) for n in trained]
    assert len(set(keys)) == len(keys)
    for trial in trials.values():
        assert trial.state.is_finished(), trial
        earlier = trial.user_attrs.get(DUPLICATE_ATTR)
        trained_or_lost = trial.number in trained or LOST_ATTR in trial.user_attrs
        assert (earlier is None) == trained_or_lost
        if earlier is not None:  # told what its configuration's trained trial was told
            assert earlier in trained
            assert configuration_key(spec, trial.params) == keys[trained.index(earlier)]
            assert (trial.state, trial.values) == (trials[earlier].state, trials[earlier].values)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_no_configuration_trains_twice_and_the_study_ends_on_budget(sampler: str) -> None:
    n_trials = 4 if sampler == "grid" else 12  # a grid study asks at most its size
    spec = small_spec(sampler, n_trials)
    searcher = new_searcher(spec)
    assert searcher.remaining_configurations() == n_trials
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # samplers' notes on their first random trials
        handed_out = run_like_tune(searcher)

    trained = trained_numbers(handed_out)
    assert len(handed_out) == len(trained) * SEEDS  # every configuration ran as its seeds
    assert 1 <= len(trained) <= 4
    study = searcher.optuna_study
    assert len(study.get_trials()) == n_trials  # each repeat spent one ask of the budget
    check_no_configuration_trained_twice(spec, study, trained)
    assert searcher.remaining_configurations() == 0
    if sampler != "grid":  # twelve asks over four configurations must repeat some
        assert len(trained) < n_trials


def test_a_completed_configuration_is_told_the_mean_over_its_seeds() -> None:
    spec = small_spec("random")
    searcher = new_searcher(spec)
    handed_out = run_like_tune(searcher)
    study = searcher.optuna_study
    for number in trained_numbers(handed_out):
        seeds = [score(c)["val_acc"] for c in handed_out if c[CONFIG_NUMBER] == number]
        assert study.trials[number].value == pytest.approx(sum(seeds) / SEEDS)
    duplicates = [t for t in study.trials if DUPLICATE_ATTR in t.user_attrs]
    assert duplicates and all(t.state == optuna.trial.TrialState.COMPLETE for t in duplicates)


def test_repeats_of_failed_and_pruned_configurations_are_told_the_same() -> None:
    spec = small_spec("random")

    def result(config: dict[str, Any]) -> dict[str, Any]:
        if config["batch_size"] == 64:
            return {EPOCH: 0, TRIAL_ERROR: "Traceback: the model does not fit"}
        if config["batch_size"] == 32 and config["lr"] == 0.001:
            return {**score(config), EPOCH: 1}  # a scheduler stopped it after one epoch
        return score(config)

    searcher = new_searcher(spec)
    handed_out = run_like_tune(searcher, result)
    study = searcher.optuna_study
    check_no_configuration_trained_twice(spec, study, trained_numbers(handed_out))
    states = {t.state for t in study.trials if DUPLICATE_ATTR in t.user_attrs}
    assert {optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED} <= states
    for trial in study.trials:  # a pruned repeat carries its original's curve and value
        if trial.state == optuna.trial.TrialState.PRUNED:
            original = study.trials[trial.user_attrs.get(DUPLICATE_ATTR, trial.number)]
            assert trial.intermediate_values == original.intermediate_values
            assert trial.value == original.value is not None


def test_a_resumed_study_counts_repeats_and_reruns_only_lost_configurations(
    tmp_path: Path,
) -> None:
    spec = small_spec("tpe")
    url = f"sqlite:///{tmp_path / 'optuna.sqlite'}"
    first = new_searcher(spec, url)
    before = run_like_tune(first, stop_after=3)  # the driver dies with trials running
    study = first.optuna_study
    running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    done = [t for t in study.trials if t.state.is_finished()]
    assert running and done

    second = new_searcher(spec, url)
    assert second.recover_lost_trials() == len(running)
    assert second.remaining_configurations() == spec.search.n_trials - len(done)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        after = run_like_tune(second)

    study = second.optuna_study
    lost = {t.number for t in study.trials if t.user_attrs.get(LOST_ATTR)}
    assert lost == {t.number for t in running}
    counted = [t for t in study.trials if t.number not in lost]
    assert len(counted) == spec.search.n_trials and all(t.state.is_finished() for t in counted)
    ran_to_the_end = [n for n in trained_numbers(before) + trained_numbers(after) if n not in lost]
    check_no_configuration_trained_twice(spec, study, ran_to_the_end)
    assert second.remaining_configurations() == 0


def test_a_resumed_seeded_sampler_does_not_replay_what_already_ran(tmp_path: Path) -> None:
    # continuous values never repeat by chance: any repeat here would be a replay
    spec = make_spec(search={"sampler": "random", "n_trials": 8, "seed": 1}, seeds=1)
    url = f"sqlite:///{tmp_path / 'optuna.sqlite'}"
    run_like_tune(new_searcher(spec, url), stop_after=3)

    resumed = new_searcher(spec, url)
    resumed.recover_lost_trials()
    run_like_tune(resumed)
    trials = resumed.optuna_study.trials
    assert len([t for t in trials if LOST_ATTR not in t.user_attrs]) == 8
    assert not [t.number for t in trials if DUPLICATE_ATTR in t.user_attrs]
