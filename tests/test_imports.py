"""Data flows one way (DESIGN.md): data -> models -> train -> export -> runtime -> serve | predict | bench
-> study, and the root package (`onepass`: the CLI, `onepass.load`) wires them together. Every module of
every stage is parsed, and an import of a later stage — at module level or inside a function, `import
onepass.X` or `from onepass.X import ...` — fails naming the file, the line and the edge.

`onepass.errors` may be imported from anywhere (it imports nothing). Tests and scripts are exempt."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]

# The flow, earliest first. serve, predict and bench are alternatives at the same place: none imports
# another, except the edges in PEER_EDGES.
FLOW = [("data",), ("models",), ("train",), ("export",), ("runtime",), ("serve", "predict", "bench"), ("study",)]
ORDER = {stage: place for place, stages in enumerate(FLOW) for stage in stages}
ROOT = "onepass"  # src/onepass: the CLI and onepass.load, after every stage
ANYWHERE = {"errors"}  # onepass.errors: the UserError base, importing nothing
PEER_EDGES = {
    # `onepass bench serve` measures a running `onepass serve`: it reads the batch-size histogram that
    # the server exports under the name serve/batching.py gives it; and bench/app_server.py runs the
    # same app and model start-up under plain uvicorn
    ("bench", "serve"): "bench serve reads serve's batch-size metric and runs serve's app without BentoML",
}


def stage_of(module: str) -> str | None:
    """'onepass.export.onnx' -> 'export'; 'onepass.cli' -> 'onepass' (the root); 'onepass.errors' and the
    bare package 'onepass' (its `__version__`) -> None: importable from anywhere."""
    parts = module.split(".")
    if parts[0] != ROOT:
        return None
    if len(parts) == 1 or parts[1] in ANYWHERE or parts[1] == "__version__":
        return None
    return parts[1] if parts[1] in ORDER else ROOT


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) for every import in the file, at any depth (lazy imports inside functions count)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from onepass import export` imports the stage `onepass.export`
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def allowed(source: str, target: str) -> bool:
    if target == source or source == ROOT:
        return True
    if target == ROOT:  # a stage that needs the CLI or onepass.load takes them from their own stage
        return False
    return ORDER[target] < ORDER[source] or (source, target) in PEER_EDGES


def stage_files() -> dict[str, list[Path]]:
    stages = {}
    for package, folder in PACKAGE_DIRS.items():
        parts = package.split(".")
        stage = ROOT if parts == [ROOT] else parts[1]
        stages.setdefault(stage, []).extend(sorted((CHECKOUT / folder).rglob("*.py")))
    if ROOT in stages:  # src/onepass holds the root package only; its stage folders are mapped separately
        stages[ROOT] = [p for p in stages[ROOT] if p.parent == CHECKOUT / PACKAGE_DIRS[ROOT]]
    return stages


def back_edges(stage: str, files: list[Path]) -> list[str]:
    edges = []
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, module in imported_modules(tree):
            target = stage_of(module)
            if target is not None and not allowed(stage, target):
                shown = path.relative_to(CHECKOUT) if path.is_relative_to(CHECKOUT) else path
                edges.append(f"{shown}:{line}: {stage} imports {module} ({target})")
    return edges


def test_every_mapped_stage_has_a_place_in_the_order():
    unplaced = [p for p in PACKAGE_DIRS if p.count(".") == 1 and p.split(".")[1] not in ORDER]
    assert not unplaced, f"put each stage in ORDER (tests/test_imports.py) at its place in the flow: {unplaced}"


@pytest.mark.parametrize("stage", sorted(stage_files()))
def test_no_stage_imports_a_later_one(stage):
    edges = back_edges(stage, stage_files()[stage])
    assert not edges, "imports against the flow (DESIGN.md):\n" + "\n".join(edges)


def test_the_check_can_fail(tmp_path):
    """A lazy import of a later stage inside a function, and one through `from onepass import X`, are found."""
    module = tmp_path / "late.py"
    module.write_text(
        "from onepass.errors import UserError\n"
        "from onepass.models.package import ModelPackage\n"
        "def f():\n"
        "    from onepass.runtime.predictor import load\n"
        "    from onepass import serve\n"
        "    import onepass.cli\n"
    )
    assert back_edges("export", [module]) == [
        f"{module}:{line}: {edge}"
        for line, edge in [
            (4, "export imports onepass.runtime.predictor.load (runtime)"),
            (5, "export imports onepass.serve (serve)"),
            (6, "export imports onepass.cli (onepass)"),
        ]
    ]
