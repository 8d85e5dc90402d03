"""Time per optimizer step on CPU: our pwd, decoupled and l2 over Adam against torch's AdamW.

Cases: ResNet-18's parameter shapes (~11M parameters) and an MLP 784-1024-1024-10, with random
gradients and no forward pass. Baselines measured in the same run: torch.optim.AdamW with
foreach=True (the target: pwd at most 1.3× its time), AdamW with fused=True (the bar to reach
next) and a straightforward per-tensor pWD (clone every weight, loop over tensors).
Contenders take turns step by step, so load from other processes hits them alike; the table
shows the median of many steps after a warm-up. The last line is JSON (issue 2 §6), each ratio
the larger of the two cases.

Run: .venv/bin/python bench/optimizer_step.py [--threads 1] [--steps 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
import torchvision
from torch import nn

from workers.optim import is_decayed, make_optimizer

LR, LAM, P = 1e-3, 1e-2, 0.8
Named = list[tuple[str, nn.Parameter]]


def resnet18_params() -> Named:
    return list(torchvision.models.resnet18(num_classes=10).named_parameters())


def mlp_params() -> Named:
    mlp = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU())
    mlp.append(nn.Linear(1024, 10))
    return list(mlp.named_parameters())


class NaivePWD:
    """pWD written the obvious way: clone every weight, Adam step, then a loop over tensors."""

    def __init__(self, params: list[nn.Parameter]) -> None:
        self.params = params
        self.base = torch.optim.Adam(params, lr=LR, foreach=False)

    @torch.no_grad()
    def step(self) -> None:
        old = [param.detach().clone() for param in self.params]
        self.base.step()
        for param, w in zip(self.params, old, strict=True):
            if is_decayed(param):
                param.div_(1 + P * LR * LAM * w.abs().pow(P - 2))


def adamw(named: Named, **path: bool) -> torch.optim.Optimizer:
    decayed = [param for _, param in named if is_decayed(param)]
    others = [param for _, param in named if not is_decayed(param)]
    groups = [{"params": decayed, "weight_decay": LAM}, {"params": others, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=LR, **path)


def ours(family: str, p: float = P, **path: bool | None) -> Callable[[Named], object]:
    return lambda named: make_optimizer(named, family=family, lr=LR, lam=LAM, p=p, **path)


CONTENDERS: dict[str, Callable[[Named], object]] = {
    "adamw_foreach": lambda named: adamw(named, foreach=True),
    "adamw_fused": lambda named: adamw(named, fused=True),
    "naive_pwd": lambda named: NaivePWD([param for _, param in named]),
    "pwd": ours("pwd"),
    "pwd (foreach Adam base)": ours("pwd", fused=False),
    "pwd p=1 (|w|^-1 is cheap)": ours("pwd", p=1.0),
    "decoupled": ours("decoupled"),
    "l2": ours("l2"),
}


def fresh_copy(named: Named, grads: list[torch.Tensor]) -> Named:
    copies = [(name, nn.Parameter(param.detach().clone())) for name, param in named]
    for (_, param), grad in zip(copies, grads, strict=True):
        param.grad = grad  # shared and never written by any contender
    return copies


def time_case(named: Named, steps: int, warmup: int) -> dict[str, float]:
    """Median seconds per step of every contender, stepping them in turn."""
    grads = [torch.randn_like(param) * 1e-2 for _, param in named]
    optimizers = {name: make(fresh_copy(named, grads)) for name, make in CONTENDERS.items()}
    times: dict[str, list[float]] = {name: [] for name in optimizers}
    for round_ in range(warmup + steps):
        for name, optimizer in optimizers.items():
            start = time.perf_counter()
            optimizer.step()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(samples) for name, samples in times.items()}


def print_table(case: str, n_params: int, medians: dict[str, float]) -> None:
    print(f"\n{case}: {n_params / 1e6:.2f}M parameters")
    print(f"{'optimizer':26s} {'ms/step':>9s} {'×AdamW foreach':>15s} {'×AdamW fused':>13s}")
    for name, seconds in medians.items():
        foreach = seconds / medians["adamw_foreach"]
        fused = seconds / medians["adamw_fused"]
        print(f"{name:26s} {seconds * 1e3:9.2f} {foreach:15.2f} {fused:13.2f}")
    print(f"{'pwd ×naive_pwd':26s} {medians['pwd'] / medians['naive_pwd']:25.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, CPU ({torch.backends.cpu.get_cpu_capability()}), "
        f"{torch.get_num_threads()} thread(s), median of {args.steps} steps after {args.warmup}; "
        f"pwd p={P}, λ={LAM}, lr={LR}"
    )
    ratios: dict[str, list[float]] = {"adamw_foreach": [], "naive_pwd": [], "adamw_fused": []}
    for case, build in (("resnet18", resnet18_params), ("mlp 784-1024-1024-10", mlp_params)):
        named = build()
        medians = time_case(named, args.steps, args.warmup)
        print_table(case, sum(param.numel() for _, param in named), medians)
        for baseline, values in ratios.items():
            values.append(medians["pwd"] / medians[baseline])
    summary = {
        "bench": "optimizer_step",
        "pwd_vs_adamw": round(max(ratios["adamw_foreach"]), 3),
        "pwd_vs_naive_pwd": round(max(ratios["naive_pwd"]), 3),
        "pwd_vs_adamw_fused": round(max(ratios["adamw_fused"]), 3),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
