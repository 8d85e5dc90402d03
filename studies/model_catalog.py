"""What each model accepts and costs, so a study's model options are checked at submit.

A mirror of the builders in `workers/models.py` that needs no torch: each builder's options (type,
range, default), each dataset's input shape and class count, which model suits which data, and the
exact number of trainable parameters a model has on a dataset. A bad option or a model too large to
train is refused by the spec with the field to change, instead of failing inside every trial.
tests/studies/test_model_catalog.py checks all of it against the real torch models and loaders.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str, Any]

# A sensible per-trial ceiling for a setting to start from: ~9× ResNet-18, 400 MB of fp32 weights
# (1.6 GB with Adam's state and the gradients) before a single activation.
DEFAULT_MAX_PARAMETERS = 100_000_000

OPTIONS_LOC: Loc = ("task", "model_options")
MODEL_LOC: Loc = ("task", "model")


def _is_int(value: object) -> TypeGuard[int]:
    # bool subclasses int and 256.0 == 256; the builders want a real int (a float width would
    # reach nn.Linear and fail inside the trial).
    return isinstance(value, int) and not isinstance(value, bool)


def _got(value: object) -> str:
    return f"got {value!r} ({type(value).__name__})"


@dataclass(frozen=True)
class IntOption:
    """An integer option within [low, high]."""

    low: int
    high: int
    default: int

    @property
    def allowed(self) -> str:
        return f"an integer in {self.low}..{self.high}"

    def problem(self, value: object) -> str | None:
        if not _is_int(value):
            return f"must be {self.allowed}, {_got(value)}"
        return None if self.low <= value <= self.high else f"must be {self.allowed}, got {value}"


@dataclass(frozen=True)
class IntsOption:
    """A fixed-length list of integers, each within [low, high] (one per layer)."""

    length: int
    low: int
    high: int
    default: tuple[int, ...]

    @property
    def allowed(self) -> str:
        return f"a list of {self.length} integers, each in {self.low}..{self.high}"

    def problem(self, value: object) -> str | None:
        ok = (
            isinstance(value, list | tuple)
            and len(value) == self.length
            and all(_is_int(v) and self.low <= v <= self.high for v in value)
        )
        return None if ok else f"must be {self.allowed}, {_got(value)}"


@dataclass(frozen=True)
class BoolOption:
    """A switch: true or false, never 0/1 or a string."""

    default: bool

    @property
    def allowed(self) -> str:
        return "true or false"

    def problem(self, value: object) -> str | None:
        return None if isinstance(value, bool) else f"must be {self.allowed}, {_got(value)}"


@dataclass(frozen=True)
class ChoiceOption:
    """One of a few names; None (the builder's default) is chosen by leaving the option out."""

    choices: tuple[str | None, ...]
    default: str | None

    @property
    def allowed(self) -> str:
        names = ", ".join(repr(c) for c in self.choices if c is not None)
        return f"one of {names}" + (" (leave it out for none)" if None in self.choices else "")

    def problem(self, value: object) -> str | None:
        ok = (value is None or isinstance(value, str)) and value in self.choices
        return None if ok else f"must be {self.allowed}, {_got(value)}"


Option = IntOption | IntsOption | BoolOption | ChoiceOption

# equal to workers.models.NORMS (a test checks it)
NORMS: tuple[str | None, ...] = (None, "layernorm", "batchnorm")

# Each builder's keyword arguments after input_shape/num_classes, with its defaults. The ranges
# reach well past the published sizes and only catch typos and nonsense; the parameter limit of
# model_option_problems is what bounds the cost of a combination.
MODEL_OPTIONS: dict[str, dict[str, Option]] = {
    "mlp": {
        "width": IntOption(1, 65_536, 256),
        "depth": IntOption(0, 64, 2),
        "norm": ChoiceOption(NORMS, None),
    },
    "cnn1d": {"channels": IntOption(1, 4096, 25)},
    "cnn": {
        "channels": IntsOption(2, 1, 4096, (32, 64)),
        "hidden": IntOption(1, 65_536, 128),
        "batchnorm": BoolOption(False),
    },
    "resnet20": {"width": IntOption(1, 1024, 16)},
    "resnet18": {},
}


@dataclass(frozen=True)
class DatasetShape:
    """What a model is built for: one sample's shape and the number of classes."""

    input_shape: tuple[int, ...]
    num_classes: int


# what workers.data.load_dataset reports (a test loads every dataset to check)
DATASET_SHAPES: dict[str, DatasetShape] = {
    "mnist1d": DatasetShape((40,), 10),
    "digits": DatasetShape((1, 8, 8), 10),
    "mnist": DatasetShape((1, 28, 28), 10),
    "fashion_mnist": DatasetShape((1, 28, 28), 10),
    "cifar10": DatasetShape((3, 32, 32), 10),
    "cifar100": DatasetShape((3, 32, 32), 100),
}


# ---------------------------------------------------------------------------------------------
# Which inputs each builder takes


# the kernels of the MNIST-1D paper's ConvBase, all with stride 2 and padding 1 (workers.models)
_CNN1D_KERNELS = (5, 3, 3)


def _cnn1d_length(length: int) -> int:
    for kernel in _CNN1D_KERNELS:
        length = (length + 2 - kernel) // 2 + 1
    return length


def _sequence_problem(shape: tuple[int, ...]) -> str | None:
    if len(shape) not in (1, 2):
        return "needs 1-D inputs [L] or [C, L]"
    return None if _cnn1d_length(shape[-1]) >= 1 else "needs sequences of length >= 12"


def _image_problem(shape: tuple[int, ...]) -> str | None:
    return None if len(shape) == 3 else "needs image inputs [C, H, W]"


def _any_input(shape: tuple[int, ...]) -> str | None:
    return None  # the MLP flattens whatever it gets


_INPUT_CHECKS: dict[str, Callable[[tuple[int, ...]], str | None]] = {
    "mlp": _any_input,
    "cnn1d": _sequence_problem,
    "cnn": _image_problem,
    "resnet20": _image_problem,
    "resnet18": _image_problem,
}


def compatible_datasets(model: str) -> tuple[str, ...]:
    """The datasets whose inputs `model` can be built for."""
    check = _INPUT_CHECKS[model]
    return tuple(name for name, data in DATASET_SHAPES.items() if check(data.input_shape) is None)


# ---------------------------------------------------------------------------------------------
# Parameter counts, layer by layer as the builders lay them out


def _linear(fan_in: int, fan_out: int) -> int:
    return fan_in * fan_out + fan_out


def _conv_bn(c_in: int, c_out: int, kernel: int) -> int:
    # a convolution without bias (the batch norm's shift replaces it), then gain and shift
    return c_in * c_out * kernel * kernel + 2 * c_out


def _mlp(data: DatasetShape, width: int, depth: int, norm: str | None) -> int:
    fan_in, total = math.prod(data.input_shape), 0
    for _ in range(depth):
        total += _linear(fan_in, width) + (2 * width if norm is not None else 0)
        fan_in = width
    return total + _linear(fan_in, data.num_classes)


def _cnn1d(data: DatasetShape, channels: int) -> int:
    shape = data.input_shape
    c_in, total = (shape[0] if len(shape) == 2 else 1), 0
    for kernel in _CNN1D_KERNELS:
        total += c_in * channels * kernel + channels
        c_in = channels
    return total + _linear(channels * _cnn1d_length(shape[-1]), data.num_classes)


def _cnn(data: DatasetShape, channels: tuple[int, ...], hidden: int, batchnorm: bool) -> int:
    c_in, total = data.input_shape[0], 0
    for c_out in channels:
        # with batch norm the conv has no bias, and the norm adds a gain and a shift
        total += c_in * c_out * 9 + (2 * c_out if batchnorm else c_out)
        c_in = c_out
    # adaptive pooling to 4×4 makes the head independent of the image size
    return total + _linear(c_in * 16, hidden) + _linear(hidden, data.num_classes)


def _basic_blocks(c_in: int, widths: tuple[int, ...], blocks: int, projection: bool) -> int:
    """Stages of 3×3 basic blocks; `projection`: a 1×1 conv + BN shortcut where the shape changes
    (torchvision), else option A's parameter-free one (He et al.'s CIFAR ResNets)."""
    total = 0
    for stage, c_out in enumerate(widths):
        for i in range(blocks):
            total += _conv_bn(c_in, c_out, 3) + _conv_bn(c_out, c_out, 3)
            reshapes = (stage > 0 and i == 0) or c_in != c_out
            total += _conv_bn(c_in, c_out, 1) if projection and reshapes else 0
            c_in = c_out
    return total


def _resnet20(data: DatasetShape, width: int) -> int:
    widths = (width, 2 * width, 4 * width)
    stem = _conv_bn(data.input_shape[0], width, 3)
    blocks = _basic_blocks(width, widths, 3, projection=False)
    return stem + blocks + _linear(widths[-1], data.num_classes)


def _resnet18(data: DatasetShape) -> int:
    widths = (64, 128, 256, 512)
    stem = _conv_bn(data.input_shape[0], 64, 3)  # the CIFAR stem: 3×3 conv, no max-pool
    blocks = _basic_blocks(64, widths, 2, projection=True)
    return stem + blocks + _linear(widths[-1], data.num_classes)


_COUNTS: dict[str, Callable[..., int]] = {
    "mlp": _mlp,
    "cnn1d": _cnn1d,
    "cnn": _cnn,
    "resnet20": _resnet20,
    "resnet18": _resnet18,
}


# ---------------------------------------------------------------------------------------------
# The public checks


def _unknown_problem(model: str, name: str, value: object) -> Problem:
    known = ", ".join(MODEL_OPTIONS[model]) or "none"
    return (*OPTIONS_LOC, name), f"{model} has no option {name!r}; its options: {known}", value


def _input_problems(model: str, dataset: str) -> list[Problem]:
    shape = DATASET_SHAPES[dataset].input_shape
    mismatch = _INPUT_CHECKS[model](shape)
    if mismatch is None:
        return []
    fits = ", ".join(compatible_datasets(model))
    message = f"{model} {mismatch}; {dataset} has inputs {list(shape)}; use it with: {fits}"
    return [(MODEL_LOC, message, model)]


def _option_problems(model: str, options: Mapping[str, object], dataset: str) -> list[Problem]:
    """Every problem but the size: unknown names, input mismatch, each option's type and range."""
    if model not in MODEL_OPTIONS:
        return [(MODEL_LOC, f"unknown model {model!r}; known: {', '.join(MODEL_OPTIONS)}", model)]
    if dataset not in DATASET_SHAPES:
        known = ", ".join(DATASET_SHAPES)
        return [(("task", "dataset"), f"unknown dataset {dataset!r}; known: {known}", dataset)]
    problems = _input_problems(model, dataset)
    for name, value in options.items():
        spec = MODEL_OPTIONS[model].get(name)
        if spec is None:
            problems.append(_unknown_problem(model, name, value))
        elif (reason := spec.problem(value)) is not None:
            problems.append(((*OPTIONS_LOC, name), f"{model} option {name!r} {reason}", value))
    return problems


def _resolved(model: str, options: Mapping[str, object]) -> dict[str, Any]:
    return {name: options.get(name, spec.default) for name, spec in MODEL_OPTIONS[model].items()}


def _is_size(spec: Option) -> bool:
    return isinstance(spec, IntOption | IntsOption)


def estimate_parameters(model: str, options: Mapping[str, object], dataset: str) -> int:
    """The exact number of trainable parameters `model` with `options` has on `dataset`.

    Raises:
        ValueError: the model, dataset or an option is invalid (the message lists every problem).
    """
    problems = _option_problems(model, options, dataset)
    if problems:
        raise ValueError("; ".join(message for _, message, _ in problems))
    return _COUNTS[model](DATASET_SHAPES[dataset], **_resolved(model, options))


def model_option_problems(
    model: str, options: Mapping[str, object], dataset: str, *, max_parameters: int | None = None
) -> list[Problem]:
    """The (loc, message, value) problems of a task's model, options and dataset; [] if none.

    Args:
        max_parameters: the most trainable parameters one trial's model may have (None: any).
    """
    problems = _option_problems(model, options, dataset)
    if problems or max_parameters is None:
        return problems  # the size of an invalid model means nothing
    count = estimate_parameters(model, options, dataset)
    if count <= max_parameters:
        return []
    sizes = [name for name, spec in MODEL_OPTIONS[model].items() if _is_size(spec)]
    advice = f"make {' or '.join(sizes)} smaller" if sizes else "choose a smaller model"
    message = (
        f"{model} on {dataset} would have {count:,} trainable parameters, more than the limit "
        f"of {max_parameters:,} per trial; {advice}"
    )
    return [(OPTIONS_LOC, message, dict(options))]
