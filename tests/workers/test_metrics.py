"""Model metrics: sparsity, norms, pruning and the angular update, on weights set by hand."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from workers.metrics import (
    PRUNE_THRESHOLD,
    SPARSITY_THRESHOLD,
    SPARSITY_THRESHOLDS,
    AngularTracker,
    layer_weight_norms,
    pruned,
    threshold_metric_name,
    weight_histogram,
    weight_stats,
)

# wall-clock limits fail tests on a busy machine without saying anything about the code
no_deadline = settings(deadline=None)

# ten decayed weights: two exact zeros, then one in each band between the thresholds
FIRST = [[0.0, 1e-9, 5e-7, 2e-5], [0.5, -1e-7, 3.0, -0.0]]
SECOND = [[-2e-4, 4.0]]
EXPECTED_STATS = {
    "sparsity@1e-10": 0.2,
    "sparsity@1e-08": 0.3,
    "sparsity@1e-06": 0.5,
    "sparsity@1e-04": 0.6,
    "sparsity@1e-03": 0.7,
    "sparsity": 0.5,
    "zero_frac": 0.2,
    "weight_norm": math.sqrt(0.25 + 9.0 + 16.0 + 1e-18 + 2.5e-13 + 1e-14 + 4e-10 + 4e-8),
}


def decayed(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The ndim >= 2 rule of docs/science.md §1, written out so this test needs no optim."""
    return [(name, p) for name, p in model.named_parameters() if p.ndim >= 2]


def hand_set_model(dtype: torch.dtype = torch.float32) -> nn.Module:
    """Linear(4→2) then Linear(2→1) holding FIRST and SECOND, with all-zero biases."""
    model = nn.Sequential(nn.Linear(4, 2), nn.ReLU(), nn.Linear(2, 1)).to(dtype)
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(FIRST))
        model[2].weight.copy_(torch.tensor(SECOND))
        model[0].bias.zero_()
        model[2].bias.zero_()
    return model


def bits(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().view(torch.int32).clone()


@pytest.mark.parametrize(
    ("tau", "name"),
    [(1e-10, "sparsity@1e-10"), (1e-8, "sparsity@1e-08"), (1e-6, "sparsity@1e-06"),
     (1e-3, "sparsity@1e-03")],
)  # fmt: skip
def test_threshold_metric_name(tau, name):
    assert threshold_metric_name(tau) == name


def test_thresholds_hold_the_ones_the_science_names():
    assert SPARSITY_THRESHOLD == 1e-6 and PRUNE_THRESHOLD == 1e-3
    assert {1e-10, 1e-8, 1e-6, 1e-4, 1e-3} == set(SPARSITY_THRESHOLDS)


def test_weight_stats_on_hand_set_weights_ignores_the_zero_biases():
    stats = weight_stats(decayed(hand_set_model()))
    assert stats.keys() == EXPECTED_STATS.keys()
    for name, expected in EXPECTED_STATS.items():
        assert stats[name] == pytest.approx(expected, rel=1e-12), name


@pytest.mark.parametrize(("dtype", "rel"), [(torch.bfloat16, 1e-2), (torch.float64, 1e-14)])
def test_weight_stats_in_other_dtypes(dtype, rel):
    stats = weight_stats(decayed(hand_set_model(dtype)))
    for name, expected in EXPECTED_STATS.items():
        assert stats[name] == pytest.approx(expected, rel=rel), name


def test_thresholds_compare_exact_values():
    exactly = weight_stats([("w", torch.full((2, 2), 1e-6, dtype=torch.float64))])
    assert exactly["sparsity"] == 0.0
    assert exactly["sparsity@1e-04"] == 1.0
    # float32 cannot hold 1e-6: its nearest value, 9.99999997e-7, is below the threshold
    assert weight_stats([("w", torch.full((2, 2), 1e-6))])["sparsity"] == 1.0


def test_weight_norm_does_not_overflow_in_float32():
    # squares of 1e20 overflow float32; the float64 accumulation does not
    stats = weight_stats([("w", torch.full((10, 10), 1e20))])
    assert stats["weight_norm"] == pytest.approx(1e21, rel=1e-6)


def test_weight_stats_with_no_decayed_weights_is_all_zero():
    stats = weight_stats([])
    assert stats["sparsity"] == 0.0 and stats["weight_norm"] == 0.0
    assert set(stats) == set(EXPECTED_STATS)


@no_deadline
@given(
    values=st.lists(
        st.one_of(
            st.floats(-(2**-7), 2**-7, width=32),
            st.sampled_from([0.0, -0.0, 1e-45, 1e-10, 1e-8, 1e-6, 1e-4, 1e-3, 1e30]),
        ),
        min_size=1,
        max_size=200,
    )
)
def test_sparsity_matches_a_direct_count(values):
    weights = torch.tensor(values, dtype=torch.float32)
    stats = weight_stats([("w", weights.reshape(1, -1))])
    as_float32 = weights.tolist()  # the values the weights really hold
    for tau in SPARSITY_THRESHOLDS:
        below = sum(abs(w) < tau for w in as_float32)
        assert stats[threshold_metric_name(tau)] == below / len(values)
    assert stats["zero_frac"] == sum(w == 0 for w in as_float32) / len(values)


def test_layer_weight_norms_by_name():
    model = nn.Sequential(nn.Linear(2, 1), nn.Linear(1, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[3.0, 4.0]]))
        model[1].weight.copy_(torch.tensor([[5.0], [-12.0]]))
    assert layer_weight_norms(decayed(model)) == {"0.weight": 5.0, "1.weight": 13.0}


def test_pruned_zeroes_small_weights_and_restores_them_bitwise():
    model = hand_set_model()
    params = decayed(model)
    before = [bits(p) for _, p in params]
    x = torch.ones(1, 4)
    with pruned(params) as count:
        assert count == 7  # the weights below 1e-3, exact zeros included
        assert model[0].weight.tolist() == [[0.0, 0.0, 0.0, 0.0], [0.5, 0.0, 3.0, 0.0]]
        assert model[2].weight.tolist() == [[0.0, 4.0]]
        assert model(x).item() == 4.0 * 3.5
    assert all(torch.equal(b, bits(p)) for b, (_, p) in zip(before, params, strict=True))


def test_pruned_restores_on_an_exception():
    params = decayed(hand_set_model())
    before = [bits(p) for _, p in params]
    with pytest.raises(RuntimeError, match="evaluation failed"), pruned(params, threshold=10.0):
        assert all(p.abs().max().item() == 0.0 for _, p in params)
        raise RuntimeError("evaluation failed")
    assert all(torch.equal(b, bits(p)) for b, (_, p) in zip(before, params, strict=True))


@no_deadline
@given(values=st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=64))
def test_pruned_round_trip_is_bitwise(values):
    weight = torch.tensor(values, dtype=torch.float32).reshape(1, -1)
    before = bits(weight)
    with pruned([("w", weight)], threshold=1e-3) as count:
        assert count == sum(abs(v) < 1e-3 for v in weight[0].tolist())
        assert weight.abs().min().item() == 0.0 or count == 0
    assert torch.equal(before, bits(weight))


def rotation_rows(angles: list[float], scales: list[float]) -> torch.Tensor:
    """Rows in 3-D, row i at `angles[i]` from the x axis in the x-y plane, of length scales[i]."""
    return torch.tensor(
        [[s * math.cos(a), s * math.sin(a), 0.0] for a, s in zip(angles, scales, strict=True)],
        dtype=torch.float64,
    )


def test_angular_tracker_measures_a_known_rotation_per_step():
    theta = 0.03
    weight = rotation_rows([0.0, 1.0], [1.0, 5.0])
    tracker = AngularTracker([("w", weight)])
    # row 0 turns by θ, row 1 by 2θ and doubles its length (length does not matter)
    weight.copy_(rotation_rows([theta, 1.0 + 2 * theta], [1.0, 10.0]))
    assert tracker.measure(steps=3) == pytest.approx(1.5 * theta / 3, rel=1e-12)
    assert tracker.measure(steps=1) == 0.0  # measure took a new snapshot


def test_angular_tracker_averages_layers_not_rows():
    small = rotation_rows([0.0], [1.0])
    large = rotation_rows([0.0] * 4, [1.0] * 4)
    tracker = AngularTracker([("small", small), ("large", large)])
    small.copy_(rotation_rows([0.2], [1.0]))
    large.copy_(rotation_rows([0.1] * 4, [1.0] * 4))
    assert tracker.measure(steps=1) == pytest.approx((0.2 + 0.1) / 2, rel=1e-12)


@pytest.mark.parametrize("theta", [1e-7, 1e-3, math.pi / 2, math.pi])
def test_angular_tracker_is_accurate_from_tiny_to_opposite(theta):
    weight = rotation_rows([0.5], [2.0])
    tracker = AngularTracker([("w", weight)])
    weight.copy_(rotation_rows([0.5 + theta], [2.0]))
    assert tracker.measure(steps=1) == pytest.approx(theta, rel=1e-6)


def test_angular_tracker_reads_conv_filters_as_rows():
    conv = nn.Conv2d(1, 2, kernel_size=2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[0.0, 0.0], [1.0, 1.0]]]]))
        tracker = AngularTracker([("conv.weight", conv.weight)])
        # filter 0 turns by 90°, filter 1 only grows
        conv.weight.copy_(torch.tensor([[[[0.0, 1.0], [0.0, 0.0]]], [[[0.0, 0.0], [3.0, 3.0]]]]))
    assert tracker.measure(steps=1) == pytest.approx(math.pi / 4, rel=1e-6)


def test_zero_rows_count_as_no_rotation():
    weight = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    tracker = AngularTracker([("w", weight)])
    weight.copy_(torch.tensor([[0.0, 0.0], [0.0, 1.0], [2.0, 0.0]]))
    angle = tracker.measure(steps=1)
    assert not math.isnan(angle)
    assert angle == pytest.approx((math.pi / 2) / 3, rel=1e-6)


def test_angular_tracker_in_bfloat16():
    weight = rotation_rows([0.0], [1.0]).to(torch.bfloat16)
    tracker = AngularTracker([("w", weight)])
    weight.copy_(rotation_rows([0.25], [1.0]))
    assert tracker.measure(steps=1) == pytest.approx(0.25, rel=1e-2)


def test_angular_tracker_rejects_zero_steps():
    with pytest.raises(ValueError, match="steps"):
        AngularTracker([("w", torch.ones(2, 2))]).measure(steps=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_metrics_on_cuda_match_cpu():
    cpu = decayed(hand_set_model())
    cuda = [(name, p.detach().cuda()) for name, p in cpu]
    assert weight_stats(cuda) == pytest.approx(weight_stats(cpu), rel=1e-12)
    assert layer_weight_norms(cuda) == pytest.approx(layer_weight_norms(cpu), rel=1e-12)
    with pruned(cuda) as count:
        assert count == 7
    assert all(torch.equal(a.cpu(), b) for (_, a), (_, b) in zip(cuda, cpu, strict=True))
    tracker = AngularTracker(cuda)
    cuda[0][1].mul_(-1)
    # both rows of the first layer turn by π, the second layer stays: (π + 0) / 2 layers / 2 steps
    assert tracker.measure(steps=2) == pytest.approx(math.pi / 4, rel=1e-12)


def test_weight_histogram_counts_each_decade_and_the_exact_zeros_apart() -> None:
    first = torch.tensor([0.0, -0.0, -1e-30, 5e-7])
    second = torch.tensor([[0.5, -1.0], [150.0, 2e-44]])
    histogram = weight_histogram([("a", first), ("b", second)])
    assert histogram["edges"] == [float(e) for e in range(-45, 3)]
    assert histogram["total"] == 8 and histogram["zeros"] == 2
    filled = {int(histogram["edges"][i]): c for i, c in enumerate(histogram["counts"]) if c}
    # 150 lies beyond the last edge (1e2) and is counted in the last decade; 2e-44 is subnormal
    assert filled == {-44: 1, -30: 1, -7: 1, -1: 1, 0: 1, 1: 1}
    assert weight_histogram([])["total"] == 0
