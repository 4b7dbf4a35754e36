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


_ENV = ("environ", "getenv", "putenv", "unsetenv")


def _reads_environment(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in _ENV and ast.unparse(node.value) == "os":
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "os" and any(a.name in _ENV for a in node.names):
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


#: Imports only go down this list (a package may import its own level and those before it):
#: the leaf of rules, the AWS tier, the backup format, the models of every state, the features,
#: then config (the environment). The handlers and the CLI stand above all of them.
ORDER = (
    ("names", ("ddb_backup", "ddb_backup.errors", "ddb_backup.names")),
    ("aws", ("ddb_backup.aws",)),
    ("format", ("ddb_backup.format",)),
    ("models", ("ddb_backup.models", "ddb_backup.events")),
    (
        "features",
        (
            "ddb_backup.backup",
            "ddb_backup.restore",
            "ddb_backup.native",
            "ddb_backup.changes",
            "ddb_backup.estimate",
            "ddb_backup.compare",
            "ddb_backup.selection",
        ),
    ),
    ("config", ("ddb_backup.config", "ddb_backup.observability")),
)
#: Imports inside a function, allowed in the layer (none: a cycle says a piece lives in the wrong room).
FUNCTION_IMPORTS_ALLOWED: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(LAYER.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


_KNOWN = {_module_name(p) for p in _modules(LAYER)}


def level(module: str) -> int | None:
    """The level of a module of the layer (longest matching package wins); None outside the layer."""
    best: tuple[int, int] | None = None
    for n, (_, packages) in enumerate(ORDER):
        for package in packages:
            inside = module == package or (package != "ddb_backup" and module.startswith(package + "."))
            if inside and (best is None or len(package) > best[1]):
                best = (n, len(package))
    if best is None and (module == "ddb_backup" or module.startswith("ddb_backup.")):
        raise AssertionError(f"{module}: give it a level in tests/unit/test_layers.py ORDER")
    return None if best is None else best[0]


def _imported(node: ast.Import | ast.ImportFrom, here: str) -> list[str]:
    """The modules an import statement names (``from p import m`` may name the module p.m)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:  # relative
        base = ".".join(here.split(".")[: -node.level] + ([base] if base else []))
    return [base] + [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in _KNOWN]


class _Imports(ast.NodeVisitor):
    """Every import of a module with where it stands: module level (``TYPE_CHECKING`` too) or in a function."""

    def __init__(self) -> None:
        self.found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []
        self._depth = 0

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import) -> None:
        self.found.append((node, self._depth > 0))

    visit_ImportFrom = visit_Import  # type: ignore[assignment]


def _layer_imports() -> list[tuple[str, ast.Import | ast.ImportFrom, bool]]:
    out = []
    for path in _modules(LAYER):
        visitor = _Imports()
        visitor.visit(ast.parse(path.read_text()))
        out.extend((_module_name(path), node, in_function) for node, in_function in visitor.found)
    return out


def test_imports_only_go_down():
    upward = []
    for module, node, _ in _layer_imports():
        mine = level(module)
        assert mine is not None
        for target in _imported(node, module):
            theirs = level(target)
            if theirs is not None and theirs > mine:
                upward.append(f"{module} ({ORDER[mine][0]}) imports {target} ({ORDER[theirs][0]})")
    assert sorted(set(upward)) == []


def test_no_import_in_the_layer_hides_inside_a_function():
    hidden = {
        (module, ast.unparse(node)) for module, node, in_function in _layer_imports() if in_function
    } - FUNCTION_IMPORTS_ALLOWED
    assert sorted(hidden) == []


def test_the_order_is_read_as_written():
    """The check itself: an upward import and a function-level import are seen, a TYPE_CHECKING one is not."""
    assert level("ddb_backup.names") < level("ddb_backup.aws.tables") < level("ddb_backup.format.layout")
    assert level("ddb_backup.format.layout") < level("ddb_backup.events") < level("ddb_backup.restore.run")
    assert level("ddb_backup.restore.run") < level("ddb_backup.config")
    assert level("boto3") is None
    tree = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ddb_backup import config\n"
        "def f():\n    from ddb_backup.format import layout\n"
    )
    visitor = _Imports()
    visitor.visit(tree)
    assert [(ast.unparse(n), inside) for n, inside in visitor.found] == [
        ("from typing import TYPE_CHECKING", False),
        ("from ddb_backup import config", False),
        ("from ddb_backup.format import layout", True),
    ]
    assert _imported(visitor.found[1][0], "ddb_backup.aws.tables") == ["ddb_backup", "ddb_backup.config"]
    assert _imported(ast.parse("from ddb_backup import FORMAT_VERSION").body[0], "x") == ["ddb_backup"]  # a name
