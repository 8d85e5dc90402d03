"""Training samples per second on CPU: our loop against a minimal loop and a DataLoader loop.

Cases: MNIST-1D with the `mlp` (256×2) and the `cnn1d`, Adam, no weight decay (family `none`), so
every contender does the same optimizer work. Contenders, all on the same tensors, one thread:
- ours (metrics): `workers.train.train` with every per-epoch metric (full_metrics=True), which
  also evaluates the validation split every epoch and the test split at the end;
- ours (no metrics): the same with full_metrics=False;
- minimal: a hand-written loop, index slicing on the tensors, torch.optim.Adam (its CPU default,
  the per-tensor loop), no evaluation;
- minimal (fused Adam): the same with Adam(fused=True), the kernel our optimizer's base step uses
  on CPU: it shows how much of a difference to `minimal` is the kernel rather than the loop;
- dataloader: the conventional DataLoader(TensorDataset) loop, otherwise the same as minimal.
`minimal (fused Adam)` is also the bound on what any loop with this model and optimizer can reach:
it does nothing but the steps.
Every contender trains a fresh model for the same number of epochs; samples/s counts training
samples only (epochs × train size / seconds). Seconds are this thread's CPU time by default
(`--clock cpu`: every contender computes on this one thread, and CPU time does not count the time
other processes on a shared machine take from it); `--clock wall` times wall-clock instead.
Contenders take turns round by round, so what load remains hits them alike; the table shows the
median of the rounds after a warm-up round.
The last line is JSON (issue 3 "Benchmark"): each ratio the smaller of the two models.
Target: ours (metrics) ≥ 0.9× minimal and ≥ 1.5× dataloader.

Run: .venv/bin/python bench/train_throughput.py [--epochs 5] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from studies.trial_config import TrialConfig
from workers.data import DatasetSplits, load_dataset
from workers.models import build_model
from workers.train import train

LR, BATCH, SEED = 1e-3, 128, 0
MODELS: dict[str, dict[str, Any]] = {"mlp": {"width": 256, "depth": 2}, "cnn1d": {}}
Contender = Callable[[DatasetSplits, str, int], None]


def ours(full_metrics: bool) -> Contender:
    def run(data: DatasetSplits, model: str, epochs: int) -> None:
        config = TrialConfig(
            dataset="mnist1d",
            model=model,
            model_options=MODELS[model],
            epochs=epochs,
            batch_size=BATCH,
            optimizer="adam",
            lr=LR,
            lr_schedule="constant",
            family="none",
            seed=SEED,
            threads=1,
            full_metrics=full_metrics,
        )
        train(config, data=data)

    return run


def _fresh(
    data: DatasetSplits, model: str, fused: bool = False
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(SEED)
    net = build_model(
        model, input_shape=data.input_shape, num_classes=data.num_classes, **MODELS[model]
    )
    return net, torch.optim.Adam(net.parameters(), lr=LR, fused=fused or None)


def _step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, xb, yb) -> None:
    loss = F.cross_entropy(net(xb), yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def minimal(fused: bool) -> Contender:
    def run(data: DatasetSplits, model: str, epochs: int) -> None:
        """The loop a careful person writes by hand: shuffled index slices of the tensors."""
        net, optimizer = _fresh(data, model, fused)
        x, y = data.train
        generator = torch.Generator().manual_seed(SEED)
        net.train()
        for _ in range(epochs):
            order = torch.randperm(len(y), generator=generator)
            for start in range(0, len(y), BATCH):
                idx = order[start : start + BATCH]
                _step(net, optimizer, x[idx], y[idx])

    return run


def _loader(data: DatasetSplits) -> DataLoader:
    generator = torch.Generator().manual_seed(SEED)
    return DataLoader(TensorDataset(*data.train), batch_size=BATCH, shuffle=True,
                      generator=generator)  # fmt: skip


def dataloader(data: DatasetSplits, model: str, epochs: int) -> None:
    """The conventional loop: DataLoader(TensorDataset) with shuffling, default collation."""
    net, optimizer = _fresh(data, model)
    loader = _loader(data)
    net.train()
    for _ in range(epochs):
        for xb, yb in loader:
            _step(net, optimizer, xb, yb)


CONTENDERS: dict[str, Contender] = {
    "ours (metrics)": ours(full_metrics=True),
    "ours (no metrics)": ours(full_metrics=False),
    "minimal": minimal(fused=False),
    "minimal (fused Adam)": minimal(fused=True),
    "dataloader": dataloader,
}


CLOCKS = {"cpu": time.thread_time, "wall": time.perf_counter}


def time_model(
    data: DatasetSplits, model: str, epochs: int, repeats: int, clock: Callable[[], float]
) -> dict[str, float]:
    """Median training samples per second of every contender, taking turns round by round."""
    seconds: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for round_ in range(repeats + 1):
        for name, contender in CONTENDERS.items():
            start = clock()
            contender(data, model, epochs if round_ else 1)  # round 0: a short warm-up
            if round_:
                seconds[name].append(clock() - start)
    samples = epochs * len(data.train[1])
    return {name: samples / statistics.median(times) for name, times in seconds.items()}


def print_table(model: str, rates: dict[str, float]) -> None:
    print(f"\n{model}: {MODELS[model] or 'default options'}")
    print(f"{'loop':22s} {'samples/s':>10s} {'×minimal':>9s} {'×dataloader':>12s}")
    for name, rate in rates.items():
        print(
            f"{name:22s} {rate:10.0f} {rate / rates['minimal']:9.2f} "
            f"{rate / rates['dataloader']:12.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    parser.add_argument("--data-dir", type=Path, default=Path(".decaylab/data"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("mnist1d", data_dir=args.data_dir)
    print(
        f"torch {torch.__version__}, CPU, 1 thread, MNIST-1D {len(data.train[1])} train samples, "
        f"batch {BATCH}, Adam lr {LR}, {args.epochs} epochs, median of {args.repeats} rounds, "
        f"{args.clock} time"
    )
    vs_minimal, vs_dataloader = [], []
    for model in MODELS:
        rates = time_model(data, model, args.epochs, args.repeats, CLOCKS[args.clock])
        print_table(model, rates)
        vs_minimal.append(rates["ours (metrics)"] / rates["minimal"])
        vs_dataloader.append(rates["ours (metrics)"] / rates["dataloader"])
    summary = {
        "bench": "train_throughput",
        "ours_vs_minimal": round(min(vs_minimal), 3),
        "ours_vs_dataloader": round(min(vs_dataloader), 3),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
