"""Run one trial from a YAML/JSON config, without any service, printing the per-epoch table.

    python -m workers.trial config.yaml --set lam=1e-3 --set p=0.8

This is how a researcher debugs a configuration before sweeping it. The file holds the keys of
`studies.trial_config.TrialConfig` (flat: dataset, model, epochs, family, lam, p, schedule, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from studies.trial_config import TrialConfig
from workers.train import train

COLUMNS = (
    ("epoch", "{:>5d}"),
    ("train_loss", "{:>10.4f}"),
    ("val_acc", "{:>7.4f}"),
    ("lr", "{:>9.2e}"),
    ("wd", "{:>9.2e}"),
    ("weight_norm", "{:>11.3f}"),
    ("sparsity", "{:>8.4f}"),
    ("pruned_val_acc", "{:>14.4f}"),
    ("angular_update", "{:>14.2e}"),
)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs, values parsed as YAML scalars (so `1e-3`, `true`, `[0.9, 0.99]` work)."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def load_config(path: Path | None, overrides: dict[str, Any]) -> TrialConfig:
    """Read a trial config file (YAML or JSON) and apply overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(path.read_text())
        if not isinstance(loaded, dict):
            raise ValueError(
                f"{path}: expected a mapping of config keys, got {type(loaded).__name__}"
            )
        values.update(loaded)
    values.update(overrides)
    return TrialConfig.model_validate(values)


def format_row(epoch: int, metrics: dict[str, float]) -> str:
    """One table row; missing metrics print as '-'."""
    cells = []
    for name, fmt in COLUMNS:
        value = epoch if name == "epoch" else metrics.get(name)
        width = len(fmt.format(0 if name == "epoch" else 0.0))
        cells.append("-".rjust(width) if value is None else fmt.format(value))
    return "  ".join(cells)


def header() -> str:
    """The table header, aligned with `format_row`."""
    widths = [len(fmt.format(0 if n == "epoch" else 0.0)) for n, fmt in COLUMNS]
    return "  ".join(name.rjust(w) for (name, _), w in zip(COLUMNS, widths, strict=True))


def _validation_message(errors: list[Any] | None) -> str:
    """Pydantic errors as one line, each led by the field it is about."""
    parts = []
    for error in errors or []:
        # a cross-field check (the schedule's until/from) has no location; its text names them
        message = str(error["msg"]).removeprefix("Value error, ")
        where = ".".join(map(str, error["loc"]))
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _print_row(epoch: int, metrics: dict[str, float]) -> None:
    print(format_row(epoch, metrics), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m workers.trial`."""
    parser = argparse.ArgumentParser(prog="python -m workers.trial", description=__doc__)
    parser.add_argument("config", nargs="?", type=Path, help="YAML or JSON trial config")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data-dir", type=Path, default=Path(".decaylab/data"))
    parser.add_argument("--json", action="store_true", help="print the final result as JSON")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, parse_overrides(args.set))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        detail = exc.errors() if isinstance(exc, ValidationError) else None
        print(f"error: {_validation_message(detail) or exc}", file=sys.stderr)
        return 2
    started = False

    def on_start(info: dict[str, Any]) -> None:
        nonlocal started
        started = True
        print(header(), flush=True)

    try:
        result = train(config, _print_row, data_dir=args.data_dir, on_start=on_start)
    except (OSError, ValueError) as exc:
        # Before the first epoch these are the user's to fix (missing dataset files, an unknown
        # dataset or model, a model option the model lacks): one line, no traceback.
        if started:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    final = result.final_metrics
    print(
        f"{result.status}: epochs={result.epochs_done} test_acc={final.get('test_acc', 'n/a')} "
        f"decayed={result.decayed_param_count} non_decayed={result.non_decayed_param_count}"
    )
    if args.json:
        print(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
