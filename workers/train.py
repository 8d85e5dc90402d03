"""One trial: train a model under one regularizer configuration and measure it every epoch.

Framework-free: `train(config, report)` knows nothing of Ray or the service;
`report(epoch, metrics)` is called once per epoch and is where a caller hooks in Tune or a table.
"""

from __future__ import annotations

import math
import platform
import subprocess
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from studies.states import TrialState
from studies.trial_config import TrialConfig
from workers.data import DatasetSplits, augment_cifar, iterate_batches, load_dataset
from workers.metrics import (
    AngularTracker,
    layer_weight_norms,
    pruned,
    weight_histogram,
    weight_stats,
)
from workers.models import build_model
from workers.optim import DecayOptimizer, decayed_parameters, make_optimizer

Report = Callable[[int, dict[str, float]], None]
AUGMENTABLE = ("cifar10", "cifar100")
EVAL_BATCH = 1024


@dataclass
class TrainResult:
    """What a finished trial hands back: its status, last metrics and what produced them."""

    status: str  # "completed" or "diverged"
    epochs_done: int
    final_metrics: dict[str, float]
    best_val_acc: float
    decayed_param_count: int
    non_decayed_param_count: int
    seed: int
    config: dict[str, Any]
    provenance: dict[str, str]
    diverged_epoch: int | None = None
    weight_histogram: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@lru_cache(maxsize=1)
def provenance() -> dict[str, str]:
    """Library versions and the git revision of the code that trained (when known)."""
    info = {"python": platform.python_version(), "torch": torch.__version__}
    for package in ("decaylab", "numpy", "ray", "optuna"):
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            continue
    try:
        source = Path(__file__).resolve().parent.parent
        rev = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        info["git_revision"] = rev.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, *, amp: bool = False) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on (x, y)."""
    model.eval()
    loss_sum = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    for xb, yb in iterate_batches(x, y, EVAL_BATCH, shuffle=False):
        with _autocast(x.device, amp):
            logits = model(xb)
        loss_sum += F.cross_entropy(logits.float(), yb, reduction="sum")
        correct += (logits.argmax(1) == yb).sum()
    n = max(len(y), 1)
    return loss_sum.item() / n, correct.item() / n


def _autocast(device: torch.device, amp: bool) -> AbstractContextManager[object]:
    if not (amp and device.type == "cuda"):
        return nullcontext()  # a disabled torch.autocast still costs µs per step
    return torch.autocast(device.type, dtype=torch.bfloat16)


class _Trial:
    """The state of one training run; `epoch()` trains and measures one epoch."""

    def __init__(self, config: TrialConfig, data: DatasetSplits) -> None:
        self.config = config
        self.device = torch.device(config.device)
        self.data = data.to(self.device)
        torch.manual_seed(config.seed)
        self.model = build_model(
            config.model,
            input_shape=data.input_shape,
            num_classes=data.num_classes,
            **config.model_options,
        ).to(self.device)
        self.optimizer: DecayOptimizer = make_optimizer(
            self.model,
            optimizer=config.optimizer,
            family=config.family,
            lr=config.lr,
            lam=config.lam,
            p=config.p,
            decay_scale=config.decay_scale,
            momentum=config.momentum,
            nesterov=config.nesterov,
            betas=config.betas,
            decay_all_params=config.decay_all_params,
            foreach=config.foreach,
        )
        self.decayed = decayed_parameters(self.model, config.decay_all_params)
        self.tracker = AngularTracker(self.decayed)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.steps_per_epoch = math.ceil(len(data.train[1]) / config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.lr_schedule = config.lr_schedule_obj()
        self.decay_schedule = config.decay_schedule()
        self.step = 0

    def _set_schedules(self) -> float:
        lr = self.config.lr * self.lr_schedule.multiplier(self.step, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.set_decay_multiplier(
            self.decay_schedule.multiplier(self.step, self.total_steps)
        )
        return lr

    def train_epoch(self) -> tuple[float, float, float]:
        """One pass over the training split; returns (train_loss, train_acc, last lr)."""
        model, config, (x, y) = self.model, self.config, self.data.train
        model.train()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        augment = config.augment and config.dataset in AUGMENTABLE
        lr = config.lr
        for xb, yb in iterate_batches(x, y, config.batch_size, generator=self.generator):
            if augment:
                xb = augment_cifar(xb, self.generator)
            lr = self._set_schedules()
            with _autocast(self.device, config.amp):
                logits = model(xb)
                loss = F.cross_entropy(logits.float(), yb)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.step += 1
            loss_sum.add_(loss.detach(), alpha=len(yb))
            correct.add_((logits.argmax(1) == yb).sum())
        n = len(y)
        return loss_sum.item() / n, correct.item() / n, lr

    def epoch(self) -> dict[str, float]:
        """Train one epoch and return every per-epoch metric of docs/science.md §3."""
        if self.config.full_metrics:
            self.tracker.snapshot()
        train_loss, train_acc, lr = self.train_epoch()
        val_loss, val_acc = evaluate(self.model, *self.data.val, amp=self.config.amp)
        metrics = {
            "train_loss": train_loss,
            "train_acc": train_acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr": lr,
            "wd": self.optimizer.effective_decay,
        }
        if self.config.full_metrics:
            metrics.update(weight_stats(self.decayed))
            metrics.update(
                {f"weight_norm/{k}": v for k, v in layer_weight_norms(self.decayed).items()}
            )
            metrics["angular_update"] = self.tracker.measure(self.steps_per_epoch)
            with pruned(self.decayed):
                metrics["pruned_val_acc"] = evaluate(self.model, *self.data.val)[1]
        return metrics


def _finite(metrics: dict[str, float]) -> bool:
    keys = ("train_loss", "val_loss", "weight_norm")
    return all(math.isfinite(metrics[k]) for k in keys if k in metrics)


def train(
    config: TrialConfig,
    report: Report | None = None,
    data: DatasetSplits | None = None,
    *,
    data_dir: Path = Path(".decaylab/data"),
    on_start: Callable[[dict[str, Any]], None] | None = None,
    on_end: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train one configuration, calling `report(epoch, metrics)` after every epoch.

    The last epoch's metrics include `test_acc`, so a caller that is stopped right after a report
    (Tune's schedulers do that) still has every result. A loss or weight that turns NaN/inf ends
    the run early with status "diverged" and a `diverged` metric.

    Args:
        data: the dataset's tensors; loaded from `data_dir` when not given.
        on_start: called once with the parameter counts and provenance, before the first epoch.
        on_end: called once with the final `weight_histogram` (workers.metrics) of a run that
            trained all its epochs, just before the last epoch's report.
    """
    torch.set_num_threads(config.threads)
    if data is None:
        data = load_dataset(
            config.dataset,
            data_dir=data_dir,
            seed=config.data_seed,
            val_fraction=config.val_fraction,
            download=config.download,
        )
    trial = _Trial(config, data)
    info = {
        "decayed_param_count": trial.optimizer.decayed_param_count,
        "non_decayed_param_count": trial.optimizer.non_decayed_param_count,
        "provenance": provenance(),
    }
    if on_start is not None:
        on_start(info)
    metrics: dict[str, float] = {}
    histogram: dict[str, Any] | None = None
    best_val_acc, status, diverged_epoch, epoch = -math.inf, TrialState.COMPLETED, None, 0
    for epoch in range(1, config.epochs + 1):
        metrics = trial.epoch()
        if not _finite(metrics):
            status, diverged_epoch = TrialState.DIVERGED, epoch
            metrics["diverged"] = 1.0
        elif epoch == config.epochs:
            metrics["test_acc"] = evaluate(trial.model, *trial.data.test, amp=config.amp)[1]
            histogram = weight_histogram(trial.decayed)
            if on_end is not None:
                on_end({"weight_histogram": histogram})
        best_val_acc = max(best_val_acc, metrics["val_acc"])
        if report is not None:
            report(epoch, metrics)
        if status == TrialState.DIVERGED:
            break
    return TrainResult(
        status=status,
        epochs_done=epoch,
        final_metrics=metrics,
        best_val_acc=best_val_acc,
        seed=config.seed,
        config=config.to_record(),
        diverged_epoch=diverged_epoch,
        weight_histogram=histogram,
        **info,
    )
