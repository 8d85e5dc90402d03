"""Weight-decay regularizers over torch's SGD and Adam (docs/science.md §1).

`make_optimizer` is the entry point. The optimizers subclass torch's own, so that with λ = 0 a
step is exactly torch's step, and torch's LR schedulers, hooks and state dicts work unchanged.

Each family does its decay work around the base step:

| family       | before the base step                      | after it                       |
|--------------|-------------------------------------------|--------------------------------|
| `none`       | nothing                                   | nothing                        |
| `l2`         | g ← g + λ_t·w (torch's own weight_decay)  | nothing                        |
| `decoupled`  | w ← w·(1 − s_t·λ_t)                       | nothing                        |
| `pwd`        | f ← 1 / (1 + p·s_t·λ_t·|w|^(p−2))         | w ← w·f                        |
| `lp_coupled` | g ← g + p·λ_t·|w|^(p−1)·sign(w)           | the caller's gradients restored|

λ_t = lam·wd_mult (`set_decay_multiplier`), s_t = lr_t (decay_scale "lr", torch's AdamW) or
lr_t / base_lr (decay_scale "schedule", the AdamW paper).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

# the names the spec checks against; REGULARIZERS below implements each family
from studies.catalog import BASE_OPTIMIZERS, DECAY_SCALES, FAMILIES
from studies.trial_config import spec_default

# torch's fused Adam/SGD kernels exist for these devices (fused is the fastest base step).
_FUSED_DEVICES = ("cpu", "cuda")

NamedParams = list[tuple[str, nn.Parameter]]
_DECAY_KEYS = ("family", "lam", "p", "decay_scale", "wd_mult", "decayed")
Finisher = Callable[[], None] | None


# ---------------------------------------------------------------- the parameter-group rule


def is_decayed(param: Tensor, decay_all_params: bool = False) -> bool:
    """Whether the common rule decays this tensor: matrices and up (weights, embeddings)."""
    return decay_all_params or param.ndim >= 2


def decayed_parameters(model: nn.Module, decay_all_params: bool = False) -> NamedParams:
    """The trainable (name, parameter) pairs of `model` that the decay applies to."""
    return [
        (name, param)
        for name, param in model.named_parameters()
        if param.requires_grad and is_decayed(param, decay_all_params)
    ]


# ---------------------------------------------------------------- the math (pure functions)


def pwd_factor(weight: Tensor, coef: float, p: float) -> Tensor:
    """The pWD factor 1 / (1 + coef·|w|^(p−2)) per element: the plain formula, for reference.

    It lies in [0, 1]: 0 at w == 0 when p < 2 (|0|^(p−2) = inf, 1/inf = 0), 1 at w == 0 when
    p > 2. `coef` = p·s_t·λ_t is finite and > 0; the product runs in float64 because a coef
    below float32's range would round to 0 there and make 0·inf = NaN. Returned in float32 or
    wider (`_compute_dtype`).
    """
    magnitude = weight.to(torch.float64).abs()
    factor = magnitude.pow_(p - 2.0).mul_(coef).add_(1.0).reciprocal_()
    return factor.to(_compute_dtype(weight.dtype))


class FlatBuffer:
    """One flat tensor and views of it shaped like a list of same-device tensors."""

    def __init__(self, like: list[Tensor]) -> None:
        self.ids = [id(tensor) for tensor in like]
        self.flat = torch.empty(
            sum(tensor.numel() for tensor in like),
            dtype=_compute_dtype(like[0].dtype),
            device=like[0].device,
        )
        pieces = self.flat.split([tensor.numel() for tensor in like])
        self.views = [piece.view(tensor.shape) for piece, tensor in zip(pieces, like, strict=True)]


# |w|^(p−2) as a chain of powers that torch runs as vectorised kernels (reciprocal, rsqrt,
# sqrt, squares, cubes); any other exponent goes through log + sigmoid.
_CHEAP_POWERS = {
    -2.0: (-2.0,),
    -1.5: (-0.5, 3.0),
    -1.0: (-1.0,),
    -0.5: (-0.5,),
    0.5: (0.5,),
    1.0: (1.0,),
    1.5: (0.5, 3.0),
    2.0: (2.0,),
    3.0: (3.0,),
}


def pwd_factors_flat(weights: list[Tensor], coef: float, p: float, out: FlatBuffer) -> None:
    """`pwd_factor` for a list of same-device tensors, written into `out.views`.

    For a general p, 1/(1 + coef·|w|^(p−2)) = sigmoid((2−p)·ln|w| − ln coef): torch's pow with
    a general exponent is scalar code on CPU, while log and sigmoid are vectorised (3× faster in
    all), and the sigmoid does the 1 + … and the reciprocal in one pass. At w == 0,
    ln|w| = −inf gives sigmoid(∓inf) = 0 (p < 2) or 1 (p > 2); p == 2 never reaches here (its
    factor is a scalar). ln coef is finite for any coef > 0, so a tiny coef cannot underflow
    into 0·inf. After the first pass, every pass runs once over one flat tensor.
    """
    flat = _abs_into(weights, out)
    powers = _CHEAP_POWERS.get(p - 2.0)
    if powers and coef >= torch.finfo(flat.dtype).tiny:
        # The formula itself; coef is > 0 in this dtype too, so coef·inf stays inf.
        for exponent in powers:
            flat.pow_(exponent)
        torch.add(_scalar(1.0, flat), flat, alpha=coef, out=flat)
        flat.reciprocal_()
        return
    flat.log_()
    torch.add(_scalar(-math.log(coef), flat), flat, alpha=2.0 - p, out=flat)
    flat.sigmoid_()


def _abs_into(weights: list[Tensor], out: FlatBuffer) -> Tensor:
    flat = out.flat
    if flat.dtype == weights[0].dtype:
        for view, weight in zip(out.views, weights, strict=True):
            torch.abs(weight.detach(), out=view)  # the copy and the abs in one pass
    else:
        torch._foreach_copy_(out.views, weights)
        flat.abs_()
    return flat


def _scalar(value: float, like: Tensor) -> Tensor:
    """A 0-dim CPU tensor: a scalar operand on any device, so `torch.add(it, x, alpha=a, out=x)`
    computes value + a·x in one pass."""
    return torch.tensor(value, dtype=like.dtype)


def lp_penalty(weight: Tensor, p: float) -> Tensor:
    """sign(w)·|w|^(p−1) (the gradient of |w|^p / p), 0 at w == 0 rather than NaN for p < 1."""
    magnitude = weight.to(_compute_dtype(weight.dtype)).abs()
    power = magnitude.pow_(p - 1.0).clamp_max_(torch.finfo(magnitude.dtype).max)
    return power.mul_(torch.sign(weight))


def lp_penalties_foreach(weights: list[Tensor], p: float) -> list[Tensor]:
    """`lp_penalty` for same-dtype tensors in foreach passes, in their own dtype."""
    magnitudes = torch._foreach_abs(weights)
    torch._foreach_pow_(magnitudes, p - 1.0)
    torch._foreach_clamp_max_(magnitudes, torch.finfo(weights[0].dtype).max)
    torch._foreach_mul_(magnitudes, torch._foreach_sign(weights))
    return magnitudes


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the decay math runs in: float32 at least, so bf16 |w|^(p−2) cannot overflow."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


# ---------------------------------------------------------------- the families


def _decay_scale(group: dict[str, Any]) -> float:
    """s_t: the current lr (torch's AdamW) or the lr schedule's multiplier (the AdamW paper)."""
    if group["decay_scale"] == "lr":
        return group["lr"]
    return group["lr"] / group["base_lr"]


def _none(
    opt: DecayOptimizer, group: dict[str, Any], params: list[Tensor], lam: float
) -> Finisher:
    return None


def _l2(opt: DecayOptimizer, group: dict[str, Any], params: list[Tensor], lam: float) -> Finisher:
    # torch's own coupled weight decay is exactly g + λ·w, on every path (loop, foreach, fused),
    # and leaves the caller's .grad untouched.
    group["weight_decay"] = lam
    return None


def _decoupled(
    opt: DecayOptimizer, group: dict[str, Any], params: list[Tensor], lam: float
) -> Finisher:
    if opt._native_decoupled:
        # torch's Adam(decoupled_weight_decay=True) multiplies by 1 − lr_t·weight_decay, which
        # is 1 − s_t·λ_t for this weight_decay (s_t/lr_t = 1/base_lr under "schedule").
        ratio = 1.0 if group["decay_scale"] == "lr" else 1.0 / group["base_lr"]
        group["weight_decay"] = lam * ratio
        return None
    factor = 1.0 - _decay_scale(group) * lam
    if factor != 1.0 and params:
        if _fast(group):
            torch._foreach_mul_(params, factor)
        else:
            for param in params:
                param.mul_(factor)
    return None


def _pwd(opt: DecayOptimizer, group: dict[str, Any], params: list[Tensor], lam: float) -> Finisher:
    p = group["p"]
    scaled = _decay_scale(group) * lam
    if scaled == 0.0 or not params:
        return None
    # The floor keeps a coef that underflows (p near 0) positive, so zeros still go to zero.
    coef = max(p * scaled, math.ulp(0.0))
    if p == 2.0:
        return _scaler(params, 1.0 / (1.0 + coef), _fast(group))
    if _fast(group):
        pairs = []
        for same_device in _by_device_dtype(params):
            buffer = opt._flat_buffer(group, same_device)
            pwd_factors_flat(same_device, coef, p, buffer)
            pairs.append((same_device, buffer.views))
        return lambda: [torch._foreach_mul_(tensors, views) for tensors, views in pairs]
    factors = [pwd_factor(param, coef, p) for param in params]
    return lambda: [param.mul_(factor) for param, factor in zip(params, factors, strict=True)]


def _scaler(params: list[Tensor], factor: float, fast: bool) -> Finisher:
    if fast:
        return lambda: torch._foreach_mul_(params, factor)
    return lambda: [param.mul_(factor) for param in params]


def _lp_coupled(
    opt: DecayOptimizer, group: dict[str, Any], params: list[Tensor], lam: float
) -> Finisher:
    p = group["p"]
    if p * lam == 0.0 or not params:
        return None
    if _fast(group):
        same_dtype = _by_device_dtype(params)
        params = [param for same in same_dtype for param in same]
        penalties = [pen for same in same_dtype for pen in lp_penalties_foreach(same, p)]
    else:
        penalties = [lp_penalty(param, p).to(param.dtype) for param in params]
    grads = [param.grad for param in params]
    new_grads = torch._foreach_add(grads, penalties, alpha=p * lam)
    # The penalised gradient goes in for the base step only; the caller's .grad comes back after.
    for param, grad in zip(params, new_grads, strict=True):
        param.grad = grad

    def restore() -> None:
        for param, grad in zip(params, grads, strict=True):
            param.grad = grad

    return restore


FamilyStep = Callable[["DecayOptimizer", dict[str, Any], list[Tensor], float], Finisher]
REGULARIZERS: dict[str, FamilyStep] = {
    "none": _none,
    "l2": _l2,
    "decoupled": _decoupled,
    "pwd": _pwd,
    "lp_coupled": _lp_coupled,
}


def _by_device_dtype(tensors: list[Tensor]) -> list[list[Tensor]]:
    lists: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
    for tensor in tensors:
        lists.setdefault((tensor.device, tensor.dtype), []).append(tensor)
    return list(lists.values())


def _fast(group: dict[str, Any]) -> bool:
    """The foreach path unless the group asked for the plain loop (foreach=False)."""
    return group.get("foreach") is not False


# ---------------------------------------------------------------- validation


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _check_number(name: str, value: object, *, positive: bool = False) -> float:
    if isinstance(value, Tensor) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a python number, got {value!r}")
    bound_ok = value > 0 if positive else value >= 0
    if not (math.isfinite(value) and bound_ok):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def _check_group(group: dict[str, Any]) -> None:
    _check_choice("family", group["family"], FAMILIES)
    _check_choice("decay_scale", group["decay_scale"], DECAY_SCALES)
    _check_number("lam", group["lam"])
    _check_number("p", group["p"], positive=True)
    _check_number("lr", group["lr"])
    _check_number("wd_mult", group["wd_mult"])
    if group["decay_scale"] == "schedule" and not group["base_lr"] > 0:
        raise ValueError(f"lr must be > 0 when decay_scale is 'schedule', got {group['lr']!r}")


# ---------------------------------------------------------------- the optimizers


def _unhooked(step: Callable[..., Any]) -> Callable[..., Any]:
    """torch's step without the hook runner torch wraps around it once an instance exists.

    Our own step is wrapped the same way, so calling the wrapped base step would run every
    step hook twice.
    """
    return step.__wrapped__ if getattr(step, "hooked", False) else step  # type: ignore[attr-defined]


class DecayOptimizer(torch.optim.Optimizer):
    """A torch optimizer with a weight-decay family; hyperparameters live in the param groups.

    Group keys added to torch's: family, lam, p, decay_scale, wd_mult (λ_t = lam·wd_mult),
    base_lr (the lr that decay_scale "schedule" divides by), decayed (counted as decayed).
    """

    _BASE: ClassVar[type[torch.optim.Optimizer]]
    _native_decoupled: ClassVar[bool] = False

    def _set_decay_defaults(self, family: str, lam: float, p: float, decay_scale: str) -> None:
        # Set before torch's __init__, which calls add_param_group for every group.
        _check_choice("family", family, FAMILIES)
        _check_choice("decay_scale", decay_scale, DECAY_SCALES)
        _check_number("lam", lam)
        _check_number("p", p, positive=True)
        self._decay_defaults = {
            "family": family,
            "lam": lam,
            "p": p,
            "decay_scale": decay_scale,
            "wd_mult": 1.0,
            "decayed": True,
        }
        self._flat_buffers: dict[tuple[int, torch.device, torch.dtype], FlatBuffer] = {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # torch pickles (and deep-copies) only defaults, state and param_groups.
        super().__setstate__(state)
        self._decay_defaults = {key: self.defaults[key] for key in _DECAY_KEYS}
        self._flat_buffers = {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's load_state_dict; the new groups get fresh scratch buffers."""
        super().load_state_dict(state_dict)
        self._flat_buffers.clear()

    def _finish_init(self) -> None:
        self.defaults.update(self._decay_defaults)
        # GradScaler hands scaled gradients and found_inf straight to a fused step that claims
        # this; the decay work around it would then see scaled gradients and skip nothing.
        self._step_supports_amp_scaling = False

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch's add_param_group, filling and validating the decay keys."""
        for key, value in self._decay_defaults.items():
            param_group.setdefault(key, value)
        param_group.setdefault("base_lr", param_group.get("lr", self.defaults["lr"]))
        _check_group({"lr": self.defaults["lr"], **param_group})
        param_group["weight_decay"] = 0.0  # the families own it (see _l2, _decoupled)
        if self._native_decoupled:
            param_group["decoupled_weight_decay"] = param_group["family"] == "decoupled"
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One step: each group's decay work, torch's base step, then the finishing work."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        finishers = [self._before_base_step(group) for group in self.param_groups]
        _unhooked(self._BASE.step)(self)
        for finish in finishers:
            if finish is not None:
                finish()
        return loss

    def _before_base_step(self, group: dict[str, Any]) -> Finisher:
        params = [param for param in group["params"] if param.grad is not None]
        lam = group["lam"] * group["wd_mult"]
        return REGULARIZERS[group["family"]](self, group, params, lam)

    def _flat_buffer(self, group: dict[str, Any], tensors: list[Tensor]) -> FlatBuffer:
        """The buffer for the pWD factors of `tensors`, kept between steps on CPU.

        A fresh CPU buffer of this size costs page faults that take longer than the pass that
        fills it; on accelerators the caching allocator makes fresh buffers free, and the memory
        goes back to the activations between steps.
        """
        if tensors[0].device.type != "cpu":
            return FlatBuffer(tensors)
        key = (id(group), tensors[0].device, tensors[0].dtype)
        buffer = self._flat_buffers.get(key)
        if buffer is None or buffer.ids != [id(tensor) for tensor in tensors]:
            buffer = self._flat_buffers[key] = FlatBuffer(tensors)
        return buffer

    def set_decay_multiplier(self, multiplier: float) -> None:
        """Set λ_t = lam·multiplier for every group from the next step on (decay schedules)."""
        value = _check_number("multiplier", multiplier)
        for group in self.param_groups:
            group["wd_mult"] = value

    @property
    def effective_decay(self) -> float:
        """The current λ_t of the decayed groups (0 for the family `none`)."""
        return max(
            (
                g["lam"] * g["wd_mult"]
                for g in self.param_groups
                if g["decayed"] and g["family"] != "none"
            ),
            default=0.0,
        )

    @property
    def decayed_param_count(self) -> int:
        """Number of scalar elements in the decayed groups."""
        return self._count(decayed=True)

    @property
    def non_decayed_param_count(self) -> int:
        """Number of scalar elements in the other groups."""
        return self._count(decayed=False)

    def _count(self, *, decayed: bool) -> int:
        return sum(
            param.numel()
            for group in self.param_groups
            if group["decayed"] == decayed
            for param in group["params"]
        )


class DecayAdam(DecayOptimizer, torch.optim.Adam):
    """torch.optim.Adam with a weight-decay family."""

    _BASE = torch.optim.Adam
    _native_decoupled = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        *,
        family: str = "pwd",
        lam: float = 0.0,
        p: float = 2.0,
        decay_scale: str = "lr",
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        self._set_decay_defaults(family, lam, p, decay_scale)
        _check_number("lr", lr)
        super().__init__(params, lr=lr, betas=betas, eps=eps, foreach=foreach, fused=fused)
        self._finish_init()


class DecaySGD(DecayOptimizer, torch.optim.SGD):
    """torch.optim.SGD (momentum, optional Nesterov) with a weight-decay family."""

    _BASE = torch.optim.SGD

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        nesterov: bool = False,
        *,
        family: str = "pwd",
        lam: float = 0.0,
        p: float = 2.0,
        decay_scale: str = "lr",
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        self._set_decay_defaults(family, lam, p, decay_scale)
        _check_number("lr", lr)
        _check_number("momentum", momentum)
        if nesterov and not momentum > 0:
            raise ValueError(f"nesterov needs momentum > 0, got momentum={momentum!r}")
        super().__init__(
            params, lr=lr, momentum=momentum, nesterov=nesterov, foreach=foreach, fused=fused
        )
        self._finish_init()


# ---------------------------------------------------------------- the entry point


def make_optimizer(
    model_or_named_params: nn.Module | Iterable[tuple[str, nn.Parameter]],
    *,
    optimizer: str = "adam",
    family: str = "pwd",
    lr: float,
    lam: float = spec_default("lam"),
    p: float = spec_default("p"),
    decay_scale: str = spec_default("decay_scale"),
    momentum: float = spec_default("momentum"),
    nesterov: bool = spec_default("nesterov"),
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    decay_all_params: bool = spec_default("decay_all_params"),
    foreach: bool = True,
    fused: bool | None = None,
) -> DecayOptimizer:
    """An SGD or Adam optimizer with a weight-decay family, decaying ndim >= 2 tensors only.

    Args:
        model_or_named_params: a module, or (name, parameter) pairs; frozen ones are skipped.
        lam: λ, the decay strength; `set_decay_multiplier` scales it per step.
        p: the norm of `pwd` and `lp_coupled` (ignored by the other families).
        decay_scale: "lr" (decay ∝ current lr, torch's AdamW) or "schedule" (∝ lr_t / lr).
        decay_all_params: decay biases and normalization gains too.
        foreach: False runs the plain per-tensor loops everywhere (the reference path).
        fused: torch's fused base step; None picks it where torch has it and foreach is on.
    """
    _check_choice("optimizer", optimizer, BASE_OPTIMIZERS)
    _check_number("lam", lam)
    named = _trainable(model_or_named_params)
    groups = _param_groups(named, decay_all_params)
    if fused is None:
        fused = foreach and all(
            param.is_floating_point() and param.device.type in _FUSED_DEVICES for _, param in named
        )
    common = {"family": family, "lam": lam, "p": p, "decay_scale": decay_scale}
    base = {"foreach": None if fused else foreach, "fused": fused}
    if optimizer == "adam":
        return DecayAdam(groups, lr=lr, betas=betas, eps=eps, **common, **base)
    return DecaySGD(groups, lr=lr, momentum=momentum, nesterov=nesterov, **common, **base)


def _trainable(
    model_or_named_params: nn.Module | Iterable[tuple[str, nn.Parameter]],
) -> NamedParams:
    if isinstance(model_or_named_params, nn.Module):
        pairs = model_or_named_params.named_parameters()
    else:
        pairs = iter(model_or_named_params)
    return [(name, param) for name, param in pairs if param.requires_grad]


def _param_groups(named: NamedParams, decay_all_params: bool) -> list[dict[str, Any]]:
    decayed = [param for _, param in named if is_decayed(param, decay_all_params)]
    others = [param for _, param in named if not is_decayed(param, decay_all_params)]
    groups: list[dict[str, Any]] = []
    if decayed:
        groups.append({"params": decayed, "decayed": True})
    if others:
        groups.append({"params": others, "decayed": False, "lam": 0.0})
    return groups
