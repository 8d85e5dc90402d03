"""A small real comparison: pWD against AdamW-style decoupled decay and no decay, on one dataset.

    python -m workers.compare [--dataset digits] [--epochs 30]

Trains the same MLP (same seed) once per regularizer and prints accuracy, sparsity and weight norm
side by side: the first thing to look at before sweeping.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from studies.trial_config import TrialConfig
from workers.train import train

ARMS = (
    ("none", {"family": "none"}),
    ("decoupled (AdamW) λ=1e-2", {"family": "decoupled", "lam": 1e-2}),
    ("l2 (coupled) λ=1e-4", {"family": "l2", "lam": 1e-4}),
    ("pwd p=0.8 λ=2e-3", {"family": "pwd", "lam": 2e-3, "p": 0.8}),
    (
        "pwd p=0.8 λ=2e-3 early(0.5)",
        {"family": "pwd", "lam": 2e-3, "p": 0.8, "schedule": "early", "until": 0.5},
    ),
)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m workers.compare`."""
    parser = argparse.ArgumentParser(prog="python -m workers.compare", description=__doc__)
    parser.add_argument("--dataset", default="digits", choices=("digits", "mnist1d"))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--data-dir", type=Path, default=Path(".decaylab/data"))
    args = parser.parse_args(argv)
    base = {
        "dataset": args.dataset,
        "model": "mlp",
        "model_options": {"width": 256, "depth": 2},
        "epochs": args.epochs,
        "batch_size": 64,
        "lr": 1e-3,
        "lr_schedule": "cosine",
    }
    print(f"{args.dataset}, mlp 256×2, Adam lr 1e-3 cosine, {args.epochs} epochs, seed 0\n")
    print(
        f"{'regularizer':<30} {'test_acc':>8} {'val_acc':>8} {'sparsity':>9} "
        f"{'sparsity@1e-3':>13} {'weight_norm':>11} {'time_s':>7}"
    )
    for label, arm in ARMS:
        started = time.perf_counter()
        result = train(TrialConfig.model_validate({**base, **arm}), data_dir=args.data_dir)
        m = result.final_metrics
        print(
            f"{label:<30} {m.get('test_acc', float('nan')):>8.4f} {m['val_acc']:>8.4f} "
            f"{m['sparsity']:>9.4f} {m['sparsity@1e-03']:>13.4f} {m['weight_norm']:>11.2f} "
            f"{time.perf_counter() - started:>7.1f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
