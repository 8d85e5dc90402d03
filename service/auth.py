"""API-key checks: write endpoints need `Authorization: Bearer <key>` when a key is set; reads
too when asked to, or when the API listens beyond loopback. Writes come as JSON or YAML only."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.deps import SettingsDep
from studies.settings import Settings

MIN_KEY_LENGTH = 16
PLACEHOLDER = "change-me"  # what .env.example holds
JSON_TYPE = "application/json"
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})

bearer = HTTPBearer(auto_error=False, description="The service's DECAYLAB_API_KEY.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def key_matches(expected: str, credentials: HTTPAuthorizationCredentials | None) -> bool:
    """Whether the bearer token equals `expected` (compared in constant time)."""
    given = credentials.credentials if credentials is not None else ""
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def check_key(expected: str, credentials: HTTPAuthorizationCredentials | None) -> None:
    """401 unless the bearer token equals `expected`."""
    if not key_matches(expected, credentials):
        raise HTTPException(
            status_code=401,
            detail="a valid API key is required: send Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )


def require_write_key(settings: SettingsDep, credentials: Credentials) -> None:
    """Writes need the key whenever one is configured."""
    if settings.api_key:
        check_key(settings.api_key, credentials)


def reads_need_key(settings: Settings) -> bool:
    """With a key set: when asked to (DECAYLAB_READ_AUTH=1), or beyond loopback (compose)."""
    return bool(settings.api_key) and (settings.read_auth or settings.listens_beyond_loopback)


def require_read_key(settings: SettingsDep, credentials: Credentials) -> None:
    """Reads need the key when `reads_need_key`."""
    if reads_need_key(settings):
        check_key(settings.api_key, credentials)


def has_key(settings: SettingsDep, credentials: Credentials) -> bool:
    """Whether this request may see what only the key opens (tracebacks, provenance)."""
    return not settings.api_key or key_matches(settings.api_key, credentials)


def media_type(request: Request) -> str:
    """The request's media type, lower case, without parameters ("" when none was sent)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def require_write_media(request: Request) -> None:
    """415 unless a write says it is JSON or YAML: a web page can send a cross-origin POST with
    no type, or text/plain, without a preflight; these types need one."""
    given = media_type(request)
    if given != JSON_TYPE and given not in YAML_TYPES:
        raise HTTPException(
            415, f"content-type: send application/json or application/yaml, not {given or 'none'}"
        )


def check_exposure(settings: Settings) -> None:
    """ValueError for settings that would leave the API open: no key (or a weak one) while it
    listens beyond loopback, or a key too short or still the example's placeholder."""
    key = settings.api_key
    if settings.listens_beyond_loopback and not key:
        raise ValueError(
            f"DECAYLAB_API_HOST={settings.api_host} listens beyond loopback: set DECAYLAB_API_KEY"
        )
    if key and (len(key) < MIN_KEY_LENGTH or PLACEHOLDER in key):
        raise ValueError(
            f"DECAYLAB_API_KEY must be at least {MIN_KEY_LENGTH} characters and not the "
            "example's placeholder; make one with: "
            'python3 -c "import secrets; print(secrets.token_urlsafe(24))"'
        )


WriteAccess = Depends(require_write_key)
WriteMedia = Depends(require_write_media)
ReadAccess = Depends(require_read_key)
KeyHolder = Annotated[bool, Depends(has_key)]
