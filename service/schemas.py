"""HTTP response models: what the API promises, built from ORM rows but never one itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from studies.catalog import api_name


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


class StudySummary(_Out):
    """A study in a list: identity and lifecycle."""

    id: str
    name: str
    status: str
    ray_job_id: str | None
    optuna_study_name: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None


class StudyOut(StudySummary):
    """A study with its spec as stored (validated, defaults filled in)."""

    spec: dict[str, Any]


class StudyPage(BaseModel):
    total: int
    items: list[StudySummary]


class Progress(BaseModel):
    """Trials by state against the budget of n_trials × seeds training runs."""

    budget: int
    finished: int = Field(description="training runs done, duplicates (never trained) included")
    counts: dict[str, int]
    duplicates: int = Field(
        0, description="suggested configurations equal to an earlier one, so not trained again"
    )


class BestValue(BaseModel):
    """The best value of one objective so far, and the trial that reached it."""

    metric: str
    mode: str
    trial: int | None
    value: float | None


class StudyDetail(StudyOut):
    progress: Progress
    best: list[BestValue]


class TrialOut(_Out):
    """One trial: its parameters (spec names: `lambda`, `from`) and final metrics."""

    number: int
    state: str
    replicate: int
    config_id: int | None
    optuna_trial_number: int | None
    family: str | None
    p: float | None
    lam: float | None = Field(serialization_alias=api_name("lam"))
    schedule: str | None
    until: float | None
    start: float | None = Field(serialization_alias=api_name("start"))
    lr: float | None
    seed: int | None
    params: dict[str, Any]
    final_metrics: dict[str, float | None]
    best_val_acc: float | None
    epochs_done: int
    diverged_epoch: int | None
    decayed_param_count: int | None
    non_decayed_param_count: int | None
    node: str | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None

    @classmethod
    def shown(cls, trial: Any, *, key_holder: bool) -> Self:
        """The trial as this caller may see it: tracebacks and provenance (paths, versions)
        only with the API key."""
        out = cls.model_validate(trial)
        if key_holder:
            return out
        hidden: dict[str, Any] = {
            name: None for name in ("error", "provenance") if name in cls.model_fields
        }
        return out.model_copy(update=hidden)


class TrialDetail(TrialOut):
    """One trial with its resolved config, the versions of the code that trained it, and the
    histogram of its final decayed weights (None until its last epoch)."""

    config: dict[str, Any]
    provenance: dict[str, Any] | None = Field(
        description="library versions and revision that trained it; null without the API key"
    )
    weight_histogram: dict[str, Any] | None = Field(
        default=None,
        description="log10|w| of the decayed weights after the last epoch: `edges` (decades), "
        "`counts` per bin, `zeros` (exact zeros) and `total`",
    )


class TrialPage(BaseModel):
    total: int
    items: list[TrialOut]


class MetricPoint(BaseModel):
    epoch: int
    value: float | None


class BestTrial(BaseModel):
    """The best completed trial for one objective (None while no trial reports it)."""

    metric: str
    mode: str
    trial: TrialOut | None


class ParetoPoint(BaseModel):
    values: dict[str, float]
    trial: TrialOut


class ParetoFront(BaseModel):
    """The non-dominated completed trials, best first on the first metric."""

    metrics: list[str]
    modes: list[str]
    considered: int = Field(description="completed trials reporting every metric")
    items: list[ParetoPoint]


class EffectLevel(BaseModel):
    level: str
    low: float | None = Field(description="lower edge of a bucketed level")
    high: float | None
    count: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None


class Effects(BaseModel):
    """A metric per level of a factor; every completed trial (each seed) is one observation."""

    factor: str
    metric: str
    confidence: float
    buckets: int | None
    levels: list[EffectLevel]


class Health(BaseModel):
    status: str
    database: str
    version: str
    ray_dashboard: str | None = None


class ErrorItem(BaseModel):
    """One problem: where it is (`["query", "limit"]`, `["task", "epochs"]`) and what it is."""

    loc: list[str | int]
    msg: str


class ErrorBody(BaseModel):
    """The body of every 4xx and 503: a message naming the field at fault, and each problem."""

    detail: str
    errors: list[ErrorItem]
