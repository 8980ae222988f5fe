"""Imports run one way: ``experiments, benchmarks → visual_classification | language_generation → toast → runkit``,
never between the two halves, and no module imports itself back through a circle (module-level imports)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT = ("runkit", "toast", "visual_classification", "language_generation", "experiments")
ALLOWED = {
    "runkit": set(),
    "toast": {"runkit"},
    "visual_classification": {"toast", "runkit"},
    "language_generation": {"toast", "runkit"},
}
LIBRARIES_TOAST_NEVER_IMPORTS = ("timm", "transformers", "peft", "yacs")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_what_is_below_it(package):
    offenders = {}
    for path in (REPO / package).rglob("*.py"):
        reached = {n.split(".")[0] for n in _imports(path, top_level_only=False)}
        wrong = sorted((reached & set(PROJECT)) - ALLOWED[package] - {package})
        if package == "toast":
            wrong += sorted(reached & set(LIBRARIES_TOAST_NEVER_IMPORTS))
        if wrong:
            offenders[str(path.relative_to(REPO))] = wrong
    assert not offenders


def test_no_import_circle_between_modules():
    files = [p for package in PROJECT for p in (REPO / package).rglob("*.py")]
    modules = {_module_name(p): p for p in files}
    graph = {
        name: {n for n in _imports(path, top_level_only=True) if n in modules and n != name}
        for name, path in modules.items()
    }
    # a package's __init__ importing its own modules is how a package is assembled, not a circle
    graph = {name: {n for n in edges if not name.startswith(n + ".")} for name, edges in graph.items()}
    visiting, done, circles = set(), set(), []

    def visit(name: str, trail: list[str]) -> None:
        if name in done:
            return
        if name in visiting:
            circles.append(trail[trail.index(name) :])
            return
        visiting.add(name)
        for nxt in sorted(graph[name]):
            visit(nxt, [*trail, nxt])
        visiting.discard(name)
        done.add(name)

    for name in sorted(graph):
        visit(name, [name])
    assert not circles
