"""A small client of the decaylab REST API (what the CLI and the report use)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

DEFAULT_API = "http://127.0.0.1:8000"
STUDY_ID_LENGTH = 36  # a whole id (a UUID) is used as given: the routes answer 404 for no study
PAGE_SIZE = 1000  # the most GET /studies returns at once
SHOWN_MATCHES = 5  # ids an ambiguous prefix's error names


class ApiError(Exception):
    """The API could not be reached or answered an error; the message is one line for people."""


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    detail = body.get("detail", body) if isinstance(body, dict) else body
    errors = body.get("errors") if isinstance(body, dict) else None
    if errors:
        fields = "; ".join(f"{e.get('loc', '?')}: {e.get('msg', '')}" for e in errors)
        return f"{detail} ({fields})" if isinstance(detail, str) else fields
    return str(detail)


@dataclass
class ApiClient:
    """Calls the API at `base_url`, with the API key as a bearer token when one is given."""

    base_url: str = DEFAULT_API
    api_key: str = ""
    timeout: float = 30.0
    _http: httpx.Client | None = field(default=None, repr=False)

    @property
    def http(self) -> httpx.Client:
        """The underlying HTTP client."""
        if self._http is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._http = httpx.Client(
                base_url=self.base_url, headers=headers, timeout=self.timeout
            )
        return self._http

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; ApiError on a connection failure or an error status."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ApiError(f"cannot reach the decaylab API at {self.base_url}: {error}") from error
        if response.is_error:
            raise ApiError(f"{method} {path}: {response.status_code} {_message(response)}")
        return response

    def get(self, path: str, **params: Any) -> Any:
        """GET a JSON resource."""
        return self.request("GET", path, params=params).json()

    def post(self, path: str, **kwargs: Any) -> Any:
        """POST (as JSON unless the headers say otherwise) and return the JSON answer."""
        kwargs.setdefault("headers", {"Content-Type": "application/json"})
        return self.request("POST", path, **kwargs).json()

    def submit(self, spec_file: Path) -> dict[str, Any]:
        """Submit a study file (YAML or JSON)."""
        try:
            text = spec_file.read_text()
        except OSError as error:
            raise ApiError(f"cannot read {spec_file}: {error.strerror}") from error
        is_yaml = spec_file.suffix.lower() in (".yaml", ".yml")
        content_type = "application/yaml" if is_yaml else "application/json"
        result: dict[str, Any] = self.post(
            "/studies", content=text.encode(), headers={"Content-Type": content_type}
        )
        return result

    def study_ids(self, page_size: int = PAGE_SIZE) -> Iterator[str]:
        """Every study's id, newest first, page by page."""
        offset, seen = 0, set()
        while True:
            page = self.get("/studies", limit=page_size, offset=offset)
            for study in page["items"]:
                if study["id"] not in seen:  # a study created meanwhile shifts the pages
                    seen.add(study["id"])
                    yield study["id"]
            offset += page_size
            if not page["items"] or offset >= page["total"]:
                return

    def resolve_study_id(self, prefix: str, page_size: int = PAGE_SIZE) -> str:
        """The id of the one study whose id starts with `prefix` (as git takes a short hash).

        ApiError names the matches when several studies share the prefix, or says none does.
        """
        wanted = prefix.strip().lower()
        if not wanted:
            raise ApiError("a study id cannot be empty (see `decaylab ls`)")
        if len(wanted) >= STUDY_ID_LENGTH:
            return prefix.strip()
        matches = [i for i in self.study_ids(page_size) if i.lower().startswith(wanted)]
        if not matches:
            raise ApiError(f"no study id starts with {prefix!r} (see `decaylab ls`)")
        if len(matches) > 1:
            shown = ", ".join(matches[:SHOWN_MATCHES])
            more = (
                f" and {len(matches) - SHOWN_MATCHES} more" if len(matches) > SHOWN_MATCHES else ""
            )
            raise ApiError(
                f"{prefix!r} is ambiguous: {len(matches)} study ids start with it ({shown}{more});"
                " give more characters"
            )
        return matches[0]

    def stream(self, path: str, **params: Any) -> Iterator[bytes]:
        """The body of a streamed GET, chunk by chunk."""
        try:
            with self.http.stream("GET", path, params=params) as response:
                if response.is_error:
                    response.read()
                    raise ApiError(f"GET {path}: {response.status_code} {_message(response)}")
                yield from response.iter_bytes()
        except httpx.HTTPError as error:
            raise ApiError(f"cannot reach the decaylab API at {self.base_url}: {error}") from error
