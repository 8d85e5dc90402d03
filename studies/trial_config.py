"""The resolved configuration of one trial: what `workers.train` runs, with every value fixed."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from studies.schedules import DecaySchedule, LRSchedule
from studies.spec import RegularizerSpec, TaskSpec

Scalar = bool | int | float | str


def spec_default(name: str) -> Any:
    """The spec's default of a setting a trial shares with it: one source for both."""
    for fields in (TaskSpec.model_fields, RegularizerSpec.model_fields):
        if name in fields:
            return fields[name].get_default(call_default_factory=True)
    raise KeyError(name)


class TrialConfig(BaseModel):
    """One training run: data, model, optimizer, regularizer, schedule and seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A lone trial (`python -m workers.trial`, make compare) defaults to a run that shows
    # something: a pWD MLP on MNIST-1D for 20 epochs with a cosine lr. Every other default is
    # the spec's own (spec_default).
    dataset: str = "mnist1d"
    model: str = "mlp"
    model_options: dict[str, Scalar | None] = Field(default_factory=dict)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(spec_default("batch_size"), ge=1)
    optimizer: Literal["adam", "sgd"] = spec_default("optimizer")
    lr: float = Field(spec_default("lr"), gt=0)
    momentum: float = Field(spec_default("momentum"), ge=0, lt=1)
    nesterov: bool = spec_default("nesterov")
    betas: tuple[float, float] = (0.9, 0.999)
    lr_schedule: Literal["constant", "cosine", "warmup_cosine"] = "cosine"
    warmup: float = Field(spec_default("warmup"), ge=0, lt=1)
    family: Literal["none", "l2", "decoupled", "pwd", "lp_coupled"] = "pwd"
    lam: float = Field(spec_default("lam"), ge=0)
    p: float = Field(spec_default("p"), gt=0)
    schedule: Literal["full", "early", "late", "none"] = spec_default("schedule")
    until: float | None = None
    start: float | None = None
    decay_scale: Literal["lr", "schedule"] = spec_default("decay_scale")
    decay_all_params: bool = spec_default("decay_all_params")
    seed: int = 0
    data_seed: int = 0
    val_fraction: float = Field(spec_default("val_fraction"), gt=0, lt=1)
    download: bool = spec_default("download")
    augment: bool = spec_default("augment")
    device: str = "cpu"
    amp: bool = spec_default("amp")
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
