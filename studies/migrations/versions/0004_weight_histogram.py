"""The final |w| histogram of a trial: dl_trial.weight_histogram.

At its last epoch a trial counts its decayed weights per decade of |w| (and its exact zeros):
the sparsity picture of the pWD paper, which the report draws for the best pWD and decoupled
trials. One JSON document per trial, null until the trial has finished its last epoch.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("dl_trial", sa.Column("weight_histogram", JSON, nullable=True))


def downgrade() -> None:
    # a plain DROP COLUMN (SQLite >= 3.35): a batch copy of dl_trial would trip over the views
    op.drop_column("dl_trial", "weight_histogram")
