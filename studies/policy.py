"""What a service lets one study ask for: budgets, resources and model size, checked at submit.

The spec itself validates shape only; these limits are the operator's (`DECAYLAB_MAX_*`) and the
cluster's, so they apply once, when a study is submitted, and never to a stored spec that a
driver loads (its service may have had other limits, and it accepted the study).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from studies.errors import InvalidSpec
from studies.model_catalog import DEFAULT_MAX_PARAMETERS, model_option_problems
from studies.spec import StudySpec
from studies.spec_checks import Problem

# a Ray node's resources, e.g. {"CPU": 16.0, "GPU": 2.0}
NodeResources = Mapping[str, float]


@dataclass(frozen=True)
class Limits:
    """Budgets a single study may ask for; the service passes its configured ones.

    Args:
        max_trial_cpus, max_trial_gpus: per trial, when the cluster's nodes are not known.
        max_parameters: trainable parameters of one trial's model, as estimated at submit.
    """

    max_trials: int = 1000  # training runs: n_trials × seeds
    max_concurrent: int = 64
    max_epochs: int = 1000
    max_seeds: int = 20
    max_trial_cpus: float = 256
    max_trial_gpus: float = 16
    max_parameters: int = DEFAULT_MAX_PARAMETERS


def enforce(spec: StudySpec, limits: Limits, nodes: Sequence[NodeResources] | None = None) -> None:
    """InvalidSpec (a 422 naming each field) when `spec` asks for more than is allowed.

    Args:
        nodes: the cluster's nodes with their total resources; None: not known, so the
            configured per-trial limits apply instead.
    """
    task = spec.task
    size = model_option_problems(
        task.model, task.model_options, task.dataset, max_parameters=limits.max_parameters
    )
    problems = [*_budget(spec, limits), *_resources(spec, limits, nodes), *size]
    if problems:
        raise InvalidSpec.from_problems(
            "the study asks for more than this service allows",
            [(loc, message) for loc, message, _ in problems],
        )


def _budget(spec: StudySpec, limits: Limits) -> Iterator[Problem]:
    search = spec.search
    runs = search.n_trials * spec.seeds
    if spec.seeds > limits.max_seeds:
        message = f"seeds {spec.seeds} is over the limit of {limits.max_seeds} replicates"
        yield ("seeds",), message, spec.seeds
    if runs > limits.max_trials:
        message = (
            f"n_trials × seeds = {runs} training runs is over the limit of "
            f"{limits.max_trials} per study"
        )
        yield ("search", "n_trials"), message, search.n_trials
    if search.max_concurrent > limits.max_concurrent:
        message = (
            f"max_concurrent {search.max_concurrent} is over the limit of {limits.max_concurrent}"
        )
        yield ("search", "max_concurrent"), message, search.max_concurrent
    if spec.task.epochs > limits.max_epochs:
        message = f"epochs {spec.task.epochs} is over the limit of {limits.max_epochs}"
        yield ("task", "epochs"), message, spec.task.epochs


def _resources(
    spec: StudySpec, limits: Limits, nodes: Sequence[NodeResources] | None
) -> Iterator[Problem]:
    """A trial runs on one node: some node must hold its CPUs and GPUs together."""
    cpu, gpu = spec.resources.cpu, spec.resources.gpu
    if nodes is None:
        if cpu > limits.max_trial_cpus:
            yield (
                ("resources", "cpu"),
                f"cpu {cpu:g} is over the limit of {limits.max_trial_cpus:g} per trial",
                cpu,
            )
        if gpu > limits.max_trial_gpus:
            yield (
                ("resources", "gpu"),
                f"gpu {gpu:g} is over the limit of {limits.max_trial_gpus:g} per trial",
                gpu,
            )
        return
    if any(n.get("CPU", 0) >= cpu and n.get("GPU", 0) >= gpu for n in nodes):
        return
    largest_cpu = max((n.get("CPU", 0) for n in nodes), default=0)
    largest_gpu = max((n.get("GPU", 0) for n in nodes), default=0)
    where = f"the cluster's largest node has {largest_cpu:g} CPUs and {largest_gpu:g} GPUs"
    if gpu > largest_gpu:
        yield ("resources", "gpu"), f"no node can run a trial with gpu {gpu:g}: {where}", gpu
    else:
        message = f"no node can run a trial with cpu {cpu:g} and gpu {gpu:g}: {where}"
        yield ("resources", "cpu"), message, cpu
