"""API-key checks: write endpoints need `Authorization: Bearer <key>` when a key is set."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.deps import SettingsDep

bearer = HTTPBearer(auto_error=False, description="The service's DECAYLAB_API_KEY.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def check_key(expected: str, credentials: HTTPAuthorizationCredentials | None) -> None:
    """401 unless the bearer token equals `expected` (compared in constant time)."""
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), expected.encode()) or not given:
        raise HTTPException(
            status_code=401,
            detail="a valid API key is required: send Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )


def require_write_key(settings: SettingsDep, credentials: Credentials) -> None:
    """Writes need the key whenever one is configured."""
    if settings.api_key:
        check_key(settings.api_key, credentials)


def require_read_key(settings: SettingsDep, credentials: Credentials) -> None:
    """Reads need it only with DECAYLAB_READ_AUTH=1 (and a key to check)."""
    if settings.api_key and settings.read_auth:
        check_key(settings.api_key, credentials)


WriteAccess = Depends(require_write_key)
ReadAccess = Depends(require_read_key)
