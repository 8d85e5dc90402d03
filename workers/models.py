"""Model registry: every builder takes the dataset's input shape and class count, then options."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

NORMS = (None, "layernorm", "batchnorm")


def _norm_1d(norm: str | None, width: int) -> nn.Module:
    if norm is None:
        return nn.Identity()
    if norm == "layernorm":
        return nn.LayerNorm(width)
    if norm == "batchnorm":
        return nn.BatchNorm1d(width)
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def mlp(
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    width: int = 256,
    depth: int = 2,
    norm: str | None = None,
) -> nn.Module:
    """Flatten, then `depth` hidden layers Linear → optional norm → ReLU, then a Linear head.

    Args:
        depth: number of hidden layers (0 gives logistic regression).
        norm: None, "layernorm" or "batchnorm", placed right after each hidden Linear.
    """
    if width < 1 or depth < 0:
        raise ValueError(f"mlp needs width >= 1 and depth >= 0, got width={width}, depth={depth}")
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = math.prod(input_shape)
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), _norm_1d(norm, width), nn.ReLU()]
        fan_in = width
    layers.append(nn.Linear(fan_in, num_classes))
    return nn.Sequential(*layers)


def _conv1d_out(length: int, kernel: int, stride: int, padding: int) -> int:
    return (length + 2 * padding - kernel) // stride + 1


class ConvNet1d(nn.Module):
    """The MNIST-1D paper's CNN: three strided 1-D convolutions with ReLU, then a Linear head."""

    def __init__(self, in_channels: int, length: int, num_classes: int, channels: int = 25):
        super().__init__()
        # kernel 5 then 3, 3; stride 2, padding 1 (Greydanus & Kobak's ConvBase): 40 → 19 → 10 → 5
        specs = ((in_channels, 5), (channels, 3), (channels, 3))
        self.convs = nn.ModuleList(
            nn.Conv1d(c_in, channels, kernel, stride=2, padding=1) for c_in, kernel in specs
        )
        for _, kernel in specs:
            length = _conv1d_out(length, kernel, stride=2, padding=1)
        if length < 1:
            raise ValueError("cnn1d needs sequences of length >= 12")
        self.in_channels = in_channels
        self.head = nn.Linear(channels * length, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = x.reshape(x.shape[0], self.in_channels, x.shape[-1])  # [N, L] → [N, 1, L]
        for conv in self.convs:
            h = torch.relu(conv(h))
        return self.head(h.flatten(1))


def cnn1d(*, input_shape: tuple[int, ...], num_classes: int, channels: int = 25) -> nn.Module:
    """MNIST-1D CNN for inputs [L] (one channel) or [C, L]."""
    if len(input_shape) not in (1, 2):
        raise ValueError(f"cnn1d needs input_shape [L] or [C, L], got {tuple(input_shape)}")
    in_channels = input_shape[0] if len(input_shape) == 2 else 1
    return ConvNet1d(in_channels, input_shape[-1], num_classes, channels)


def _image_channels(model: str, input_shape: tuple[int, ...]) -> int:
    if len(input_shape) != 3:
        raise ValueError(f"{model} needs image input_shape [C, H, W], got {tuple(input_shape)}")
    return input_shape[0]


def cnn(
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    channels: tuple[int, int] = (32, 64),
    hidden: int = 128,
    batchnorm: bool = False,
) -> nn.Module:
    """Small 2-D CNN: two conv(3×3) → [BN] → ReLU → max-pool blocks, then a 2-layer head.

    Adaptive average pooling to 4×4 before the head makes it work for any H×W (8×8 digits,
    28×28 MNIST, 32×32 CIFAR).
    """
    in_channels = _image_channels("cnn", input_shape)
    layers: list[nn.Module] = []
    for c_out in channels:
        layers += [nn.Conv2d(in_channels, c_out, 3, padding=1, bias=not batchnorm)]
        layers += [nn.BatchNorm2d(c_out) if batchnorm else nn.Identity(), nn.ReLU()]
        layers += [nn.MaxPool2d(2, ceil_mode=True)]
        in_channels = c_out
    layers += [nn.AdaptiveAvgPool2d(4), nn.Flatten()]
    layers += [nn.Linear(in_channels * 16, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)]
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """He et al.'s CIFAR basic block with the parameter-free shortcut (option A)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.stride, self.extra_channels = stride, c_out - c_in

    def shortcut(self, x: Tensor) -> Tensor:
        # Option A of the paper: subsample and zero-pad channels, so ResNet-20 has 0.27M weights.
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            half = self.extra_channels // 2
            x = nn.functional.pad(x, (0, 0, 0, 0, half, self.extra_channels - half))
        return x

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for CIFAR (He et al. 2016, §4.2): 3 stages of n blocks, 16/32/64 channels."""

    def __init__(self, in_channels: int, num_classes: int, blocks_per_stage: int, width: int):
        super().__init__()
        widths = (width, 2 * width, 4 * width)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        blocks: list[nn.Module] = []
        c_in = width
        for stage, c_out in enumerate(widths):
            for i in range(blocks_per_stage):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(c_in, c_out, stride))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c_in, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(module.weight)

    def forward(self, x: Tensor) -> Tensor:
        h = self.blocks(self.stem(x))
        return self.head(h.mean(dim=(2, 3)))


def resnet20(*, input_shape: tuple[int, ...], num_classes: int, width: int = 16) -> nn.Module:
    """CIFAR ResNet-20 (3 stages × 3 basic blocks, 16/32/64 channels, batch norm)."""
    return CifarResNet(_image_channels("resnet20", input_shape), num_classes, 3, width)


def resnet18(*, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """torchvision's ResNet-18 with the CIFAR stem: 3×3 stride-1 first conv, no max-pool."""
    from torchvision.models import resnet18 as torchvision_resnet18

    in_channels = _image_channels("resnet18", input_shape)
    model = torchvision_resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()  # type: ignore[assignment]
    return model


ModelBuilder = Callable[..., nn.Module]

MODELS: dict[str, ModelBuilder] = {
    "mlp": mlp,
    "cnn1d": cnn1d,
    "cnn": cnn,
    "resnet20": resnet20,
    "resnet18": resnet18,
}


def model_options(name: str) -> tuple[str, ...]:
    """The options a model accepts besides input_shape and num_classes."""
    params = inspect.signature(MODELS[name]).parameters
    return tuple(p for p in params if p not in ("input_shape", "num_classes"))


def build_model(
    name: str, *, input_shape: tuple[int, ...], num_classes: int, **options: object
) -> nn.Module:
    """Build a registered model for a dataset's input shape and class count.

    Raises:
        ValueError: unknown model, an option the model does not take, or an incompatible input.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    allowed = model_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"model {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"its options: {', '.join(allowed) or 'none'}"
        )
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    return MODELS[name](input_shape=tuple(input_shape), num_classes=num_classes, **options)
