"""GET /health: the service answers, and whether its database does."""

from __future__ import annotations

import logging
from importlib.metadata import version

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.deps import SessionDep
from service.errors import error_body, error_responses
from service.schemas import Health

router = APIRouter(tags=["health"])
logger = logging.getLogger(__name__)


@router.get("/health", response_model=Health, responses=error_responses(503))
def health(request: Request, session: SessionDep) -> Health | JSONResponse:
    """200 with the database's dialect and where the Ray dashboard is; 503 if the database
    does not answer."""
    dashboard = request.app.state.ray_dashboard
    try:
        session.execute(text("SELECT 1"))
    except Exception as error:
        # the error names the host, port and user: for the service's log, not for anyone who
        # can reach /health (it needs no key); one line, as probes repeat every few seconds
        reason = f"{type(error).__name__}: {error}"
        logger.warning("health check: the database does not answer: %s", reason)
        problem = {"loc": ["database"], "msg": "unreachable"}
        body = error_body("the database is unreachable", [problem])
        return JSONResponse(body, status_code=503)
    dialect = session.get_bind().dialect.name
    return Health(status="ok", database=dialect, version=_v(), ray_dashboard=dashboard)


def _v() -> str:
    return version("decaylab")
