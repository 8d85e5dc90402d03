"""Our tables, beside Optuna's in the same database (docs/architecture.md "Database").

Every table is prefixed `dl_` and our Alembic version table is `dl_alembic_version`, so nothing
collides with Optuna's `studies`, `trials`, ..., `alembic_version`. Column names are ones a person
can type in psql without quoting: λ is `lam`, the late schedule's `from` is `start`.

A metric value that is not finite (a diverged loss) is stored as NULL: SQLite turns NaN into NULL
anyway, and PostgreSQL's JSON refuses it, so both backends read back the same thing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from studies.states import StudyState, TrialState

# final metrics kept as typed columns of dl_trial (all of them are also in final_metrics JSON)
FINAL_METRIC_COLUMNS = (
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
# typed columns the service filters, sorts and aggregates on, covered by ix_dl_trial_covering
# (migration 0003): queries over every trial of a study read the index, not the wide rows
COVERED_TRIAL_COLUMNS = (
    "family", "schedule", "p", "lam", "until", "start", "lr", "seed", "config_id", "replicate",
    "epochs_done", "best_val_acc", "diverged_epoch", *FINAL_METRIC_COLUMNS,
)  # fmt: skip
VERSION_TABLE = "dl_alembic_version"
SQLITE_BUSY_TIMEOUT_MS = 30_000


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that comes back timezone-aware (UTC) from SQLite as from PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSONB on PostgreSQL so that `params->>'p'` works in psql and can be indexed
JSONDocument = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_study_id() -> str:
    return str(uuid.uuid4())


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class Base(DeclarativeBase):
    """Declarative base of the decaylab tables (Alembic's target metadata)."""

    # stable constraint names, so later migrations (and SQLite batch mode) can refer to them
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Study(Base):
    """One study: its spec as submitted (validated), its lifecycle and its Ray job."""

    __tablename__ = "dl_study"
    __table_args__ = (
        CheckConstraint(_one_of("status", tuple(StudyState)), name="ck_dl_study_status"),
        UniqueConstraint("optuna_study_name", name="uq_dl_study_optuna_study_name"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_study_id)
    name: Mapped[str] = mapped_column(String(200), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    status: Mapped[str] = mapped_column(String(16), default=StudyState.QUEUED.value, index=True)
    ray_job_id: Mapped[str | None] = mapped_column(String(200))
    optuna_study_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)


class Trial(Base):
    """One training run: a suggested configuration with one replicate seed.

    `number` counts our trials within a study from 0; `config_id` groups the replicates of one
    suggestion (e.g. the Optuna trial number), `replicate` is the seed index within it;
    `tune_trial_id` is Ray Tune's id of the run, which a retried trial keeps.
    """

    __tablename__ = "dl_trial"
    __table_args__ = (
        UniqueConstraint("study_id", "number", name="uq_dl_trial_study_number"),
        UniqueConstraint("study_id", "tune_trial_id", name="uq_dl_trial_study_tune_trial"),
        CheckConstraint(_one_of("state", tuple(TrialState)), name="ck_dl_trial_state"),
        Index("ix_dl_trial_study_state", "study_id", "state"),
        Index("ix_dl_trial_study_config", "study_id", "config_id"),
        Index("ix_dl_trial_covering", "study_id", "state", "number", *COVERED_TRIAL_COLUMNS),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("dl_study.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    optuna_trial_number: Mapped[int | None] = mapped_column(Integer)
    tune_trial_id: Mapped[str | None] = mapped_column(String(64))
    replicate: Mapped[int] = mapped_column(Integer, default=0)
    config_id: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=TrialState.RUNNING.value)
    # the core parameters, typed so that SQL can filter and group on them
    family: Mapped[str | None] = mapped_column(String(32))
    p: Mapped[float | None] = mapped_column(Float)
    lam: Mapped[float | None] = mapped_column(Float)
    schedule: Mapped[str | None] = mapped_column(String(16))
    until: Mapped[float | None] = mapped_column(Float)
    start: Mapped[float | None] = mapped_column(Float)
    lr: Mapped[float | None] = mapped_column(Float)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    params: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    config: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    # library versions and git revision of the code that trained: a result names what made it
    provenance: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    # final metrics (the last report), typed for the common ones
    val_acc: Mapped[float | None] = mapped_column(Float)
    val_loss: Mapped[float | None] = mapped_column(Float)
    train_acc: Mapped[float | None] = mapped_column(Float)
    train_loss: Mapped[float | None] = mapped_column(Float)
    test_acc: Mapped[float | None] = mapped_column(Float)
    pruned_val_acc: Mapped[float | None] = mapped_column(Float)
    sparsity: Mapped[float | None] = mapped_column(Float)
    zero_frac: Mapped[float | None] = mapped_column(Float)
    weight_norm: Mapped[float | None] = mapped_column(Float)
    angular_update: Mapped[float | None] = mapped_column(Float)
    final_metrics: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    best_val_acc: Mapped[float | None] = mapped_column(Float)
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    diverged_epoch: Mapped[int | None] = mapped_column(Integer)
    decayed_param_count: Mapped[int | None] = mapped_column(BigInteger)
    non_decayed_param_count: Mapped[int | None] = mapped_column(BigInteger)
    # counts of log10|w| per decade at the last epoch (workers.metrics.weight_histogram)
    weight_histogram: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    node: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Metric(Base):
    """One metric of one trial at one epoch (epoch 0: before training, k: after k epochs).

    The primary key (trial_id, name, epoch) serves both questions the product asks: one metric
    of one trial over time (a prefix scan), and one metric at the last epoch of every trial of
    a study (per trial, the last entry of the (trial_id, name) prefix).
    """

    __tablename__ = "dl_metric"

    trial_id: Mapped[int] = mapped_column(
        ForeignKey("dl_trial.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the service read while the driver writes; foreign keys are off by default
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable under WAL except on power loss
    cursor.close()


def make_engine(url: str, **options: Any) -> Engine:
    """An engine for `url`; on SQLite with WAL, foreign keys and a busy timeout on."""
    if url.startswith("sqlite"):
        engine = create_engine(url, **options)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **options)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (routes serialize after it)."""
    return sessionmaker(engine, expire_on_commit=False)
