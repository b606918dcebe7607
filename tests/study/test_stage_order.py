"""The study is the last stage: it may import data, models, train, export, runtime and bench (and the
root package's `onepass.load`), never serve or predict; and no other stage imports it."""

from __future__ import annotations

import ast
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
ALLOWED = {"onepass", "errors", "data", "models", "train", "export", "runtime", "bench", "study"}
OTHER_STAGES = ("src/onepass", "data", "models", "train", "export", "runtime", "serve", "predict", "bench")


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return {m for m in modules if m == "onepass" or m.startswith("onepass.")}


def test_the_study_imports_only_earlier_stages():
    for path in sorted((REPOSITORY / "study").glob("*.py")):
        stages = {m.split(".")[1] if "." in m else "onepass" for m in _imported_modules(path)}
        assert stages <= ALLOWED, f"{path.name} imports {sorted(stages - ALLOWED)}"


def test_no_other_stage_imports_the_study():
    for folder in OTHER_STAGES:
        for path in sorted((REPOSITORY / folder).rglob("*.py")):
            imports = {m for m in _imported_modules(path) if m.startswith("onepass.study")}
            source = path.read_text()
            if path.name == "cli.py" and folder == "src/onepass":  # the CLI lists the stage by name only
                assert not imports and '"onepass.study.cli"' in source
                continue
            assert not imports, f"{path.relative_to(REPOSITORY)} imports {sorted(imports)}"
