"""`python -m workers.trial`: one trial from a YAML/JSON file, a table per epoch, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workers.trial import main

TINY = """\
dataset: digits
model: mlp
model_options: {width: 32}
epochs: 2
batch_size: 64
lr: 3.0e-3
family: pwd
p: 0.8
threads: 1
"""
TABLE_COLUMNS = ["epoch", "train_loss", "val_acc", "lr", "wd", "weight_norm", "sparsity"]


def run_command(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command as a researcher types it, in a fresh interpreter."""
    command = [sys.executable, "-m", "workers.trial", *map(str, args)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_tiny_config_prints_one_row_per_epoch_and_the_result(tmp_path: Path) -> None:
    config = tmp_path / "trial.yaml"
    config.write_text(TINY)
    done = run_command(config, "--set", "lam=1e-3", "--data-dir", tmp_path, "--json", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    header, first, second, summary, record = done.stdout.strip().splitlines()
    assert header.split()[: len(TABLE_COLUMNS)] == TABLE_COLUMNS
    for epoch, row in enumerate((first, second), start=1):
        cells = row.split()
        assert len(row) == len(header) and len(cells) == len(header.split())
        assert int(cells[0]) == epoch
        assert cells[header.split().index("wd")] == "1.00e-03"  # the --set override
    assert summary.startswith("completed: epochs=2 test_acc=0.")
    result = json.loads(record)
    assert result["status"] == "completed" and result["epochs_done"] == 2
    assert result["config"]["lam"] == 1e-3 and result["config"]["p"] == 0.8
    assert 0.0 <= result["final_metrics"]["test_acc"] <= 1.0


def test_json_config_runs_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "trial.json"
    values = {"dataset": "digits", "model": "mlp", "model_options": {"width": 16}, "epochs": 1}
    config.write_text(json.dumps({**values, "threads": 1}))

    assert main([str(config), "--data-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[-1].startswith("completed: epochs=1")


# file text, overrides, what the one-line message must name
INVALID = {
    "unknown key": (TINY + "frobnicate: 3\n", [], "frobnicate"),
    "negative p": (TINY, ["--set", "p=-1"], "p: "),
    "zero lr": (TINY, ["--set", "lr=0"], "lr: "),
    "early without until": (TINY, ["--set", "schedule=early"], "until"),
    "unknown model": (TINY, ["--set", "model=resnet50"], "resnet50"),
    "option the model lacks": (TINY, ["--set", "model=cnn1d"], "width"),
    "override without value": (TINY, ["--set", "p"], "key=value"),
    "not a mapping": ("- 1\n- 2\n", [], "mapping"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_config_exits_2_with_one_line_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    text, overrides, named = INVALID[case]
    config = tmp_path / "trial.yaml"
    config.write_text(text)

    assert main([str(config), *overrides, "--data-dir", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # not even the table header
    assert err.startswith("error: ") and err.count("\n") == 1
    assert named in err


def test_invalid_config_exit_status_and_no_traceback_from_the_command(tmp_path: Path) -> None:
    config = tmp_path / "trial.yaml"
    config.write_text(TINY)
    done = run_command(config, "--set", "p=-1", "--set", "colour=red", cwd=tmp_path)

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "error: p: Input should be greater than 0; colour: Extra inputs are not permitted"
    ]


@pytest.mark.parametrize(
    ("dataset", "expected_file"),
    [
        ("mnist", "MNIST/raw/train-images-idx3-ubyte"),
        ("fashion_mnist", "FashionMNIST/raw/t10k-labels-idx1-ubyte"),
        ("cifar10", "cifar-10-batches-py/data_batch_1"),
        ("cifar100", "cifar-100-python/train"),
    ],
)
def test_missing_torchvision_dataset_exits_2_naming_the_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dataset: str, expected_file: str
) -> None:
    empty = tmp_path / "no-data-here"
    empty.mkdir()
    config = tmp_path / "trial.yaml"
    config.write_text(TINY.replace("dataset: digits", f"dataset: {dataset}"))

    assert main([str(config), "--data-dir", str(empty)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert str(empty) in err and expected_file in err and "download" in err
