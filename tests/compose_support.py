"""Reading docker-compose.yml as Compose does, and the cross-reference checks that neither the
Compose JSON schema nor our tests of single services make: every name that one service uses for
another (a depends_on target, a named volume, a host in a URL, the head's address) must exist.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; $$ is a literal $
_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}")
_URL = re.compile(
    r"\b([a-z][a-z0-9+]*)://(?:([^:@/\s]+)(?::([^@/\s]*))?@)?([^:/\s'\"]+)(?::(\d+))?"
)
LOOPBACK_OR_ANY = {"0.0.0.0", "127.0.0.1", "localhost"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)KEY$")
_REFERENCE = re.compile(r"\$\{\w+(:?[-?][^}]*)?\}")
# the password of scheme://user:password@host, where the password may be a ${VAR:?message}
_URL_PASSWORD = re.compile(r"://[^:/@\s]+:(\$\{[^}]*\}|[^@/\s]+)@")


class MissingVariable(KeyError):
    """A required ${VAR:?message} with VAR unset: Compose refuses the file with the message."""


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file; blank lines and # comments are skipped."""
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """`value` with every ${...} substituted from `env` the way Compose does, recursively."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, operator, argument = match.groups()
        if name is None:
            return "$"
        present = name in env and (env[name] != "" or not operator.startswith(":"))
        if present:
            return env[name]
        if operator and operator.endswith("?"):
            raise MissingVariable(f"{name}: {argument}")
        return argument if operator else ""

    return _VARIABLE.sub(substitute, value)


def load(path: Path = COMPOSE_FILE, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose file with anchors merged and variables substituted from `env`."""
    raw = yaml.safe_load(path.read_text())
    return interpolate(raw, read_env_file(ENV_EXAMPLE) if env is None else env)


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, from either the mapping or the list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Each dependency of a service and its condition (the list form means service_started)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def volume_mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, is_named_volume) of every mount of a service."""
    mounts = []
    for mount in service.get("volumes") or []:
        if isinstance(mount, dict):
            source, target = mount.get("source", ""), mount["target"]
            named = mount.get("type", "volume") == "volume" and bool(source)
        else:
            source, _, rest = mount.partition(":")
            target = rest.partition(":")[0]
            named = bool(rest) and not source.startswith((".", "/", "~", "$"))
        mounts.append((source, target, named))
    return mounts


def command_words(service: dict[str, Any]) -> list[str]:
    """The command as words (a string command is split like a shell does)."""
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(word) for word in command]


def option(words: list[str], name: str) -> str | None:
    """The value of `--name=value` or `--name value` among `words`."""
    for index, word in enumerate(words):
        if word.startswith(f"{name}="):
            return word.split("=", 1)[1]
        if word == name and index + 1 < len(words):
            return words[index + 1]
    return None


def urls(text: str) -> list[dict[str, str | None]]:
    """Every URL in `text`: scheme, user, password, host and port."""
    keys = ("scheme", "user", "password", "host", "port")
    return [dict(zip(keys, match.groups(), strict=True)) for match in _URL.finditer(text)]


def cross_reference_errors(compose: dict[str, Any]) -> list[str]:
    """What one service names that does not exist in the file; empty when all holds."""
    services: dict[str, Any] = compose.get("services") or {}
    declared_volumes = set(compose.get("volumes") or {})
    errors = []
    for name, service in services.items():
        for target in depends_on(service):
            if target not in services:
                errors.append(f"{name}: depends_on {target!r}, which is not a service")
        for source, target, named in volume_mounts(service):
            if named and source not in declared_volumes:
                errors.append(f"{name}: mounts volume {source!r} on {target}, not declared")
        texts = [*environment(service).values(), *command_words(service)]
        for url in (u for text in texts for u in urls(text)):
            if url["host"] not in services and url["host"] not in LOOPBACK_OR_ANY:
                errors.append(f"{name}: a URL names host {url['host']!r}, which is not a service")
    return errors + _ray_address_errors(services)


def _ray_address_errors(services: dict[str, Any]) -> list[str]:
    """The workers join the head's GCS port; the API's Jobs address is the head's dashboard."""
    head = services.get("ray-head")
    if head is None:
        return ["no ray-head service"]
    head_words = command_words(head)
    gcs_port, dashboard_port = option(head_words, "--port"), option(head_words, "--dashboard-port")
    errors = []
    for name, service in services.items():
        address = option(command_words(service), "--address")
        if address is not None and address != f"ray-head:{gcs_port}":
            errors.append(f"{name}: joins {address}, but the head's GCS is ray-head:{gcs_port}")
        jobs = environment(service).get("DECAYLAB_RAY_ADDRESS")
        if jobs is not None and jobs != f"http://ray-head:{dashboard_port}":
            errors.append(f"{name}: DECAYLAB_RAY_ADDRESS {jobs}, not the head's dashboard")
    return errors


def secret_literal_errors(raw_compose: dict[str, Any]) -> list[str]:
    """Secrets written into the (uninterpolated) file instead of taken from a variable."""
    errors = []
    for name, service in (raw_compose.get("services") or {}).items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key) and not _REFERENCE.fullmatch(value):
                errors.append(f"{name}: {key} is a literal, not a ${{VARIABLE}}")
        for text in [*environment(service).values(), *command_words(service)]:
            for password in _URL_PASSWORD.findall(text):
                if not _REFERENCE.fullmatch(password):
                    errors.append(f"{name}: a URL holds a literal password")
    return errors
