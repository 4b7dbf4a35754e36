"""The layer's architecture, read from its source: who reads the environment, and who imports whom."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers/core/ddb_backup"
FUNCTIONS = ROOT / "functions"
CLI = ROOT / "cli/ddb_backup_cli"


def _modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _reads_environment(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv", "unsetenv"):
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                return True
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            if any(a.name in ("environ", "getenv", "putenv", "unsetenv") for a in node.names):
                return True
    return False


def _imports(tree: ast.AST) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def test_config_is_the_only_reader_of_the_environment_in_the_layer_and_the_functions():
    readers = [
        str(p.relative_to(ROOT))
        for p in _modules(LAYER) + _modules(FUNCTIONS)
        if _reads_environment(ast.parse(p.read_text()))
    ]
    assert readers == ["layers/core/ddb_backup/config.py"]


def test_the_cli_reads_its_environment_in_one_place():
    readers = [str(p.relative_to(ROOT)) for p in _modules(CLI) if _reads_environment(ast.parse(p.read_text()))]
    assert readers == ["cli/ddb_backup_cli/common.py"]


def test_only_the_handlers_and_the_cli_import_config():
    importers = [
        str(p.relative_to(ROOT))
        for p in _modules(LAYER)
        if p.name != "config.py" and "ddb_backup.config" in _imports(ast.parse(p.read_text()))
    ]
    assert importers == []
