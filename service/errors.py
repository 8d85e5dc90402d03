"""Domain errors to HTTP status codes, mapped once here, so every route answers them alike.

Every error body has one shape: {"detail": message, "errors": [{"loc": [...], "msg": ...}]}.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from service.schemas import ErrorBody
from studies.errors import (
    DecaylabError,
    InvalidQuery,
    InvalidSpec,
    InvalidTransition,
    StudyNotFound,
    TrialNotFound,
)


class LaunchFailed(DecaylabError):
    """The launcher could not reach Ray (or none is configured)."""


STATUS_CODES: dict[type[DecaylabError], int] = {
    StudyNotFound: 404,
    TrialNotFound: 404,
    InvalidSpec: 422,
    InvalidQuery: 422,
    InvalidTransition: 409,
    LaunchFailed: 503,
}
# what each error status means on this API, for the OpenAPI document
ERROR_DESCRIPTIONS: dict[int, str] = {
    401: "A valid API key is required (for reads only with DECAYLAB_READ_AUTH=1)",
    404: "No study (or trial) has this id (or number)",
    409: "The study's status does not allow this",
    413: "The body is over the service's limit (DECAYLAB_MAX_BODY_BYTES)",
    415: "The body is neither JSON nor YAML",
    422: "A parameter or field is invalid; the message names it",
    503: "Ray or the database cannot be reached",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=` for these error codes, each with the one error body (ErrorBody).

    Declaring 422 also keeps FastAPI from documenting its own HTTPValidationError, which is
    not what our handler sends.
    """
    return {
        code: {
            "model": ErrorBody,
            "description": ERROR_DESCRIPTIONS.get(code, HTTPStatus(code).phrase),
        }
        for code in codes
    }


def error_body(detail: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"detail": detail, "errors": errors or []}


def status_code(error: DecaylabError) -> int:
    """The HTTP status of a domain error (500 for one this table does not know)."""
    for kind, code in STATUS_CODES.items():
        if isinstance(error, kind):
            return code
    return 500


async def domain_error(request: Request, error: Exception) -> JSONResponse:
    """The one handler of domain errors."""
    assert isinstance(error, DecaylabError)
    errors = error.errors if isinstance(error, InvalidSpec) else []
    return JSONResponse(error_body(str(error), errors), status_code=status_code(error))


async def request_error(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's own validation errors (bad query parameters), in the same shape."""
    assert isinstance(error, RequestValidationError)
    errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in error.errors()]
    lines = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
    return JSONResponse(error_body(f"invalid request: {lines}", errors), status_code=422)


async def http_error(request: Request, error: Exception) -> JSONResponse:
    """401, 404 of unknown routes, 405, 415: the same shape, the same headers."""
    assert isinstance(error, HTTPException)
    headers = error.headers
    if error.status_code == 405 and (allowed := allowed_methods(request)):
        headers = {**(headers or {}), "Allow": allowed}
    return JSONResponse(
        error_body(str(error.detail)), status_code=error.status_code, headers=headers
    )


def allowed_methods(request: Request) -> str:
    """Every method the OpenAPI document lists for the request's path, for a 405's Allow
    header: Starlette names those of one route only (POST for OPTIONS /studies, not GET)."""
    methods = {
        method.upper()
        for path, operations in request.app.openapi()["paths"].items()
        if compile_path(path)[0].match(request.url.path)
        for method in operations
    }
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DecaylabError, domain_error)
    app.add_exception_handler(RequestValidationError, request_error)
    app.add_exception_handler(HTTPException, http_error)
