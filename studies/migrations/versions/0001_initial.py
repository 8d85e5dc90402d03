"""Create the decaylab tables: dl_study, dl_trial, dl_metric.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
STUDY_STATUSES = "'queued', 'running', 'succeeded', 'failed', 'cancelled'"
TRIAL_STATES = "'running', 'completed', 'pruned', 'failed', 'diverged', 'cancelled'"
FINAL_METRICS = (
    "val_acc",
    "val_loss",
    "train_acc",
    "train_loss",
    "test_acc",
    "pruned_val_acc",
    "sparsity",
    "zero_frac",
    "weight_norm",
    "angular_update",
)


def _timestamp(name: str, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _floats(*names: str) -> list[sa.Column[Any]]:
    return [sa.Column(name, sa.Float(), nullable=True) for name in names]


def upgrade() -> None:
    op.create_table(
        "dl_study",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ray_job_id", sa.String(200), nullable=True),
        sa.Column("optuna_study_name", sa.String(200), nullable=False),
        _timestamp("created_at", nullable=False),
        _timestamp("started_at"),
        _timestamp("finished_at"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(f"status IN ({STUDY_STATUSES})", name="ck_dl_study_status"),
        sa.PrimaryKeyConstraint("id", name="pk_dl_study"),
        sa.UniqueConstraint("optuna_study_name", name="uq_dl_study_optuna_study_name"),
    )
    op.create_index("ix_dl_study_name", "dl_study", ["name"])
    op.create_index("ix_dl_study_status", "dl_study", ["status"])

    op.create_table(
        "dl_trial",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("study_id", sa.String(36), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("optuna_trial_number", sa.Integer(), nullable=True),
        sa.Column("tune_trial_id", sa.String(64), nullable=True),
        sa.Column("replicate", sa.Integer(), nullable=False),
        sa.Column("config_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("family", sa.String(32), nullable=True),
        *_floats("p", "lam"),
        sa.Column("schedule", sa.String(16), nullable=True),
        *_floats("until", "start", "lr"),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("params", JSON, nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("provenance", JSON, nullable=False),
        *_floats(*FINAL_METRICS),
        sa.Column("final_metrics", JSON, nullable=False),
        sa.Column("best_val_acc", sa.Float(), nullable=True),
        sa.Column("epochs_done", sa.Integer(), nullable=False),
        sa.Column("diverged_epoch", sa.Integer(), nullable=True),
        sa.Column("decayed_param_count", sa.BigInteger(), nullable=True),
        sa.Column("non_decayed_param_count", sa.BigInteger(), nullable=True),
        sa.Column("node", sa.String(200), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _timestamp("started_at", nullable=False),
        _timestamp("finished_at"),
        sa.CheckConstraint(f"state IN ({TRIAL_STATES})", name="ck_dl_trial_state"),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["dl_study.id"],
            name="fk_dl_trial_study_id_dl_study",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_dl_trial"),
        sa.UniqueConstraint("study_id", "number", name="uq_dl_trial_study_number"),
        sa.UniqueConstraint("study_id", "tune_trial_id", name="uq_dl_trial_study_tune_trial"),
    )
    op.create_index("ix_dl_trial_study_state", "dl_trial", ["study_id", "state"])
    op.create_index("ix_dl_trial_study_config", "dl_trial", ["study_id", "config_id"])

    op.create_table(
        "dl_metric",
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["trial_id"],
            ["dl_trial.id"],
            name="fk_dl_metric_trial_id_dl_trial",
            ondelete="CASCADE",
        ),
        # serves one metric of one trial over time, and the last epoch of each trial
        sa.PrimaryKeyConstraint("trial_id", "name", "epoch", name="pk_dl_metric"),
    )


def downgrade() -> None:
    op.drop_table("dl_metric")
    op.drop_table("dl_trial")
    op.drop_table("dl_study")
