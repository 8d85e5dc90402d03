"""Domain errors, raised by `studies` and mapped to HTTP status codes once, in the service."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class DecaylabError(Exception):
    """Base class of every domain error."""


class StudyNotFound(DecaylabError, LookupError):
    """No study has this id."""

    def __init__(self, study_id: str) -> None:
        super().__init__(f"study {study_id!r} not found")
        self.study_id = study_id


class TrialNotFound(DecaylabError, LookupError):
    """No trial has this id (or this number in this study)."""

    def __init__(self, trial: object) -> None:
        super().__init__(f"trial {trial} not found")
        self.trial = trial


class InvalidSpec(DecaylabError, ValueError):
    """A study spec failed to parse or validate; `errors` lists {"loc": [...], "msg": ...}."""

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []

    @classmethod
    def from_problems(
        cls, title: str, problems: Sequence[tuple[Sequence[str | int], str]]
    ) -> InvalidSpec:
        """One error listing each (loc, message) problem, the fields dotted in the message."""
        errors = [{"loc": list(loc), "msg": msg} for loc, msg in problems]
        lines = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'spec'}: {e['msg']}" for e in errors)
        return cls(f"{title}: {lines}", errors)


class InvalidTransition(DecaylabError):
    """A study or trial cannot move from its current state to the requested one."""


class InvalidQuery(DecaylabError, ValueError):
    """A query names an unknown filter or sort field."""
