"""A covering index of dl_trial for the service's queries.

The trial list, best, Pareto and effects read a few typed columns of every trial of a study.
Without this index they read the whole rows, whose JSON documents (params, config, final
metrics, provenance) make them about six times wider than the entry here; with it they are
index-only scans, and the list and best sort narrow entries before fetching the rows they show.
The column list is written out: a revision keeps creating its own schema.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

INDEX = "ix_dl_trial_covering"
COLUMNS = (
    "study_id", "state", "number", "family", "schedule", "p", "lam", "until", "start", "lr",
    "seed", "config_id", "replicate", "epochs_done", "best_val_acc", "diverged_epoch",
    "val_acc", "val_loss", "train_acc", "train_loss", "test_acc", "pruned_val_acc", "sparsity",
    "zero_frac", "weight_norm", "angular_update",
)  # fmt: skip


def upgrade() -> None:
    op.create_index(INDEX, "dl_trial", list(COLUMNS))


def downgrade() -> None:
    op.drop_index(INDEX, table_name="dl_trial")
