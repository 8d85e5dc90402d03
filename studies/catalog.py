"""The names a StudySpec is validated against, kept here so `studies` never imports torch.

`workers` owns the implementations (datasets, models, optimizers, metrics); a test checks that
these tuples equal the registries there, so a name cannot be added on one side only.
"""

from __future__ import annotations

from studies.schedules import DECAY_SCHEDULES, LR_SCHEDULES

DATASET_NAMES = ("mnist1d", "digits", "mnist", "fashion_mnist", "cifar10", "cifar100")
MODEL_NAMES = ("mlp", "cnn1d", "cnn", "resnet20", "resnet18")

FAMILIES = ("none", "l2", "decoupled", "pwd", "lp_coupled")
BASE_OPTIMIZERS = ("sgd", "adam")
DECAY_SCALES = ("lr", "schedule")
# the families whose step uses the norm exponent p (docs/science.md §1)
FAMILIES_WITH_P = ("pwd", "lp_coupled")
# the families on which λ has any effect
FAMILIES_WITH_LAMBDA = ("l2", "decoupled", "pwd", "lp_coupled")

# The one table of names that differ between the spec/API (`lambda`, `from`, Python keywords)
# and the columns and trial-config keys (`lam`, `start`); every other parameter has one name.
COLUMN_NAMES = {"lambda": "lam", "from": "start"}
API_NAMES = {column: name for name, column in COLUMN_NAMES.items()}


def column_name(name: str) -> str:
    """The column (and trial-config key) of a spec/API parameter name."""
    return COLUMN_NAMES.get(name, name)


def api_name(column: str) -> str:
    """The spec/API name of a column (or trial-config key)."""
    return API_NAMES.get(column, column)


SAMPLER_NAMES = ("tpe", "random", "grid", "cmaes", "qmc", "nsga2")
SCHEDULER_NAMES = ("asha", "median", "none")

# where sparsity is measured (workers.metrics reads them from here)
SPARSITY_THRESHOLDS = (1e-10, 1e-8, 1e-6, 1e-4, 1e-3)


def threshold_metric_name(tau: float) -> str:
    """The metric name of the sparsity at `tau`, e.g. `sparsity@1e-08`."""
    return f"sparsity@{tau:.0e}"


# what a finished trial reports, with the direction that is "better" (None: no natural one)
FINAL_METRICS: dict[str, str | None] = {
    "val_acc": "max",
    "val_loss": "min",
    "train_acc": "max",
    "train_loss": "min",
    "test_acc": "max",
    "pruned_val_acc": "max",
    "sparsity": "max",
    **{threshold_metric_name(tau): "max" for tau in SPARSITY_THRESHOLDS},
    "zero_frac": "max",
    "weight_norm": "min",
    "angular_update": None,
}
OBJECTIVE_METRICS = tuple(FINAL_METRICS)

__all__ = [
    "API_NAMES",
    "BASE_OPTIMIZERS",
    "COLUMN_NAMES",
    "DATASET_NAMES",
    "DECAY_SCALES",
    "DECAY_SCHEDULES",
    "FAMILIES",
    "FAMILIES_WITH_LAMBDA",
    "FAMILIES_WITH_P",
    "FINAL_METRICS",
    "LR_SCHEDULES",
    "MODEL_NAMES",
    "OBJECTIVE_METRICS",
    "SAMPLER_NAMES",
    "SCHEDULER_NAMES",
    "SPARSITY_THRESHOLDS",
    "api_name",
    "column_name",
    "threshold_metric_name",
]
