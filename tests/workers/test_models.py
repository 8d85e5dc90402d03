"""Every registered model builds for the datasets it suits and has the published size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from workers.models import MODELS, build_model

# The input shapes the registered datasets produce (see test_data.py)
SHAPES = {
    "mnist1d": (40,),
    "digits": (1, 8, 8),
    "mnist": (1, 28, 28),
    "fashion_mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "cifar100": (3, 32, 32),
}
COMPATIBLE = {
    "mlp": list(SHAPES),
    "cnn1d": ["mnist1d"],
    "cnn": ["digits", "mnist", "fashion_mnist", "cifar10"],
    "resnet20": ["cifar10", "cifar100", "mnist"],
    "resnet18": ["cifar10", "cifar100", "mnist"],
}
CASES = [(model, data) for model, datasets in COMPATIBLE.items() for data in datasets]


@pytest.mark.parametrize(("model", "dataset"), CASES)
def test_model_maps_a_batch_to_class_scores(model: str, dataset: str) -> None:
    classes = 100 if dataset == "cifar100" else 10
    torch.manual_seed(0)
    net = build_model(model, input_shape=SHAPES[dataset], num_classes=classes)
    x = torch.randn(4, *SHAPES[dataset])
    out = net(x)
    assert out.shape == (4, classes) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()  # every parameter takes part in the output
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def _count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(
    ("model", "shape", "options", "expected"),
    [
        # 40·256+256, 256·256+256, 256·10+10
        ("mlp", (40,), {}, 40 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10),
        ("mlp", (40,), {"depth": 0}, 40 * 10 + 10),  # logistic regression
        ("mlp", (1, 8, 8), {"width": 32, "depth": 1}, 64 * 32 + 32 + 32 * 10 + 10),
        # layer norm adds a gain and a bias per unit
        ("mlp", (40,), {"width": 8, "depth": 1, "norm": "layernorm"}, 40 * 8 + 8 + 2 * 8 + 90),
        # the MNIST-1D paper's CNN: 25 channels, kernels 5/3/3, lengths 40 → 19 → 10 → 5
        ("cnn1d", (40,), {}, (5 * 25 + 25) + 2 * (25 * 25 * 3 + 25) + 25 * 5 * 10 + 10),
        ("resnet20", (3, 32, 32), {}, 269_722),  # He et al. 2016: "0.27M"
        ("resnet18", (3, 32, 32), {}, 11_173_962),  # the usual CIFAR ResNet-18 size
    ],
)
def test_parameter_counts(model: str, shape: tuple, options: dict, expected: int) -> None:
    net = build_model(model, input_shape=shape, num_classes=10, **options)
    assert _count(net) == expected


def test_cnn1d_accepts_channel_first_input() -> None:
    net = build_model("cnn1d", input_shape=(1, 40), num_classes=10)
    x = torch.randn(3, 40)
    assert torch.equal(net(x), net(x[:, None, :]))


def test_resnet18_has_the_cifar_stem() -> None:
    net = build_model("resnet18", input_shape=(1, 28, 28), num_classes=10)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert net.conv1.in_channels == 1 and isinstance(net.maxpool, nn.Identity)
    assert net.fc.out_features == 10


@pytest.mark.parametrize(
    ("model", "options", "layer"),
    [
        ("mlp", {"norm": "batchnorm"}, nn.BatchNorm1d),
        ("mlp", {"norm": "layernorm"}, nn.LayerNorm),
        ("cnn", {"batchnorm": True}, nn.BatchNorm2d),
    ],
)
def test_normalization_option_adds_the_layer(model: str, options: dict, layer: type) -> None:
    net = build_model(model, input_shape=(1, 28, 28), num_classes=10, **options)
    assert any(isinstance(m, layer) for m in net.modules())
    plain = build_model(model, input_shape=(1, 28, 28), num_classes=10)
    assert not any(isinstance(m, layer) for m in plain.modules())


@pytest.mark.parametrize(
    ("model", "shape", "options", "message"),
    [
        ("mlp", (40,), {"widht": 64}, "'widht'.*width, depth, norm"),
        ("resnet18", (3, 32, 32), {"width": 2}, "'width'"),
        ("mlp", (40,), {"norm": "groupnorm"}, "norm must be one of"),
        ("cnn1d", (1, 28, 28), {}, r"cnn1d needs input_shape \[L\] or \[C, L\]"),
        ("cnn", (40,), {}, r"cnn needs image input_shape \[C, H, W\]"),
        ("resnet20", (40,), {}, "resnet20 needs image"),
        ("vit", (32,), {}, "unknown model 'vit'; known: mlp, cnn1d, cnn, resnet20, resnet18"),
    ],
)
def test_bad_requests_are_refused_by_name(model, shape, options, message) -> None:
    with pytest.raises(ValueError, match=message):
        build_model(model, input_shape=shape, num_classes=10, **options)


def test_registry_matches_catalog() -> None:
    catalog = pytest.importorskip("studies.catalog")
    assert tuple(MODELS) == tuple(catalog.MODEL_NAMES)
