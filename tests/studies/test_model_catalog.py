"""Model options are checked at submit, and parameter counts equal the real torch models'."""

from __future__ import annotations

import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from studies.catalog import DATASET_NAMES, MODEL_NAMES
from studies.model_catalog import (
    DATASET_SHAPES,
    DEFAULT_MAX_PARAMETERS,
    MODEL_OPTIONS,
    NORMS,
    compatible_datasets,
    estimate_parameters,
    model_option_problems,
)

ROOT = Path(__file__).parents[2]
LIMIT = DEFAULT_MAX_PARAMETERS


@pytest.fixture(scope="module")
def models() -> ModuleType:
    return pytest.importorskip("workers.models")


# ---------------------------------------------------------------------------------------------
# (a) the arithmetic count equals torch's, for every model, option combination and dataset

OPTION_TABLE: dict[str, list[dict]] = {
    "mlp": [
        {},
        {"depth": 0},
        {"width": 7, "depth": 3, "norm": "layernorm"},
        {"width": 33, "depth": 1, "norm": "batchnorm"},
        {"width": 1, "depth": 4, "norm": None},
    ],
    "cnn1d": [{}, {"channels": 1}, {"channels": 64}],
    "cnn": [
        {},
        {"batchnorm": True},
        {"channels": (8, 16), "hidden": 32},
        {"channels": [3, 5], "hidden": 1, "batchnorm": True},  # JSON brings lists
    ],
    "resnet20": [{}, {"width": 1}, {"width": 3}, {"width": 24}],
    "resnet18": [{}],
}
COUNT_CASES = [
    (model, options, dataset)
    for model, table in OPTION_TABLE.items()
    for options in table
    for dataset in compatible_datasets(model)
]


def test_the_count_table_covers_every_model() -> None:
    assert set(OPTION_TABLE) == set(MODEL_NAMES) == set(MODEL_OPTIONS)
    assert {model for model, _, _ in COUNT_CASES} == set(MODEL_NAMES)


@pytest.mark.parametrize(("model", "options", "dataset"), COUNT_CASES)
def test_estimate_equals_the_torch_models_parameter_count(
    models: ModuleType, model: str, options: dict, dataset: str
) -> None:
    data = DATASET_SHAPES[dataset]
    net = models.build_model(
        model, input_shape=data.input_shape, num_classes=data.num_classes, **options
    )
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert estimate_parameters(model, options, dataset) == trainable


@pytest.mark.parametrize(
    ("model", "dataset", "published"),
    [("resnet20", "cifar10", 269_722), ("resnet18", "cifar10", 11_173_962)],
)
def test_estimate_gives_the_published_sizes(model: str, dataset: str, published: int) -> None:
    assert estimate_parameters(model, {}, dataset) == published


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_compatible_datasets_are_exactly_those_the_model_builds_and_runs_on(
    models: ModuleType, model: str
) -> None:
    torch = pytest.importorskip("torch")
    for dataset in DATASET_NAMES:
        data = DATASET_SHAPES[dataset]
        build = (model, data.input_shape, data.num_classes)
        if dataset not in compatible_datasets(model):
            with pytest.raises(ValueError, match=f"{model} needs"):
                models.build_model(build[0], input_shape=build[1], num_classes=build[2])
            continue
        net = models.build_model(build[0], input_shape=build[1], num_classes=build[2]).eval()
        with torch.no_grad():
            assert net(torch.zeros(2, *data.input_shape)).shape == (2, data.num_classes)


# ---------------------------------------------------------------------------------------------
# (b) the catalog cannot drift from the builders and the loaders


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_options_and_defaults_equal_the_builders_keyword_arguments(
    models: ModuleType, model: str
) -> None:
    params = inspect.signature(models.MODELS[model]).parameters
    builder = {n: p.default for n, p in params.items() if n not in ("input_shape", "num_classes")}
    ours = {name: spec.default for name, spec in MODEL_OPTIONS[model].items()}
    assert ours == builder


def test_norm_choices_equal_the_builders(models: ModuleType) -> None:
    assert NORMS == models.NORMS


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_every_default_passes_its_own_check(model: str) -> None:
    for name, spec in MODEL_OPTIONS[model].items():
        assert spec.problem(spec.default) is None, name


def _formats() -> ModuleType:
    # the writers of tiny files in the real torchvision formats, shared with tests/workers
    path = ROOT / "tests" / "workers" / "formats.py"
    spec = importlib.util.spec_from_file_location("dataset_formats", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dataset_shapes_equal_what_the_loaders_produce(tmp_path: Path) -> None:
    data = pytest.importorskip("workers.data")
    writers = _formats().WRITERS
    assert tuple(DATASET_SHAPES) == DATASET_NAMES
    for name, expected in DATASET_SHAPES.items():
        if name in writers:
            writers[name](tmp_path)
        loaded = data.load_dataset(name, data_dir=tmp_path)
        assert (loaded.input_shape, loaded.num_classes) == (
            expected.input_shape,
            expected.num_classes,
        )


def test_the_catalog_imports_no_torch() -> None:
    code = (
        "import sys, studies.model_catalog; "
        "print(sorted(m for m in ('torch', 'ray', 'fastapi') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# (c) bad options are refused at the field to change, with a message naming the option


def _at(option: str) -> tuple[str, ...]:
    return ("task", "model_options", option)


MODEL = ("task", "model")
BAD_OPTIONS = [
    # model, dataset, options, loc, substrings of the message
    ("mlp", "mnist1d", {"widht": 64}, _at("widht"), ["'widht'", "width, depth, norm"]),
    ("resnet18", "cifar10", {"width": 2}, _at("width"), ["resnet18 has no option 'width'"]),
    ("mlp", "mnist1d", {"width": -1}, _at("width"), ["'width'", "1..65536", "-1"]),
    ("mlp", "mnist1d", {"depth": -1}, _at("depth"), ["'depth'", "0..64"]),
    ("mlp", "mnist1d", {"width": 0}, _at("width"), ["'width'", "1..65536", "got 0"]),
    ("mlp", "mnist1d", {"width": 10**9}, _at("width"), ["'width'", "1..65536", "1000000000"]),
    ("mlp", "mnist1d", {"width": 1e9}, _at("width"), ["'width'", "integer", "(float)"]),
    ("mlp", "mnist1d", {"width": True}, _at("width"), ["'width'", "True (bool)"]),
    ("mlp", "mnist1d", {"width": 256.0}, _at("width"), ["'width'", "256.0 (float)"]),
    ("mlp", "mnist1d", {"width": "256"}, _at("width"), ["'width'", "'256' (str)"]),
    ("mlp", "mnist1d", {"norm": "groupnorm"}, _at("norm"), ["'norm'", "'layernorm', 'batchnorm'"]),
    ("mlp", "mnist1d", {"norm": True}, _at("norm"), ["'norm'", "True (bool)"]),
    ("cnn", "digits", {"batchnorm": 1}, _at("batchnorm"), ["'batchnorm'", "true or false"]),
    ("cnn", "digits", {"batchnorm": "yes"}, _at("batchnorm"), ["'batchnorm'", "'yes' (str)"]),
    ("cnn", "digits", {"hidden": 0}, _at("hidden"), ["'hidden'", "1..65536"]),
    ("cnn", "digits", {"channels": 32}, _at("channels"), ["'channels'", "a list of 2 integers"]),
    ("cnn", "digits", {"channels": [32, 0]}, _at("channels"), ["'channels'", "1..4096"]),
    ("cnn", "digits", {"channels": [8, 8, 8]}, _at("channels"), ["'channels'", "2 integers"]),
    ("cnn1d", "mnist1d", {"channels": 0}, _at("channels"), ["'channels'", "1..4096"]),
    ("resnet20", "cifar10", {"width": 4096}, _at("width"), ["'width'", "1..1024"]),
    ("cnn1d", "cifar10", {}, MODEL, ["cnn1d needs 1-D inputs", "use it with: mnist1d"]),
    ("resnet18", "mnist1d", {}, MODEL, ["resnet18 needs image inputs", "mnist1d has inputs [40]"]),
    ("cnn", "mnist1d", {}, MODEL, ["cnn needs image inputs", "use it with: digits, mnist"]),
]


@pytest.mark.parametrize(("model", "dataset", "options", "loc", "words"), BAD_OPTIONS)
def test_bad_options_are_refused_at_their_field(
    model: str, dataset: str, options: dict, loc: tuple, words: list[str]
) -> None:
    problems = model_option_problems(model, options, dataset, max_parameters=LIMIT)
    assert len(problems) == 1
    (got_loc, message, _value) = problems[0]
    assert got_loc == loc
    for word in words:
        assert word in message
    with pytest.raises(ValueError, match=re.escape(message)):
        estimate_parameters(model, options, dataset)


def test_every_problem_is_reported_at_once() -> None:
    options = {"width": 0, "depth": 1.5, "act": "relu"}
    problems = model_option_problems("mlp", options, "mnist1d", max_parameters=LIMIT)
    locs = [loc for loc, _, _ in problems]
    assert locs == [_at("width"), _at("depth"), _at("act")]
    assert [value for _, _, value in problems] == [0, 1.5, "relu"]


def test_a_model_over_the_parameter_limit_names_its_size_and_the_limit() -> None:
    options = {"width": 65_536, "depth": 8}  # every option in range, 3·10^10 weights in all
    count = estimate_parameters("mlp", options, "mnist1d")
    assert count == 40 * 65_536 + 65_536 + 7 * (65_536**2 + 65_536) + 65_536 * 10 + 10
    problems = model_option_problems("mlp", options, "mnist1d", max_parameters=LIMIT)
    assert len(problems) == 1
    loc, message, value = problems[0]
    assert loc == ("task", "model_options") and value == options
    assert f"{count:,}" in message and f"{LIMIT:,}" in message
    assert "width or depth" in message


def test_the_parameter_limit_is_inclusive() -> None:
    count = estimate_parameters("resnet18", {}, "cifar10")
    assert model_option_problems("resnet18", {}, "cifar10", max_parameters=count) == []
    [(loc, message, _)] = model_option_problems(
        "resnet18", {}, "cifar10", max_parameters=count - 1
    )
    assert loc == ("task", "model_options") and "choose a smaller model" in message


@pytest.mark.parametrize(
    "path", sorted((ROOT / "studies" / "examples").glob("*.yaml")), ids=lambda p: p.name
)
def test_bundled_examples_have_valid_model_options(path: Path) -> None:
    task = yaml.safe_load(path.read_text())["task"]
    options = task.get("model_options", {})
    assert (
        model_option_problems(task["model"], options, task["dataset"], max_parameters=LIMIT) == []
    )
