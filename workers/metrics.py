"""Per-epoch measurements that depend only on the model's decayed weights (docs/science.md §3).

Every function takes `named_params`: the (name, tensor) pairs of the *decayed* parameters, as
`workers.optim.decayed_parameters` returns them, so the denominators exclude biases and norm gains.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

# the thresholds (studies.catalog, the one place) are tiny because pWD's decayed weights shrink
# geometrically towards zero without necessarily reaching it
from studies.catalog import SPARSITY_THRESHOLDS, threshold_metric_name

SPARSITY_THRESHOLD = 1e-6
PRUNE_THRESHOLD = 1e-3

NamedParams = Sequence[tuple[str, Tensor]]


def _flat_weights(named_params: NamedParams) -> Tensor:
    """All weights in one flat tensor, in float32 (float64 if any weight is float64)."""
    dtype = torch.float64 if any(p.dtype == torch.float64 for _, p in named_params) else None
    dtype = dtype or torch.float32
    return torch.cat([p.detach().reshape(-1).to(dtype) for _, p in named_params])


def weight_stats(named_params: NamedParams) -> dict[str, float]:
    """Sparsity at every threshold, the fraction of exact zeros and the global L2 norm.

    Returns `sparsity` (|w| < 1e-6), `sparsity@τ` for every τ in SPARSITY_THRESHOLDS, `zero_frac`
    and `weight_norm`. With no decayed weights every value is 0.0.
    """
    names = [threshold_metric_name(tau) for tau in SPARSITY_THRESHOLDS]
    if not named_params or all(p.numel() == 0 for _, p in named_params):
        empty = dict.fromkeys(["sparsity", *names, "zero_frac", "weight_norm"], 0.0)
        return empty
    flat = _flat_weights(named_params).abs()
    # float64 bounds: bucketize compares exactly, so float32(1e-6) = 9.99999997e-7 counts as below
    bounds = torch.tensor(SPARSITY_THRESHOLDS, dtype=torch.float64, device=flat.device)
    # bucket i holds the weights with bounds[i-1] <= |w| < bounds[i], so a cumulative count up to
    # bucket j is the number of weights strictly below bounds[j]: one pass for all thresholds
    buckets = torch.bucketize(flat, bounds, right=True)
    below = torch.bincount(buckets, minlength=len(bounds) + 1).cumsum(0)[: len(bounds)]
    zeros = flat.numel() - torch.count_nonzero(flat)
    norm = torch.linalg.vector_norm(flat, dtype=torch.float64)
    counts = torch.cat([below.double() / flat.numel(), (zeros.double() / flat.numel())[None]])
    values = torch.cat([counts, norm[None]]).tolist()  # one device sync
    stats = dict(zip(names, values, strict=False))
    stats["sparsity"] = stats[threshold_metric_name(SPARSITY_THRESHOLD)]
    stats["zero_frac"], stats["weight_norm"] = values[-2], values[-1]
    return stats


def layer_weight_norms(named_params: NamedParams) -> dict[str, float]:
    """The L2 norm of every decayed tensor, by parameter name, accumulated in float64."""
    if not named_params:
        return {}
    norms = [torch.linalg.vector_norm(p.detach(), dtype=torch.float64) for _, p in named_params]
    values = torch.stack(norms).tolist()
    return {name: value for (name, _), value in zip(named_params, values, strict=True)}


@contextmanager
def pruned(named_params: NamedParams, threshold: float = PRUNE_THRESHOLD) -> Iterator[int]:
    """Zero every weight with |w| < threshold in place; yield how many; restore them on exit.

    Only the pruned values are saved, and they are written back bitwise, even on an exception.
    """
    saved: list[tuple[Tensor, Tensor, Tensor]] = []
    try:
        with torch.no_grad():
            for _, param in named_params:
                # compare in float64, as weight_stats does: float32(1e-6) is below 1e-6
                mask = param.detach().abs().double() < threshold
                saved.append((param, mask, param[mask]))  # indexing copies
                param.masked_fill_(mask, 0)
        counts = [mask.sum() for _, mask, _ in saved]
        yield int(torch.stack(counts).sum()) if counts else 0
    finally:
        with torch.no_grad():
            for param, mask, values in saved:
                param[mask] = values


def _rows(param: Tensor) -> Tensor:
    """A weight as rows of fan-in (one per output unit); a vector or scalar is a single row."""
    return param.reshape(param.shape[0], -1) if param.ndim >= 2 else param.reshape(1, -1)


def row_angles(before: Tensor, after: Tensor) -> Tensor:
    """The angle in radians between matching rows, in float64; 0 where either row is zero."""
    a, b = before.double(), after.double()
    norm_a = torch.linalg.vector_norm(a, dim=1, keepdim=True)
    norm_b = torch.linalg.vector_norm(b, dim=1, keepdim=True)
    nonzero = (norm_a > 0) & (norm_b > 0)
    unit_a = a / torch.where(nonzero, norm_a, 1.0)
    unit_b = b / torch.where(nonzero, norm_b, 1.0)
    # Kahan's 2·atan2(|u−v|, |u+v|) is accurate for tiny angles where acos(cos) loses digits
    gap = torch.linalg.vector_norm(unit_a - unit_b, dim=1)
    total = torch.linalg.vector_norm(unit_a + unit_b, dim=1)
    angles = 2.0 * torch.atan2(gap, total)
    return torch.where(nonzero.squeeze(1), angles, 0.0)


class AngularTracker:
    """Mean per-step rotation of weight rows between measurements (Kosson et al. 2024).

    It takes a snapshot on creation; `measure(steps)` compares with the last snapshot and then
    takes a new one.
    """

    def __init__(self, named_params: NamedParams) -> None:
        self._params = [param for _, param in named_params]
        self._previous: list[Tensor] = []
        self.snapshot()

    def snapshot(self) -> None:
        """Remember the current rows (in their own dtype, to keep the copy small)."""
        self._previous = [_rows(param.detach()).clone() for param in self._params]

    def measure(self, steps: int) -> float:
        """Mean over layers of the mean row angle since the snapshot, per step, in radians."""
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if not self._params:
            return 0.0
        layer_means = [
            row_angles(before, _rows(param.detach())).mean()
            for before, param in zip(self._previous, self._params, strict=True)
        ]
        self.snapshot()
        return float(torch.stack(layer_means).mean()) / steps


# decades of |w| in the final histogram: float32's smallest subnormal is 1.4e-45, so every
# nonzero float32 weight lies in [1e-45, 1e2); larger ones are counted in the last bin
HISTOGRAM_DECADES = (-45, 2)


def weight_histogram(named_params: NamedParams) -> dict[str, list[int] | list[float] | int]:
    """Counts of log10|w| of the decayed weights in one bin per decade, and of exact zeros.

    Returns {"edges": [-45, ..., 2] (log10 |w|), "counts": one per bin, "zeros": exact zeros,
    "total": all weights}; a float64 weight below 1e-45 is counted in the first bin.
    """
    low, high = HISTOGRAM_DECADES
    edges = list(range(low, high + 1))
    if not named_params or all(p.numel() == 0 for _, p in named_params):
        return {"edges": [float(e) for e in edges], "counts": [0] * (high - low), "zeros": 0,
                "total": 0}  # fmt: skip
    flat = _flat_weights(named_params).abs().double()
    nonzero = flat[flat > 0]
    decades = torch.floor(torch.log10(nonzero)).clamp(low, high - 1).long() - low
    counts = torch.bincount(decades, minlength=high - low).tolist()
    return {
        "edges": [float(e) for e in edges],
        "counts": counts,
        "zeros": int(flat.numel() - nonzero.numel()),
        "total": int(flat.numel()),
    }
