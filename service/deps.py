"""Request dependencies as Annotated aliases, all in this module; tests swap them with
`app.dependency_overrides`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from service.errors import LaunchFailed
from service.launcher import Launcher
from studies.policy import Limits
from studies.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session_factory(request: Request) -> sessionmaker[Session]:
    sessions: sessionmaker[Session] = request.app.state.sessions
    return sessions


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]


def get_session(sessions: SessionFactoryDep) -> Iterator[Session]:
    """A session for one request; what the route did not commit is rolled back."""
    with sessions() as session:
        yield session


def get_launcher(request: Request) -> Launcher:
    launcher: Launcher | None = request.app.state.launcher
    if launcher is None:
        raise LaunchFailed("this service has no launcher configured: it cannot reach Ray")
    return launcher


def get_limits(settings: SettingsDep) -> Limits:
    """The budgets a study may ask for, from the service's settings."""
    return Limits(
        max_trials=settings.max_trials,
        max_concurrent=settings.max_concurrent,
        max_epochs=settings.max_epochs,
        max_seeds=settings.max_seeds,
        max_trial_cpus=settings.max_trial_cpus,
        max_trial_gpus=settings.max_trial_gpus,
        max_parameters=settings.max_parameters,
    )


SessionDep = Annotated[Session, Depends(get_session)]
LauncherDep = Annotated[Launcher, Depends(get_launcher)]
LimitsDep = Annotated[Limits, Depends(get_limits)]
