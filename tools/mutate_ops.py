"""The operator swaps mutmut 3 does not make, run after it by ``tools/mutate.py``.

mutmut swaps ``<`` <-> ``<=``, ``>`` <-> ``>=``, ``==`` <-> ``!=`` and ``and`` <-> ``or``, but
never turns ``!=`` into an ordering, an ordering into ``!=``, or ``min`` into ``max``: issue 27
found such one-character bugs surviving in modules mutmut scored at 100 %. This pass makes them:

- ``a != b`` -> ``a < b`` and ``a > b``;
- ``a < b`` and ``a > b`` -> ``a != b``;
- ``min(...)`` <-> ``max(...)``.

Each mutant is written over the module in the staged ``mutants/`` tree (the copy mutmut's
tests import), its tests run in a fresh pytest (first failure ends it), and the file is put back.
It is named as mutmut names its own, ``<function>__mutmut_<kind><n>``, so the staged conftest
orders its tests by the kills recorded against the same function and cuts a hung test short
(exit 36); equivalents are recorded in ``tools/mutate_equivalents.toml`` like mutmut's.
Only code inside functions is mutated (as mutmut does), and never a line marked ``# pragma: no mutate``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

#: pytest's own exit codes and the staged conftest's timeout, as verdicts (2: the mutant broke collection).
VERDICT = {0: "survived", 1: "killed", 2: "killed", 3: "killed", 4: "suspicious", 5: "no tests", 36: "timeout"}


@dataclass(frozen=True)
class OpMutant:
    """One swap: its name, where it is, and the module's whole text with it made."""

    name: str
    line: str
    lineno: int
    source: str


_ORDER_TO_NE = {cst.LessThan: "lt", cst.GreaterThan: "gt"}


def _swaps(node: cst.CSTNode) -> list[tuple[str, cst.CSTNode]]:
    """The (kind, replacement) swaps of one node."""
    if isinstance(node, cst.ComparisonTarget):
        if isinstance(node.operator, cst.NotEqual):
            return [
                ("ne_lt", node.with_changes(operator=cst.LessThan())),
                ("ne_gt", node.with_changes(operator=cst.GreaterThan())),
            ]
        kind = _ORDER_TO_NE.get(type(node.operator))
        if kind:
            return [(f"{kind}_ne", node.with_changes(operator=cst.NotEqual()))]
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value in ("min", "max"):
        other = "max" if node.func.value == "min" else "min"
        return [(f"{node.func.value}_{other}", node.with_changes(func=cst.Name(other)))]
    return []


class _Finder(cst.CSTVisitor):
    """Every swappable node inside a function, with the function's mutmut name and its line."""

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, prefix: str, lines: list[str]) -> None:
        self.prefix = prefix
        self.lines = lines
        self.scope: list[tuple[str, str]] = []  # ("class" | "def", name)
        self.found: list[tuple[str, str, int, cst.CSTNode, cst.CSTNode]] = []  # function, kind, line, old, new

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.scope.append(("class", node.name.value))

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self.scope.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.scope.append(("def", node.name.value))

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.scope.pop()

    def _function(self) -> str | None:
        """mutmut's name for the outermost function here (``x_f``, ``xǁClassǁmethod``), None outside one."""
        classes: list[str] = []
        for kind, name in self.scope:
            if kind == "def":
                return self.prefix + (f"xǁ{'ǁ'.join(classes)}ǁ{name}" if classes else f"x_{name}")
            classes.append(name)
        return None

    def on_visit(self, node: cst.CSTNode) -> bool:
        function = self._function()
        if function is not None:
            for kind, new in _swaps(node):
                lineno = self.get_metadata(PositionProvider, node).start.line
                if "pragma: no mutate" not in self.lines[lineno - 1]:
                    self.found.append((function, kind, lineno, node, new))
        return super().on_visit(node)


class _Replace(cst.CSTTransformer):
    def __init__(self, old: cst.CSTNode, new: cst.CSTNode) -> None:
        self.old, self.new = old, new

    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode) -> cst.CSTNode:  # type: ignore[override]
        return self.new if original_node is self.old else updated_node


def operator_mutants(source: str, prefix: str) -> list[OpMutant]:
    """Every swap this pass makes in ``source``, named after its function (``prefix``: ``ddb_backup.x.y.``)."""
    wrapper = MetadataWrapper(cst.parse_module(source), unsafe_skip_copy=True)
    finder = _Finder(prefix, source.splitlines())
    wrapper.visit(finder)
    counts: dict[str, int] = {}
    mutants = []
    for function, kind, lineno, old, new in finder.found:
        counts[function] = counts.get(function, 0) + 1
        mutated = wrapper.module.visit(_Replace(old, new)).code
        changed = mutated.splitlines()[lineno - 1].strip()
        mutants.append(OpMutant(f"{function}__mutmut_{kind}{counts[function]}", changed, lineno, mutated))
    return mutants


def run_op_mutants(
    mutants_dir: Path, module_path: str, tests: list[str], mutants: list[OpMutant], skip: set[str]
) -> dict[str, str]:
    """Each mutant's verdict, made in ``mutants_dir`` (mutmut's copy) with ``module_path`` swapped in, then put back."""
    target = mutants_dir / module_path
    original = target.read_text()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    verdicts = {}
    args = ["-x", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:unraisableexception"]
    try:
        for mutant in mutants:
            if mutant.name in skip:
                verdicts[mutant.name] = "not re-run"
                continue
            target.write_text(mutant.source)
            done = subprocess.run(
                [sys.executable, "-m", "pytest", *args, *tests],
                cwd=mutants_dir,
                env={**env, "MUTANT_UNDER_TEST": mutant.name},
                capture_output=True,
                text=True,
                check=False,
            )
            verdicts[mutant.name] = VERDICT.get(done.returncode, "timeout" if done.returncode < 0 else "suspicious")
    finally:
        target.write_text(original)
    return verdicts
