"""Streamed exports of a study: one row per trial or per (trial, epoch, metric), CSV or Parquet.

Rows come from the repository in batches and leave as bytes batch by batch, so an export of
millions of metric rows never sits in memory whole. Parquet gets one row group per batch.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.orm import Session, sessionmaker

from studies import repository
from studies.catalog import FINAL_METRICS, api_name
from studies.db import FINAL_METRIC_COLUMNS

Row = tuple[Any, ...]
# (column, Trial attribute, arrow type) of the per-trial table, parameters under spec names
TRIAL_FIELDS: tuple[tuple[str, str, pa.DataType], ...] = (
    ("trial", "number", pa.int64()),
    ("state", "state", pa.string()),
    ("config_id", "config_id", pa.int64()),
    ("replicate", "replicate", pa.int64()),
    ("seed", "seed", pa.int64()),
    ("family", "family", pa.string()),
    ("p", "p", pa.float64()),
    (api_name("lam"), "lam", pa.float64()),
    ("schedule", "schedule", pa.string()),
    ("until", "until", pa.float64()),
    (api_name("start"), "start", pa.float64()),
    ("lr", "lr", pa.float64()),
    ("epochs_done", "epochs_done", pa.int64()),
    ("best_val_acc", "best_val_acc", pa.float64()),
    ("decayed_param_count", "decayed_param_count", pa.int64()),
    ("non_decayed_param_count", "non_decayed_param_count", pa.int64()),
    ("node", "node", pa.string()),
    ("started_at", "started_at", pa.timestamp("us", tz="UTC")),
    ("finished_at", "finished_at", pa.timestamp("us", tz="UTC")),
)
CORE_PARAMS = {"p", "lambda", "schedule", "until", "from", "lr", "seed", "family"}
EPOCH_SCHEMA = pa.schema(
    [("trial", pa.int64()), ("epoch", pa.int64()), ("name", pa.string()),
     ("value", pa.float64())]
)  # fmt: skip


def extra_params(spec: dict[str, Any]) -> list[str]:
    """Searched parameters without a typed column (momentum, batch_size, warmup, ...)."""
    return [name for name in spec.get("space", {}) if name not in CORE_PARAMS]


def trial_schema(spec: dict[str, Any]) -> pa.Schema:
    """Columns of the per-trial table: typed parameters, other searched ones, final metrics."""
    fields = [(name, kind) for name, _, kind in TRIAL_FIELDS]
    for name in extra_params(spec):
        numeric = spec["space"][name]["type"] in ("float", "int")
        fields.append((name, pa.float64() if numeric else pa.string()))
    fields += [(metric, pa.float64()) for metric in FINAL_METRICS]
    return pa.schema(fields)


def _trial_columns(extras: list[str]) -> tuple[list[str], Callable[[tuple[Any, ...]], Row]]:
    """The dl_trial columns to read, and how one read row becomes an export row."""
    typed = [attribute for _, attribute, _ in TRIAL_FIELDS]
    metric_columns = [m for m in FINAL_METRICS if m in FINAL_METRIC_COLUMNS]
    columns = [*typed, *metric_columns, "params", "final_metrics"]
    at = {name: i for i, name in enumerate(columns)}
    width = len(typed)

    def row(values: tuple[Any, ...]) -> Row:
        params, final = values[-2], values[-1]
        metrics = [values[at[m]] if m in at else _finite(final.get(m)) for m in FINAL_METRICS]
        return (*values[:width], *(params.get(name) for name in extras), *metrics)

    return columns, row


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def trial_batches(
    sessions: sessionmaker[Session], study_id: str, extras: list[str]
) -> Iterator[list[Row]]:
    """The per-trial rows, from a session of the stream's own (the request's is closed)."""
    columns, row = _trial_columns(extras)
    with sessions() as session:
        for batch in repository.iter_trial_rows(
            session=session, study_id=study_id, columns=columns
        ):
            yield [row(values) for values in batch]


def epoch_batches(sessions: sessionmaker[Session], study_id: str) -> Iterator[list[Row]]:
    with sessions() as session:
        yield from repository.iter_epoch_metrics(session=session, study_id=study_id)


def _cell(value: Any) -> Any:
    # csv writes None as "" already; datetimes get ISO 8601 rather than str()'s space
    return value.isoformat() if isinstance(value, datetime) else value


def csv_stream(columns: list[str], batches: Iterable[list[Row]]) -> Iterator[bytes]:
    """CSV text, the header first, one chunk per batch; NULL is an empty cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for batch in batches:
        writer.writerows([_cell(v) for v in row] for row in batch)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue().encode()


class _Chunks(io.RawIOBase):
    """A write-only file that hands over what was written since the last `take`."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


def _parquet_value(value: Any, kind: pa.DataType) -> Any:
    if value is not None and pa.types.is_string(kind) and not isinstance(value, str):
        return str(value)  # a categorical parameter with a non-text choice
    return value


def parquet_stream(schema: pa.Schema, batches: Iterable[list[Row]]) -> Iterator[bytes]:
    """A Parquet file written one row group per batch, each group sent once written."""
    sink = _Chunks()
    kinds = [field.type for field in schema]
    with pq.ParquetWriter(sink, schema) as writer:
        for batch in batches:
            columns = list(zip(*batch, strict=True)) if batch else [()] * len(kinds)
            arrays = [
                pa.array([_parquet_value(v, kind) for v in column], type=kind)
                for column, kind in zip(columns, kinds, strict=True)
            ]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            yield sink.take()
    yield sink.take()
