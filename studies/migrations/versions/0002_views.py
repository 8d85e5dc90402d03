"""Create the SQL views for people: dl_trial_summary and dl_epoch_metrics.

The SQL is written out here, not imported from studies.views: a revision must keep creating
the views of its own schema even after later revisions change them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FINAL_METRICS = (
    "val_acc",
    "val_loss",
    "train_acc",
    "train_loss",
    "test_acc",
    "pruned_val_acc",
    "sparsity",
)
MORE_FINAL_METRICS = ("zero_frac", "weight_norm", "angular_update", "best_val_acc")
# sparsity at every threshold, kept in final_metrics JSON under "sparsity@1e-08" style names
THRESHOLDS = ("1e-10", "1e-08", "1e-06", "1e-04", "1e-03")
DECADES = range(1, -13, -1)  # λ decades 1e1 ... 1e-12; smaller (and 0) fall to 0


def _json_float(dialect: str, key: str) -> str:
    if dialect == "postgresql":
        return f"(t.final_metrics ->> '{key}')::double precision"
    return f"json_extract(t.final_metrics, '$.\"{key}\"')"


def _p_bucket(dialect: str) -> str:
    # p > 0, so truncation is floor; PostgreSQL's float-to-int cast rounds, hence FLOOR there,
    # and SQLite builds without math functions have no FLOOR, hence CAST there
    if dialect == "postgresql":
        return "FLOOR(t.p * 4) / 4"
    return "CAST(t.p * 4 AS INTEGER) / 4.0"


def _lam_decade(dialect: str) -> str:
    # a CASE ladder instead of LOG10, which SQLite builds without math functions lack;
    # PostgreSQL reads 1e-3 as numeric, and the column should be a float like lam
    typed = "::double precision" if dialect == "postgresql" else ""
    steps = " ".join(f"WHEN t.lam >= 1e{d} THEN 1e{d}{typed}" for d in DECADES)
    return f"CASE WHEN t.lam IS NULL THEN NULL {steps} ELSE 0.0{typed} END"


def trial_summary_sql(dialect: str) -> str:
    sparsity = [
        f"{_json_float(dialect, f'sparsity@{tau}')} AS sparsity_{tau.replace('-', '_')}"
        for tau in THRESHOLDS
    ]
    columns = [
        "t.study_id", "s.name AS study", "s.status AS study_status", "t.id AS trial_id",
        "t.number AS trial", "t.state", "t.config_id", "t.replicate", "t.seed", "t.family",
        "t.p", f"{_p_bucket(dialect)} AS p_bucket",
        "t.lam", f"{_lam_decade(dialect)} AS lam_decade",
        "t.schedule", "t.until", "t.start", "t.lr", "t.epochs_done",
        *(f"t.{name}" for name in FINAL_METRICS), *sparsity,
        *(f"t.{name}" for name in MORE_FINAL_METRICS), "t.diverged_epoch",
        "t.decayed_param_count", "t.non_decayed_param_count", "t.node", "t.started_at",
        "t.finished_at",
    ]  # fmt: skip
    return (
        "CREATE VIEW dl_trial_summary AS SELECT "
        + ", ".join(columns)
        + " FROM dl_trial t JOIN dl_study s ON s.id = t.study_id"
    )


EPOCH_METRICS_SQL = (
    "CREATE VIEW dl_epoch_metrics AS SELECT t.study_id, s.name AS study, t.number AS trial, "
    "t.state, t.family, t.p, t.lam, t.schedule, t.seed, m.epoch, m.name, m.value "
    "FROM dl_metric m JOIN dl_trial t ON t.id = m.trial_id JOIN dl_study s ON s.id = t.study_id"
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute(trial_summary_sql(dialect))
    op.execute(EPOCH_METRICS_SQL)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS dl_epoch_metrics")
    op.execute("DROP VIEW IF EXISTS dl_trial_summary")
