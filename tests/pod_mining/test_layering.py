"""The upload uses the client; the client and the pipeline know nothing of each other."""

from __future__ import annotations

import ast
from pathlib import Path

NODE = Path(__file__).resolve().parents[2] / "node"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside a function."""
    found: set[str] = set()
    for statement in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(statement, ast.Import):
            found.update(alias.name for alias in statement.names)
        elif isinstance(statement, ast.ImportFrom) and statement.module is not None:
            found.add(statement.module)
    return found


def test_the_client_does_not_import_the_pipeline() -> None:
    for path in sorted((NODE / "client").glob("*.py")):
        assert not any(m.startswith("node.pod_mining") for m in imported_modules(path)), path.name


def test_the_pipeline_does_not_import_the_client() -> None:
    assert not any(m.startswith("node.client") for m in imported_modules(NODE / "pod_mining" / "pipeline.py"))
