"""The resolved configuration of one trial: what `workers.train` runs, with every value fixed."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from studies.schedules import DecaySchedule, LRSchedule

Scalar = bool | int | float | str


class TrialConfig(BaseModel):
    """One training run: data, model, optimizer, regularizer, schedule and seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = "mnist1d"
    model: str = "mlp"
    model_options: dict[str, Scalar | None] = Field(default_factory=dict)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(128, ge=1)
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    lr_schedule: Literal["constant", "cosine", "warmup_cosine"] = "cosine"
    warmup: float = Field(0.0, ge=0, lt=1)
    family: Literal["none", "l2", "decoupled", "pwd", "lp_coupled"] = "pwd"
    lam: float = Field(0.0, ge=0)
    p: float = Field(2.0, gt=0)
    schedule: Literal["full", "early", "late", "none"] = "full"
    until: float | None = None
    start: float | None = None
    decay_scale: Literal["lr", "schedule"] = "lr"
    decay_all_params: bool = False
    seed: int = 0
    data_seed: int = 0
    val_fraction: float = Field(0.1, gt=0, lt=1)
    download: bool = False
    augment: bool = False
    device: str = "cpu"
    amp: bool = False
    threads: int = Field(1, ge=1)
    full_metrics: bool = True
    foreach: bool = True

    @model_validator(mode="after")
    def _schedules_are_valid(self) -> TrialConfig:
        self.decay_schedule()
        self.lr_schedule_obj()
        return self

    def decay_schedule(self) -> DecaySchedule:
        """The decay schedule this config describes (validated)."""
        return DecaySchedule(kind=self.schedule, until=self.until, start=self.start)

    def lr_schedule_obj(self) -> LRSchedule:
        """The learning-rate schedule this config describes (validated)."""
        return LRSchedule(kind=self.lr_schedule, warmup=self.warmup)

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready dict of every value, for storing with the result."""
        return self.model_dump(mode="json")
