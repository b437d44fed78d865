"""The shape the code promises: short functions, and pipeline/ independent of the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

MAX_LINES = 80
SOURCES = [
    *(REPO / "cli").glob("*.py"),
    *(REPO / "pipeline").glob("*.py"),
    *(REPO / "ops").glob("*.py"),
]


def function_lengths(path: Path) -> list[tuple[str, int]]:
    """(name, lines) of every function in a file, its docstring left out."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]
            if body:
                lines = body[-1].end_lineno - body[0].lineno + 1
                found.append((f"{path.relative_to(REPO)}:{node.lineno} {node.name}", lines))
    return found


def test_no_function_is_longer_than_80_lines():
    long = [(name, n) for path in SOURCES for name, n in function_lengths(path) if n > MAX_LINES]
    assert not long, long


def test_pipeline_never_imports_the_cli_nor_click():
    paths = sorted((REPO / "pipeline").glob("*.py"))
    assert len(paths) > 20, paths
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package pretrain_records.pipeline
                    parents = ["pretrain_records", "pipeline"][: 3 - node.level]
                    base = ".".join([*parents, base] if base else parents)
                names = [f"{base}.{a.name}" for a in node.names]
            for name in names:
                assert not name.startswith(("pretrain_records.cli", "click")), (path, name)
