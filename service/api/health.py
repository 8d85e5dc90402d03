"""GET /health: the service answers, and whether its database does."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.deps import SessionDep
from service.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
def health(session: SessionDep) -> Health | JSONResponse:
    """200 with database "ok", or 503 with the database's error."""
    try:
        session.execute(text("SELECT 1"))
    except Exception as error:
        down = Health(status="error", database=f"{type(error).__name__}: {error}", version=_v())
        return JSONResponse(down.model_dump(), status_code=503)
    return Health(status="ok", database=session.get_bind().dialect.name, version=_v())


def _v() -> str:
    return version("decaylab")
