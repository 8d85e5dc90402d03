"""The export streams: one chunk (and one Parquet row group) per batch, read back intact."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pyarrow.parquet as pq

from service.export import EPOCH_SCHEMA, csv_stream, parquet_stream, trial_schema

BATCHES = [
    [(0, 1, "val_acc", 0.5), (0, 1, "sparsity", None)],
    [(1, 1, "val_acc", 0.25)],
    [],
    [(2, 3, "val_acc", 1.0)],
]


def test_parquet_is_written_one_row_group_per_non_empty_batch() -> None:
    chunks = list(parquet_stream(EPOCH_SCHEMA, BATCHES))
    assert len(chunks) == len(BATCHES) + 1 and all(chunks[:2])  # bytes leave batch by batch
    data = io.BytesIO(b"".join(chunks))
    assert pq.ParquetFile(data).metadata.num_row_groups >= 3
    table = pq.read_table(data)
    rows = [row for batch in BATCHES for row in batch]
    assert table.to_pylist() == [dict(zip(EPOCH_SCHEMA.names, row, strict=True)) for row in rows]


def test_csv_writes_the_header_first_and_null_as_an_empty_cell() -> None:
    text = b"".join(csv_stream(EPOCH_SCHEMA.names, BATCHES)).decode()
    assert text.splitlines() == [
        "trial,epoch,name,value", "0,1,val_acc,0.5", "0,1,sparsity,", "1,1,val_acc,0.25",
        "2,3,val_acc,1.0",
    ]  # fmt: skip


def test_csv_writes_timestamps_in_iso_format() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    text = b"".join(csv_stream(["at"], [[(when,)]])).decode()
    assert text.splitlines() == ["at", "2026-01-02T03:04:05+00:00"]


def test_trial_schema_types_searched_params_by_their_spec_type() -> None:
    spec = {"space": {"p": {"type": "float"}, "momentum": {"type": "float"},
                      "batch_size": {"type": "categorical"}}}  # fmt: skip
    schema = trial_schema(spec)
    assert "momentum" in schema.names and "batch_size" in schema.names
    assert str(schema.field("momentum").type) == "double"
    assert str(schema.field("batch_size").type) == "string"
    assert schema.names.count("p") == 1  # a core parameter keeps its typed column only
