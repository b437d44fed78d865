"""The shape the code promises: pipeline/ in stages that import only the stages below them, no
import circles, modules of at most 400 lines, short functions, and pipeline/ independent of the
CLI.

The layering rule (pipeline/__init__.py says it too): the stages, from the bottom up, are
ground, config, storage, reading, tokenizer, records, outdir, running, readback. A module may
import modules of its own stage and of the stages below it, never of a stage above; every
import counts, a function's lazy ones too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

STAGES = [
    "ground",
    "config",
    "storage",
    "reading",
    "tokenizer",
    "records",
    "outdir",
    "running",
    "readback",
]
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 400
PIPELINE = REPO / "pipeline"
SOURCES = [*(REPO / "cli").glob("*.py"), *PIPELINE.rglob("*.py"), *(REPO / "ops").glob("*.py")]


def module_name(path: Path) -> str:
    """`pretrain_records.pipeline.reading.pieces` for pipeline/reading/pieces.py (a package's
    __init__.py is the package)."""
    parts = list(path.relative_to(PIPELINE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["pretrain_records", "pipeline", *parts])


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PIPELINE.rglob("*.py"))}


def imported(path: Path, known: dict[str, Path]) -> set[str]:
    """The pipeline modules `path` imports, anywhere in it (`from P import m` counts as the
    module P.m when there is one, else as P)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            base = node.module or ""
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {name for name in found if name in known}


def stage_of(module: str) -> str | None:
    """The stage a pipeline module belongs to (None for pretrain_records.pipeline itself)."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 else None


def graph() -> dict[str, set[str]]:
    known = modules()
    return {module: imported(path, known) - {module} for module, path in known.items()}


def test_pipeline_is_made_of_exactly_the_stages_each_described():
    folders = sorted(p.name for p in PIPELINE.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert folders == sorted(STAGES)
    assert [p.name for p in PIPELINE.glob("*.py")] == ["__init__.py"]  # no module outside one
    for stage in STAGES:
        docstring = ast.get_docstring(ast.parse((PIPELINE / stage / "__init__.py").read_text()))
        assert docstring and len(docstring) > 80, stage  # it says what the stage owns
    tour = (PIPELINE / "__init__.py").read_text()
    assert [s for s in STAGES if f"`{s}`" in tour] == STAGES  # named, in order


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    """`A -> B` for each import of a module B of a stage above A's (or of the package root)."""
    found = []
    for module, targets in sorted(edges.items()):
        if stage_of(module) is None:
            continue  # pipeline/__init__.py: the tour, no imports
        here = STAGES.index(stage_of(module))
        for target in sorted(targets):
            there = stage_of(target)
            if there is None or STAGES.index(there) > here:
                found.append(f"{module} -> {target}")
    return found


def circles(edges: dict[str, set[str]]) -> list[str]:
    """Each import circle found by a depth-first walk, as `A -> B -> A`."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    found = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                found.append(" -> ".join([*path[path.index(target) :], module, target]))
            elif target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
    return found


def test_each_stage_imports_only_its_own_and_the_stages_below():
    assert upward_imports(graph()) == []


def test_no_import_circles():
    assert circles(graph()) == []


def test_the_checks_find_an_upward_import_and_a_circle(tmp_path):
    """The checks above can fail: made-up modules that break each rule are caught."""
    p = "pretrain_records.pipeline."
    (tmp_path / "a.py").write_text(f"def f():\n    from {p}running import b\n")
    known = {f"{p}running.b": tmp_path / "b.py"}
    assert imported(tmp_path / "a.py", known) == {f"{p}running.b"}  # a lazy import counts
    edges = {f"{p}reading.a": {f"{p}running.b"}, f"{p}running.b": {f"{p}reading.a"}}
    assert upward_imports(edges) == [f"{p}reading.a -> {p}running.b"]
    assert len(circles(edges)) == 1
    assert circles({f"{p}reading.a": {f"{p}ground.x"}, f"{p}ground.x": set()}) == []


@pytest.mark.parametrize("path", sorted(PIPELINE.rglob("*.py")), ids=lambda p: p.name)
def test_no_module_is_longer_than_400_lines(path):
    assert len(path.read_text().splitlines()) <= MAX_MODULE_LINES, path


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
    long = [
        (name, n)
        for path in SOURCES
        for name, n in function_lengths(path)
        if n > MAX_FUNCTION_LINES
    ]
    assert not long, long


def test_pipeline_never_imports_the_cli_nor_click():
    paths = sorted(PIPELINE.rglob("*.py"))
    assert len(paths) > 40, paths
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                assert not name.startswith(("pretrain_records.cli", "click")), (path, name)
