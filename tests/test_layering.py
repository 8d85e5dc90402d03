"""The dependency direction holds: service -> studies <- workers.

`studies` is the shared domain and imports no torch, ray or fastapi; the server imports no torch
and no workers; workers import no web framework. Checked on the source (every import statement,
also those inside functions) and at run time (what importing the app actually loads).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WEB = {"fastapi", "starlette", "uvicorn"}
# package (or subpackage) -> top-level names it must never import
FORBIDDEN: dict[str, set[str]] = {
    "studies": {"torch", "torchvision", "ray", "service", "workers", *WEB},
    "workers": {"service", *WEB},
    "service": {"torch", "torchvision", "workers"},
}


def imports(path: Path, *, runtime_only: bool = False) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in a source file (`runtime_only`: not those
    under `if TYPE_CHECKING:`, which never run)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
                node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            # `from package import module` imports that module too
            yield from ((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_only_what_its_layer_allows(package: str) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sources(package)
        for line, name in imports(path)
        if name.split(".")[0] in FORBIDDEN[package]
    ]
    assert found == []


def test_the_layering_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from torch import nn\n    import fastapi.routing\n")
    assert [name for _, name in imports(bad)] == ["torch", "torch.nn", "fastapi.routing"]


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_package_has_an_import_cycle() -> None:
    modules = {_module(path): path for package in FORBIDDEN for path in sources(package)}
    graph = {
        module: {
            name
            for _, name in imports(path, runtime_only=True)
            if name in modules and name != module
        }
        for module, path in modules.items()
    }
    cycles = []
    for start in graph:  # a cycle is a module that reaches itself
        seen, todo = set(), list(graph[start])
        while todo:
            node = todo.pop()
            if node == start:
                cycles.append(start)
                break
            if node not in seen:
                seen.add(node)
                todo += graph[node]
    assert cycles == []


@pytest.mark.parametrize(
    ("module", "absent"),
    [("service.app", ("torch", "ray")), ("studies.spec", ("torch", "ray", "fastapi")),
     ("studies.repository", ("torch", "ray", "fastapi")),
     ("studies.policy", ("torch", "ray", "fastapi"))],
)  # fmt: skip
def test_importing_a_module_loads_no_heavy_dependency(module: str, absent: tuple[str]) -> None:
    code = f"import sys, {module}; print([name for name in {absent!r} if name in sys.modules])"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
