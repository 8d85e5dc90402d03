"""The weight-decay families of workers/optim.py against hand-computed steps and torch itself."""

from __future__ import annotations

import copy
import io
import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from workers.optim import (
    BASE_OPTIMIZERS,
    FAMILIES,
    decayed_parameters,
    make_optimizer,
)

W0 = np.array([[0.5, -0.25], [0.0, 2.0]])
G0 = np.array([[0.1, -0.2], [0.3, 0.05]])
LR, LAM, P = 0.1, 0.5, 1.5
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8

# (optimizer, momentum, nesterov)
BASES = [("sgd", 0.0, False), ("sgd", 0.9, False), ("sgd", 0.9, True), ("adam", 0.0, False)]


# ---------------------------------------------------------------- the textbook first steps


def base_first_step(base: tuple[str, float, bool], w: np.ndarray, g: np.ndarray) -> np.ndarray:
    """One step of SGD (momentum buffer starts as g) or Adam (bias-corrected m̂ = g, v̂ = g²)."""
    optimizer, momentum, nesterov = base
    if optimizer == "sgd":
        direction = g + momentum * g if nesterov else g
        return w - LR * direction
    m_hat = (1 - BETA1) * g / (1 - BETA1)
    v_hat = (1 - BETA2) * g**2 / (1 - BETA2)
    return w - LR * m_hat / (np.sqrt(v_hat) + EPS)


def expected_first_step(family: str, base: tuple[str, float, bool], scale: float) -> np.ndarray:
    """docs/science.md §1 written out for W0, G0; `scale` is s_t (lr, or lr/base_lr = 1)."""
    if family == "none":
        return base_first_step(base, W0, G0)
    if family == "l2":
        return base_first_step(base, W0, G0 + LAM * W0)
    if family == "decoupled":
        return base_first_step(base, W0 * (1 - scale * LAM), G0)
    if family == "pwd":
        with np.errstate(divide="ignore"):
            power = np.abs(W0) ** (P - 2)  # inf at the zero weight: its factor is 0
        factor = 1 / (1 + P * scale * LAM * power)
        return base_first_step(base, W0, G0) * factor
    penalty = np.sign(W0) * np.abs(W0) ** (P - 1)
    return base_first_step(base, W0, G0 + P * LAM * penalty)


def one_step(family, base, *, decay_scale="lr", foreach=True) -> np.ndarray:
    optimizer, momentum, nesterov = base
    weight = nn.Parameter(torch.tensor(W0, dtype=torch.float32))
    weight.grad = torch.tensor(G0, dtype=torch.float32)
    opt = make_optimizer(
        [("w", weight)],
        optimizer=optimizer,
        family=family,
        lr=LR,
        lam=LAM,
        p=P,
        decay_scale=decay_scale,
        momentum=momentum,
        nesterov=nesterov,
        betas=(BETA1, BETA2),
        eps=EPS,
        foreach=foreach,
    )
    opt.step()
    return weight.detach().double().numpy()


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("base", BASES, ids=lambda b: f"{b[0]}-m{b[1]}-nesterov{b[2]}")
@pytest.mark.parametrize("family", FAMILIES)
def test_one_step_matches_hand_computation(family, base, foreach):
    actual = one_step(family, base, foreach=foreach)
    np.testing.assert_allclose(actual, expected_first_step(family, base, LR), rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("base", BASES, ids=lambda b: f"{b[0]}-m{b[1]}-nesterov{b[2]}")
@pytest.mark.parametrize("family", ["decoupled", "pwd"])
def test_schedule_scale_decays_by_lr_multiplier_not_lr(family, base, foreach):
    # At the first step lr_t / base_lr = 1: the decay is λ, not lr·λ.
    actual = one_step(family, base, decay_scale="schedule", foreach=foreach)
    np.testing.assert_allclose(
        actual, expected_first_step(family, base, 1.0), rtol=2e-6, atol=1e-7
    )


def test_pwd_zero_weight_stays_zero_despite_its_gradient():
    actual = one_step("pwd", BASES[3])
    assert actual[1, 0] == 0.0
    assert base_first_step(BASES[3], W0, G0)[1, 0] != 0.0


# ---------------------------------------------------------------- against torch itself


class Mixed(nn.Module):
    """Parameters of many shapes: embedding, conv, linear, norm gains, biases."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 6)
        self.conv = nn.Conv1d(6, 4, 3)
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 3)
        self.scale = nn.Parameter(torch.ones(3))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.embed(tokens).transpose(1, 2)).mean(-1)
        return self.head(self.norm(x)) * self.scale


def loss_steps(model: nn.Module, optimizers, steps: int, seed: int = 0) -> None:
    """`steps` steps of a real loss on `model`; each optimizer in turn sees the same gradients."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        tokens = torch.randint(0, 10, (8, 5), generator=generator)
        target = torch.randn(8, 3, generator=generator)
        for net, opt in optimizers:
            net.zero_grad()
            torch.nn.functional.mse_loss(net(tokens), target).backward()
            opt.step()


def torch_twin(optimizer: str, params, foreach: bool, **extra):
    path = {"fused": True} if foreach else {"foreach": False}
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=0.01, betas=(BETA1, BETA2), eps=EPS, **path, **extra)
    return torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True, **path, **extra)


def ours(model, optimizer: str, family: str, foreach: bool, **extra):
    return make_optimizer(
        model,
        optimizer=optimizer,
        family=family,
        lr=0.01,
        momentum=0.9,
        nesterov=True,
        betas=(BETA1, BETA2),
        eps=EPS,
        foreach=foreach,
        **extra,
    )


def assert_models_equal(a: nn.Module, b: nn.Module) -> None:
    for (name, x), y in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(x, y), name


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("optimizer", BASE_OPTIMIZERS)
@pytest.mark.parametrize("family", FAMILIES)
def test_zero_lambda_is_bitwise_the_base_optimizer(family, optimizer, foreach):
    torch.manual_seed(1)
    model = Mixed()
    twin = copy.deepcopy(model)
    mine = ours(model, optimizer, family, foreach, lam=0.0, p=0.8)
    loss_steps(
        model, [(model, mine), (twin, torch_twin(optimizer, twin.parameters(), foreach))], 4
    )
    assert_models_equal(model, twin)


@pytest.mark.parametrize("family", ["decoupled", "pwd", "lp_coupled"])
def test_zero_multiplier_is_bitwise_the_base_optimizer(family):
    torch.manual_seed(2)
    model = Mixed()
    twin = copy.deepcopy(model)
    mine = ours(model, "adam", family, True, lam=0.3, p=0.8)
    mine.set_decay_multiplier(0.0)
    loss_steps(model, [(model, mine), (twin, torch_twin("adam", twin.parameters(), True))], 3)
    assert_models_equal(model, twin)


TORCH_EQUIVALENTS = [
    # (family, optimizer, torch's own optimizer with the same decay)
    (
        "decoupled",
        "adam",
        lambda params, path: torch.optim.AdamW(params, 0.01, weight_decay=0.3, **path),
    ),
    ("l2", "adam", lambda params, path: torch.optim.Adam(params, 0.01, weight_decay=0.3, **path)),
    (
        "l2",
        "sgd",
        lambda params, path: torch.optim.SGD(
            params, 0.01, momentum=0.9, nesterov=True, weight_decay=0.3, **path
        ),
    ),
]


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize(("family", "optimizer", "factory"), TORCH_EQUIVALENTS)
def test_decoupled_and_l2_are_bitwise_torch_weight_decay(family, optimizer, factory, foreach):
    torch.manual_seed(3)
    model = Mixed()
    twin = copy.deepcopy(model)
    mine = ours(model, optimizer, family, foreach, lam=0.3, decay_all_params=True)
    path = {"fused": True} if foreach else {"foreach": False}
    loss_steps(model, [(model, mine), (twin, factory(twin.parameters(), path))], 4)
    assert_models_equal(model, twin)


def pwd_vs_adamw_gap(lr: float, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Adam step from the same w, g: pWD p=2 at λ and AdamW at 2λ (float64)."""
    generator = torch.Generator().manual_seed(4)
    w = torch.randn(16, 16, generator=generator, dtype=torch.float64)
    g = torch.randn(16, 16, generator=generator, dtype=torch.float64)
    a, b = nn.Parameter(w.clone()), nn.Parameter(w.clone())
    a.grad, b.grad = g.clone(), g.clone()
    make_optimizer([("w", a)], family="pwd", lr=lr, lam=lam, p=2.0, foreach=False).step()
    torch.optim.AdamW([b], lr=lr, weight_decay=2 * lam, foreach=False).step()
    return (a - b).detach().abs().numpy(), w.abs().numpy(), (a - w).detach().numpy()


def test_pwd_p2_is_adamw_with_twice_lambda_to_second_order():
    lr, lam = 1e-2, 0.1
    gap, w_abs, _ = pwd_vs_adamw_gap(lr, lam)
    half_gap, _, _ = pwd_vs_adamw_gap(lr / 2, lam)
    assert gap.max() > 0
    # Exact gap: 2a(2a·w + u)/(1 + 2a) with a = lr·λ and Adam's first update |u| < lr.
    bound = 4 * (lr * lam) ** 2 * w_abs + 2 * lam * lr**2
    assert np.all(gap <= bound * (1 + 1e-9))
    assert 0.2 < half_gap.max() / gap.max() < 0.3  # second order: halving lr quarters it


def test_pwd_p1_is_soft_thresholding_for_large_weights():
    lr, lam = 0.1, 0.01
    a = lr * lam
    rng = np.random.default_rng(5)
    w = rng.uniform(100 * a, 1000 * a, size=(8, 8)) * rng.choice([-1.0, 1.0], size=(8, 8))
    weight = nn.Parameter(torch.tensor(w))
    weight.grad = torch.zeros_like(weight)  # isolate the decay: plain SGD leaves w as is
    make_optimizer(
        [("w", weight)], optimizer="sgd", family="pwd", lr=lr, lam=lam, p=1.0, momentum=0.0
    ).step()
    soft = np.sign(w) * np.maximum(np.abs(w) - a, 0.0)
    error = np.abs(weight.detach().numpy() - soft)
    assert np.all(error <= a**2 / np.abs(w) * (1 + 1e-9))
    assert error.max() < 0.01 * a


def test_lp_coupled_blows_up_near_zero_where_pwd_stays_bounded():
    w = torch.tensor([[1e-8, -1e-8]])
    results = {}
    for family in ("lp_coupled", "pwd"):
        weight = nn.Parameter(w.clone())
        weight.grad = torch.zeros_like(weight)
        make_optimizer(
            [("w", weight)], optimizer="sgd", family=family, lr=0.1, lam=1e-2, p=0.5, momentum=0.0
        ).step()
        results[family] = weight.detach()
    # lp_coupled: a step of lr·p·λ·|w|^(p−1) = 5 on a weight of 1e-8, through zero.
    assert torch.all(results["lp_coupled"].abs() > 1e6 * w.abs())
    assert torch.all(results["lp_coupled"] * w < 0)
    assert torch.all(results["pwd"].abs() <= w.abs())
    assert torch.all(results["pwd"] * w >= 0)


# ---------------------------------------------------------------- properties


SPECIAL_WEIGHTS = [0.0, -0.0, 1e-40, -1e-40, 1e-45, -1e-45, 1e30, -1e30, 1e-8, -3.0]
weights_strategy = st.lists(
    st.one_of(st.sampled_from(SPECIAL_WEIGHTS), st.floats(-1e3, 1e3, width=32)),
    min_size=1,
    max_size=12,
)
# The norms torch's pow has fast kernels for take their own branch: draw them often.
p_strategy = st.one_of(
    st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]),
    st.floats(min_value=0.0, max_value=4.0, exclude_min=True),
)
lam_strategy = st.floats(min_value=0.0, max_value=10.0)
dtype_strategy = st.sampled_from([torch.float32, torch.bfloat16])


def pwd_step(values, grads, *, p, lam, lr, dtype, optimizer, foreach) -> tuple:
    w = torch.tensor([values], dtype=torch.float32).to(dtype)
    weight = nn.Parameter(w.clone())
    weight.grad = torch.tensor([grads], dtype=torch.float32).to(dtype)
    opt = make_optimizer(
        [("w", weight)],
        optimizer=optimizer,
        family="pwd",
        lr=lr,
        lam=lam,
        p=p,
        momentum=0.0,
        foreach=foreach,
    )
    opt.step()
    return w.float(), weight.detach().float()


@settings(max_examples=300, deadline=None)
@given(
    values=weights_strategy,
    p=p_strategy,
    lam=lam_strategy,
    lr=st.sampled_from([1e-3, 0.1, 1.0]),
    dtype=dtype_strategy,
    optimizer=st.sampled_from(BASE_OPTIMIZERS),
    foreach=st.booleans(),
)
def test_pwd_decay_never_makes_nan_inf_or_flips_a_sign(
    values, p, lam, lr, dtype, optimizer, foreach
):
    # Zero gradients: the base step leaves w as is, so only the decay acts.
    before, after = pwd_step(
        values,
        [0.0] * len(values),
        p=p,
        lam=lam,
        lr=lr,
        dtype=dtype,
        optimizer=optimizer,
        foreach=foreach,
    )
    assert torch.isfinite(after).all()
    assert (after * before >= 0).all()
    assert (after.abs() <= before.abs()).all()


@settings(max_examples=200, deadline=None)
@given(
    values=weights_strategy,
    p=st.one_of(
        st.sampled_from([0.5, 1.0, 1.5]),
        st.floats(min_value=0.0, max_value=2.0, exclude_min=True, exclude_max=True),
    ),
    lam=st.floats(min_value=1e-6, max_value=10.0),
    dtype=dtype_strategy,
    optimizer=st.sampled_from(BASE_OPTIMIZERS),
    foreach=st.booleans(),
)
def test_pwd_exact_zeros_stay_zero_below_p2(values, p, lam, dtype, optimizer, foreach):
    grads = [1.0 + i for i in range(len(values))]  # gradients that would move every weight
    before, after = pwd_step(
        values, grads, p=p, lam=lam, lr=0.1, dtype=dtype, optimizer=optimizer, foreach=foreach
    )
    assert torch.isfinite(after).all()
    assert (after[before == 0] == 0).all()


# ---------------------------------------------------------------- fast path vs reference path


def random_model(dtype: torch.dtype, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = Mixed().to(dtype)
    with torch.no_grad():
        model.head.weight[0, :2] = 0.0  # exact zeros take the special branch of each path
    return model


@pytest.mark.parametrize(
    ("family", "p"),
    [(family, 0.8) for family in FAMILIES] + [("pwd", p) for p in (0.5, 1.0, 1.5, 3.0, 3.5, 4.0)],
)
@pytest.mark.parametrize("optimizer", BASE_OPTIMIZERS)
def test_foreach_and_reference_paths_agree(family, p, optimizer):
    fast_model = random_model(torch.float32, seed=6)
    ref_model = copy.deepcopy(fast_model)
    options = {"lam": 0.05, "p": p, "decay_scale": "lr"}
    fast = ours(fast_model, optimizer, family, True, **options)
    reference = ours(ref_model, optimizer, family, False, **options)
    loss_steps(fast_model, [(fast_model, fast), (ref_model, reference)], 6)
    for x, y in zip(fast_model.parameters(), ref_model.parameters(), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
    assert not torch.equal(fast_model.head.weight, random_model(torch.float32, 6).head.weight)


@pytest.mark.parametrize("p", [0.5, 1.0, 1.5, 3.0])
def test_foreach_and_reference_paths_agree_in_bfloat16(p):
    fast_model = random_model(torch.bfloat16, seed=7)
    ref_model = copy.deepcopy(fast_model)
    fast = ours(fast_model, "adam", "pwd", True, lam=0.5, p=p)
    reference = ours(ref_model, "adam", "pwd", False, lam=0.5, p=p)
    loss_steps(fast_model, [(fast_model, fast), (ref_model, reference)], 3)
    for x, y in zip(fast_model.parameters(), ref_model.parameters(), strict=True):
        assert x.dtype == torch.bfloat16
        torch.testing.assert_close(x, y, rtol=2e-2, atol=1e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("family", FAMILIES)
def test_cuda_matches_cpu(family, dtype):
    cpu_model = random_model(dtype, seed=8)
    cuda_model = copy.deepcopy(cpu_model).cuda()
    cpu_opt = ours(cpu_model, "adam", family, True, lam=0.05, p=0.8)
    cuda_opt = ours(cuda_model, "adam", family, True, lam=0.05, p=0.8)
    for _ in range(3):
        for model, opt in ((cpu_model, cpu_opt), (cuda_model, cuda_opt)):
            for param in model.parameters():
                param.grad = torch.ones_like(param)
            opt.step()
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 1e-3}
    for x, y in zip(cpu_model.parameters(), cuda_model.parameters(), strict=True):
        torch.testing.assert_close(x, y.cpu(), **tol)


# ---------------------------------------------------------------- groups, counts, schedules


def small_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3), nn.Linear(3, 2))


@pytest.mark.parametrize(
    ("decay_all_params", "freeze_norm", "decayed", "non_decayed"),
    [
        (False, False, 4 * 3 + 3 * 2, 3 + 3 + 3 + 2),  # weights | biases and norm gain/shift
        (True, False, 4 * 3 + 3 * 2 + 3 + 3 + 3 + 2, 0),
        (False, True, 4 * 3 + 3 * 2, 3 + 2),  # frozen parameters are not the optimizer's
    ],
)
def test_param_group_rule_and_counts(decay_all_params, freeze_norm, decayed, non_decayed):
    model = small_model()
    model[1].requires_grad_(not freeze_norm)
    opt = make_optimizer(model, family="pwd", lr=0.1, lam=0.1, decay_all_params=decay_all_params)
    assert (opt.decayed_param_count, opt.non_decayed_param_count) == (decayed, non_decayed)
    names = [name for name, _ in decayed_parameters(model, decay_all_params)]
    assert names[:1] == ["0.weight"] and len(names) == (6 if decay_all_params else 2)


def test_biases_and_norms_are_not_decayed():
    model = small_model()
    before = copy.deepcopy(model)
    opt = make_optimizer(model, optimizer="sgd", family="decoupled", lr=0.1, lam=0.5, momentum=0.0)
    for param in model.parameters():
        param.grad = torch.zeros_like(param)
    opt.step()
    assert torch.equal(model[0].bias, before[0].bias)
    assert torch.equal(model[1].weight, before[1].weight)
    torch.testing.assert_close(model[0].weight, before[0].weight * 0.95)


def decay_only_steps(optimizer: str, family: str, multipliers, **options) -> list[float]:
    weight = nn.Parameter(torch.ones(2, 2, dtype=torch.float64))
    opt = make_optimizer(
        [("w", weight)], optimizer=optimizer, family=family, momentum=0.0, **options
    )
    seen = []
    for multiplier in multipliers:
        opt.set_decay_multiplier(multiplier)
        seen.append(opt.effective_decay)
        weight.grad = torch.zeros_like(weight)
        opt.step()
    return [float(weight.detach()[0, 0]), *seen]


@pytest.mark.parametrize("optimizer", BASE_OPTIMIZERS)
def test_decay_multiplier_changes_lambda_without_rebuilding(optimizer):
    final, *seen = decay_only_steps(optimizer, "decoupled", [1.0, 0.5, 0.0], lr=0.1, lam=0.5)
    assert seen == [0.5, 0.25, 0.0]
    assert final == pytest.approx((1 - 0.05) * (1 - 0.025))


def cosine_lr(t: int, total: int, lr0: float) -> float:
    return 0.5 * lr0 * (1 + math.cos(math.pi * t / total))


@pytest.mark.parametrize("optimizer", BASE_OPTIMIZERS)
@pytest.mark.parametrize("decay_scale", ["lr", "schedule"])
def test_works_with_torch_cosine_annealing(optimizer, decay_scale):
    lr0, lam, total = 0.2, 0.5, 4
    weight = nn.Parameter(torch.ones(2, 2, dtype=torch.float64))
    opt = make_optimizer(
        [("w", weight)],
        optimizer=optimizer,
        family="decoupled",
        lr=lr0,
        lam=lam,
        decay_scale=decay_scale,
        momentum=0.0,
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    for _ in range(total):
        weight.grad = torch.zeros_like(weight)
        opt.step()
        scheduler.step()
    scale = [cosine_lr(t, total, lr0) / (1 if decay_scale == "lr" else lr0) for t in range(total)]
    assert float(weight.detach()[0, 0]) == pytest.approx(
        math.prod(1 - s * lam for s in scale), rel=1e-12
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_state_dict_round_trip_continues_identically(family):
    model = random_model(torch.float32, seed=9)
    opt = ours(model, "adam", family, True, lam=0.05, p=0.8)
    loss_steps(model, [(model, opt)], 3)
    opt.set_decay_multiplier(0.5)
    twin = copy.deepcopy(model)
    restored = ours(twin, "adam", "none", True, lam=0.0)
    buffer = io.BytesIO()  # through bytes, as a checkpoint would: no tensor shared with `opt`
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.effective_decay == opt.effective_decay
    assert restored.param_groups[0]["family"] == family
    loss_steps(model, [(model, opt), (twin, restored)], 2, seed=1)
    assert_models_equal(model, twin)


@pytest.mark.parametrize("clone", [copy.deepcopy, lambda obj: pickle.loads(pickle.dumps(obj))])
def test_deep_copied_or_pickled_optimizer_steps_like_the_original(clone):
    model = random_model(torch.float32, seed=10)
    opt = ours(model, "adam", "pwd", True, lam=0.05, p=0.8)
    loss_steps(model, [(model, opt)], 2)
    twin, twin_opt = clone((model, opt))
    loss_steps(model, [(model, opt), (twin, twin_opt)], 2, seed=1)
    assert_models_equal(model, twin)
    assert twin_opt.decayed_param_count == opt.decayed_param_count


@pytest.mark.parametrize("family", ["l2", "lp_coupled"])
def test_callers_gradients_are_left_as_they_were(family):
    weight = nn.Parameter(torch.tensor([[0.5, -2.0]]))
    grad = torch.tensor([[0.1, 0.2]])
    weight.grad = grad.clone()
    make_optimizer([("w", weight)], family=family, lr=0.1, lam=0.5, p=0.8).step()
    assert torch.equal(weight.grad, grad)


def test_step_hooks_run_once_per_step():
    torch.optim.Adam([nn.Parameter(torch.ones(1))])  # makes torch wrap Adam.step in its hooks
    weight = nn.Parameter(torch.ones(2, 2))
    opt = make_optimizer([("w", weight)], family="pwd", lr=0.1, lam=0.1, p=0.8)
    calls = []
    opt.register_step_post_hook(lambda *_: calls.append(1))
    for _ in range(2):
        weight.grad = torch.ones_like(weight)
        opt.step()
    assert len(calls) == 2


def test_zero_lr_leaves_weights_finite_and_unchanged():
    weight = nn.Parameter(torch.tensor([[0.0, 1.0, -1e-30]]))
    before = weight.detach().clone()
    for family in FAMILIES:
        for decay_scale in ("lr", "schedule"):
            opt = make_optimizer(
                [("w", weight)], family=family, lr=1.0, lam=1.0, p=0.5, decay_scale=decay_scale
            )
            opt.param_groups[0]["lr"] = 0.0  # a schedule that reaches zero
            weight.grad = torch.ones_like(weight)
            opt.step()
    assert torch.equal(weight.detach(), before)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"p": -1}, "p must be > 0, got -1"),
        ({"p": float("inf")}, "p must be > 0, got inf"),
        ({"lam": -0.1}, "lam must be >= 0, got -0.1"),
        ({"family": "l1"}, "family must be one of none, l2, decoupled, pwd, lp_coupled"),
        ({"optimizer": "rmsprop"}, "optimizer must be one of sgd, adam"),
        ({"decay_scale": "epoch"}, "decay_scale must be one of lr, schedule"),
        ({"lr": float("nan")}, "lr must be >= 0, got nan"),
        ({"lr": 0.0, "decay_scale": "schedule"}, "lr must be > 0 when decay_scale is 'schedule'"),
        ({"optimizer": "sgd", "momentum": 0.0, "nesterov": True}, "nesterov needs momentum > 0"),
    ],
)
def test_invalid_arguments_name_the_argument(options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        make_optimizer(small_model(), **{"lr": 0.1, **options})


def test_invalid_decay_multiplier_is_rejected():
    opt = make_optimizer(small_model(), lr=0.1, lam=0.1)
    with pytest.raises(ValueError, match="multiplier must be >= 0, got -1"):
        opt.set_decay_multiplier(-1)
