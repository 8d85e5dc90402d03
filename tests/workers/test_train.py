"""The training loop trains for real and reports what docs/science.md §3 lists, every epoch.

Every run uses one thread (threads=1) and the MNIST-1D files generated once per session.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from formats import WRITERS

from studies.trial_config import TrialConfig
from workers.data import DATASETS, DatasetSplits, load_dataset
from workers.metrics import SPARSITY_THRESHOLDS, threshold_metric_name
from workers.train import TrainResult, train

# Per-epoch metric names a user reads in the database and the API (docs/science.md §3), by hand.
EPOCH_METRICS = {
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "lr",
    "wd",
    "weight_norm",
    "sparsity",
    "sparsity@1e-10",
    "sparsity@1e-08",
    "sparsity@1e-06",
    "sparsity@1e-04",
    "sparsity@1e-03",
    "zero_frac",
    "pruned_val_acc",
    "angular_update",
}
FRACTIONS = ("train_acc", "val_acc", "pruned_val_acc", "sparsity", "zero_frac", "test_acc")

Reports = list[tuple[int, dict[str, float]]]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory where MNIST-1D is generated once for the whole session."""
    root = tmp_path_factory.mktemp("data")
    load_dataset("mnist1d", data_dir=root)
    return root


@pytest.fixture(scope="session")
def mnist1d(data_dir: Path) -> DatasetSplits:
    return load_dataset("mnist1d", data_dir=data_dir)


def run(data: DatasetSplits | None = None, data_dir: Path | None = None, **values: Any):
    """Train one config (threads=1) and return the result with every report, in order."""
    reports: Reports = []
    config = TrialConfig.model_validate({"threads": 1, **values})
    kwargs = {"data_dir": data_dir} if data_dir is not None else {}
    result = train(config, lambda epoch, m: reports.append((epoch, dict(m))), data, **kwargs)
    return result, reports


def small_mlp(**values: Any) -> dict[str, Any]:
    """A quick MNIST-1D MLP config, overridable."""
    base = {"model": "mlp", "model_options": {"width": 64}, "batch_size": 128, "lr": 3e-3}
    return {**base, **values}


# ---------------------------------------------------------------------------------------------
# Reference accuracies on MNIST-1D (the dataset's authors: CNN 94%, MLP 68%)

ACCURACY_CASES = {
    "mlp": (
        {"model": "mlp", "model_options": {"width": 256}, "lr": 3e-3, "batch_size": 128},
        30,
        0.60,
    ),
    "cnn1d": ({"model": "cnn1d", "lr": 1e-2, "batch_size": 100}, 50, 0.85),
}


@pytest.mark.parametrize("model", sorted(ACCURACY_CASES))
def test_mnist1d_reaches_reference_test_accuracy(mnist1d: DatasetSplits, model: str) -> None:
    options, epochs, floor = ACCURACY_CASES[model]
    result, reports = run(mnist1d, **options, epochs=epochs, family="none")

    assert result.status == "completed" and result.epochs_done == epochs
    assert result.final_metrics["test_acc"] >= floor
    assert [epoch for epoch, _ in reports] == list(range(1, epochs + 1))
    assert result.best_val_acc == max(m["val_acc"] for _, m in reports)


# ---------------------------------------------------------------------------------------------
# Every dataset × a compatible model: one epoch, every metric

# dataset: (model, model_options, extra config, number of decayed tensors)
DATASET_CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any], int]] = {
    "mnist1d": ("cnn1d", {}, {}, 4),
    "digits": ("mlp", {"width": 32, "norm": "layernorm"}, {}, 3),
    "mnist": ("cnn", {"batchnorm": True, "hidden": 16}, {}, 4),
    "fashion_mnist": ("mlp", {"width": 16, "depth": 1, "norm": "batchnorm"}, {}, 2),
    "cifar10": ("resnet20", {"width": 4}, {"augment": True}, 20),
    "cifar100": ("resnet18", {}, {"optimizer": "sgd"}, 21),
}


def test_every_registered_dataset_has_a_case() -> None:
    assert set(DATASET_CASES) == set(DATASETS)


@pytest.mark.parametrize("dataset", sorted(DATASET_CASES))
def test_every_dataset_runs_one_epoch_with_every_metric(
    dataset: str, data_dir: Path, tmp_path: Path
) -> None:
    model, options, extra, decayed_tensors = DATASET_CASES[dataset]
    if dataset in WRITERS:  # torchvision datasets: tiny files in their real on-disk format
        WRITERS[dataset](tmp_path)
        data_dir = tmp_path
    result, reports = run(
        data_dir=data_dir,
        dataset=dataset,
        model=model,
        model_options=options,
        epochs=1,
        batch_size=16 if dataset in WRITERS else 128,
        lr=1e-3,
        lr_schedule="constant",
        family="pwd",
        lam=1e-2,
        p=0.8,
        **extra,
    )

    assert result.status == "completed" and result.diverged_epoch is None
    assert len(reports) == 1 and reports[0][0] == 1
    metrics = reports[0][1]
    layers = {name for name in metrics if name.startswith("weight_norm/")}
    assert set(metrics) == EPOCH_METRICS | layers | {"test_acc"}
    assert {threshold_metric_name(tau) for tau in SPARSITY_THRESHOLDS} <= set(metrics)
    assert len(layers) == decayed_tensors
    assert all(math.isfinite(value) for value in metrics.values())
    assert all(0.0 <= metrics[name] <= 1.0 for name in FRACTIONS)
    assert metrics["lr"] == 1e-3 and metrics["wd"] == 1e-2
    # the global norm is the root of the sum of the squared layer norms
    assert metrics["weight_norm"] == pytest.approx(math.hypot(*(metrics[k] for k in layers)))
    assert metrics["angular_update"] > 0.0
    assert result.final_metrics == metrics


def test_result_carries_counts_seed_config_and_versions(data_dir: Path) -> None:
    result, _ = run(data_dir=data_dir, dataset="digits", model="mlp", epochs=1, seed=7)

    # digits MLP 64-256-256-10: weights 64·256 + 256·256 + 256·10, biases 256 + 256 + 10
    assert result.decayed_param_count == 84_480
    assert result.non_decayed_param_count == 522
    assert result.seed == 7 and result.config["seed"] == 7
    assert result.config["dataset"] == "digits" and result.config["threads"] == 1
    assert {"python", "torch", "numpy"} <= set(result.provenance)
    assert TrialConfig.model_validate(result.to_dict()["config"]).seed == 7


def test_a_finished_run_hands_its_final_weight_histogram_to_on_end(
    mnist1d: DatasetSplits,
) -> None:
    ended: list[dict[str, Any]] = []
    config = TrialConfig.model_validate({**small_mlp(epochs=3, family="pwd", lam=5e-2, p=0.6)})
    result = train(config, None, mnist1d, on_end=ended.append)
    histogram = result.weight_histogram
    assert ended == [{"weight_histogram": histogram}]
    assert histogram is not None and histogram["total"] == result.decayed_param_count
    assert sum(histogram["counts"]) + histogram["zeros"] == histogram["total"]
    # the decades below 1e-6 and the exact zeros are the weights `sparsity` counts
    lower_edges = histogram["edges"][:-1]
    below = sum(c for e, c in zip(lower_edges, histogram["counts"], strict=True) if e < -6)
    sparse = (below + histogram["zeros"]) / histogram["total"]
    assert sparse == pytest.approx(result.final_metrics["sparsity"], abs=1e-12)
    assert sparse > 0.05  # pWD at p=0.6 has made some weights tiny: the check is not vacuous


# ---------------------------------------------------------------------------------------------
# Determinism and divergence


def test_same_config_and_seed_give_identical_metrics(mnist1d: DatasetSplits) -> None:
    config = small_mlp(epochs=2, family="pwd", lam=1e-2, p=0.8)
    first, first_reports = run(mnist1d, **config, seed=3)
    second, second_reports = run(mnist1d, **config, seed=3)
    _, other_reports = run(mnist1d, **config, seed=4)

    assert first_reports == second_reports
    assert first.final_metrics == second.final_metrics
    assert other_reports[-1][1]["train_loss"] != first_reports[-1][1]["train_loss"]
    assert other_reports[-1][1]["weight_norm"] != first_reports[-1][1]["weight_norm"]


@pytest.mark.parametrize("family", ["none", "l2", "decoupled", "pwd"])
def test_absurd_learning_rate_ends_as_diverged(mnist1d: DatasetSplits, family: str) -> None:
    # λ so small that lr·λ = 1e-3: a strong pWD factor would hold the weights finite (huge but
    # finite losses are not a divergence), which is not what this test is about
    config = small_mlp(epochs=5, optimizer="sgd", lr=1e6, family=family, lam=1e-9, p=0.8)
    result, reports = run(mnist1d, **config)

    assert result.status == "diverged"
    assert result.diverged_epoch is not None and result.diverged_epoch < 5
    assert result.epochs_done == result.diverged_epoch
    # the run stops at the epoch that diverged, and that epoch's report says so
    assert [epoch for epoch, _ in reports] == list(range(1, result.diverged_epoch + 1))
    assert reports[-1][1]["diverged"] == 1.0
    assert all("diverged" not in metrics for _, metrics in reports[:-1])
    assert "test_acc" not in result.final_metrics
    assert result.final_metrics["diverged"] == 1.0


# ---------------------------------------------------------------------------------------------
# Decay schedules switch the regularizer per step (4 epochs, switch at half the steps)

LAM = 5e-2
SCHEDULE_WD = {
    "full": ({}, [LAM, LAM, LAM, LAM]),
    "early": ({"until": 0.5}, [LAM, LAM, 0.0, 0.0]),
    "late": ({"start": 0.5}, [0.0, 0.0, LAM, LAM]),
    "none": ({}, [0.0, 0.0, 0.0, 0.0]),
}


@pytest.fixture(scope="module")
def schedule_runs(mnist1d: DatasetSplits) -> dict[str, Reports]:
    """One 4-epoch decoupled run per decay schedule, same seed."""
    runs = {}
    for schedule, (switch, _) in SCHEDULE_WD.items():
        config = small_mlp(epochs=4, family="decoupled", lam=LAM, lr=1e-2, lr_schedule="constant")
        runs[schedule] = run(mnist1d, **config, schedule=schedule, **switch)[1]
    return runs


@pytest.mark.parametrize("schedule", sorted(SCHEDULE_WD))
def test_reported_wd_follows_the_decay_schedule(
    schedule_runs: dict[str, Reports], schedule: str
) -> None:
    assert [m["wd"] for _, m in schedule_runs[schedule]] == SCHEDULE_WD[schedule][1]


def test_early_decay_trains_like_full_until_the_switch_then_stops_shrinking(
    schedule_runs: dict[str, Reports],
) -> None:
    early, full = schedule_runs["early"], schedule_runs["full"]
    assert early[:2] == full[:2]
    early_norms = [m["weight_norm"] for _, m in early[2:]]
    full_norms = [m["weight_norm"] for _, m in full[2:]]
    assert all(e > f for e, f in zip(early_norms, full_norms, strict=True))


def test_late_decay_trains_like_no_decay_until_the_switch(
    schedule_runs: dict[str, Reports],
) -> None:
    late, none = schedule_runs["late"], schedule_runs["none"]
    assert late[:2] == none[:2]
    assert late[3][1]["weight_norm"] < none[3][1]["weight_norm"]


# ---------------------------------------------------------------------------------------------
# docs/science.md §4, claim 1: pWD with p < 1 makes an over-parameterized MLP sparse at no cost

SPARSE_BASE = {
    "model": "mlp",
    "model_options": {"width": 512},
    "optimizer": "adam",
    "lr": 1e-3,
    "lr_schedule": "cosine",
    "batch_size": 128,
    "epochs": 40,
    "lam": 5e-2,
}


@pytest.mark.slow
def test_pwd_below_p1_is_much_sparser_than_decoupled_at_similar_accuracy(
    mnist1d: DatasetSplits,
) -> None:
    pwd: TrainResult = run(mnist1d, **SPARSE_BASE, family="pwd", p=0.8)[0]
    adamw: TrainResult = run(mnist1d, **SPARSE_BASE, family="decoupled")[0]
    sparse, dense = pwd.final_metrics, adamw.final_metrics

    # measured (seed 0): pwd sparsity 0.69 at val_acc 0.6425; decoupled 0.0 at 0.6425
    assert sparse["sparsity"] > 0.5
    assert sparse["sparsity"] > dense["sparsity"] + 0.4
    assert abs(sparse["val_acc"] - dense["val_acc"]) <= 0.05
    assert sparse["test_acc"] >= 0.60
    # the small weights are really removable: zeroing every |w| < 1e-3 costs (almost) nothing
    assert sparse["pruned_val_acc"] >= sparse["val_acc"] - 0.02
