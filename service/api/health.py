"""GET /health: the service answers, and whether its database does."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.deps import SessionDep
from service.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
def health(request: Request, session: SessionDep) -> Health | JSONResponse:
    """200 with the database's dialect, or 503 with its error; and where the Ray dashboard is."""
    dashboard = request.app.state.ray_dashboard
    try:
        session.execute(text("SELECT 1"))
    except Exception as error:
        database = f"{type(error).__name__}: {error}"
        down = Health(status="error", database=database, version=_v(), ray_dashboard=dashboard)
        return JSONResponse(down.model_dump(), status_code=503)
    dialect = session.get_bind().dialect.name
    return Health(status="ok", database=dialect, version=_v(), ray_dashboard=dashboard)


def _v() -> str:
    return version("decaylab")
