"""Mutation testing of the modules that guard data (``make mutate``; not part of ``make test``).

Runs mutmut 3 on each module (``--jobs`` of them at once), with only its test files (found by
name, :func:`find_tests`), then the operator swaps mutmut lacks (``tools/mutate_ops.py``: ``!=`` to
``<``/``>``, ``<``/``>`` to ``!=``, ``min`` <-> ``max``), and reports the score per module and every surviving mutant.
Survivors listed in ``tools/mutate_equivalents.toml`` (with the mutated line and
why the mutant behaves like the original) are reported as equivalent; any other
survivor, or an equivalent whose mutant changed or is now killed, fails the run.

Why mutmut, and why a staging directory: mutmut 3 forks one worker per mutant
from a process that has already imported pytest and the tests, and runs only
the tests that reached the mutated function (cosmic-ray starts a fresh pytest
per mutant: 3-20 s each here, hours for the whole set). With the staged
conftest (``tools/mutate_conftest.py``: likeliest killers first, hung tests
cut short) and recorded equivalents not re-run, the whole run takes ~22 minutes
on 2 cores (docs/development.md, "make mutate"). mutmut copies the code to a
``mutants/`` directory and names each mutant after the file's path, so the code
must sit at ``<dir>/ddb_backup`` to be imported (and named) as ``ddb_backup``:
our ``layers/core`` package-dir mapping is neither. Each module therefore runs
in ``.mutate/<module>/``, a copy of the tree laid out as the installed package
(``ddb_backup``, ``ddb_backup_cli``, ``devkit`` at the top), with no PYTHONPATH,
so the tests import the mutated copy and nothing else.

Usage: ``python tools/mutate.py [module ...] [--children N] [--jobs N] [--recheck] [--record-hashes]``; modules are the
entries of :data:`MODULES` (``restore/write.py``, ``ddb_backup_cli/files/mirror.py``); none means all.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script (python tools/mutate.py): the repo root is not on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.mutate_ops import operator_mutants, run_op_mutants

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / ".mutate"
EQUIVALENTS = ROOT / "tools" / "mutate_equivalents.toml"

#: The modules mutated, costliest first (CPU s in docs/development.md): under ``ddb_backup/`` unless
#: named from ``ddb_backup_cli/``. Their tests are found by name (:func:`find_tests`).
MODULES: list[str] = """
backup/finalize.py format/sources.py restore/target.py backup/fastscan.py restore/write.py format/lines.py
aws/retry.py format/localfile.py restore/preflight.py restore/fastwrite.py format/dialects.py
changes/archive.py changes/backtrack.py changes/consistent.py changes/events.py changes/follow.py
changes/lambda_event.py changes/mappings.py changes/replay.py changes/stream.py changes/totime.py
restore/exact.py backup/exact.py restore/importtable.py restore/capacity.py native/cfn.py native/pitr.py
native/restores.py native/snapshots.py ddb_backup_cli/files/restore.py ddb_backup_cli/files/mirror.py
ddb_backup_cli/files/cancel.py changes/gather.py restore/partitioned/split.py restore/partitioned/apply.py
""".split()  # noqa: SIM905 (one module a word: a short list to read and edit)

#: Test files beyond a module's own (:func:`find_tests`), only where its killing tests genuinely live elsewhere
#: (its callers' tests, tests/changes/, e2e). A file that killed none of a module's mutants in a whole run is not listed.
EXTRA_TESTS: dict[str, list[str]] = {
    # plan, scan and finalize are tested together, as the backup machine runs them
    "backup/finalize.py": ["tests/unit/backup/test_plan.py"],
    # the readers of a local file and of a backup set read through sources
    "format/sources.py": ["tests/unit/format/test_localfile.py", "tests/unit/test_restore_sets.py"],
    "restore/write.py": ["tests/unit/restore/test_fastwrite.py"],
    "format/lines.py": ["tests/unit/format/test_sources.py", "tests/unit/format/test_localfile.py"],
    # the retry loop is exercised by its three callers' throttling tests
    "aws/retry.py": [
        "tests/unit/restore/test_write.py",
        "tests/unit/backup/test_plan.py",
        "tests/unit/native/test_pitr.py",
    ],
    "format/localfile.py": ["tests/unit/format/test_sources.py"],
    "restore/fastwrite.py": ["tests/unit/format/test_localfile.py"],
    "format/dialects.py": [
        "tests/unit/format/test_sources.py",
        "tests/unit/format/test_localfile.py",
        "tests/unit/restore/test_fastwrite.py",
    ],
    # the change archive's modules, run as the archiver and the machines run them (tests/changes/)
    "changes/backtrack.py": ["tests/changes/test_backtrack.py"],
    "changes/archive.py": ["tests/changes/test_archiver.py"],
    "changes/mappings.py": ["tests/changes/test_archive_tables.py"],
    "backup/exact.py": ["tests/changes/test_exact.py"],
    # an exact backup's finalize, on the strict stream as the machine runs it
    "changes/gather.py": ["tests/changes/test_gather.py"],
    # a restore's changes split by key and applied by partition (the machine's glue and the CLI's loop share them)
    "restore/partitioned/split.py": ["tests/unit/restore/test_partitioned.py"],
    "restore/partitioned/apply.py": ["tests/unit/restore/test_partitioned.py"],
    # the custom resource's handler and the restores it starts are tested through the PITR resource
    "native/cfn.py": ["tests/unit/native/test_pitr.py"],
    "native/restores.py": ["tests/unit/native/test_pitr.py"],
    # the CLI's restore, mirror and cancel paths, as an operator runs them
    "ddb_backup_cli/files/restore.py": ["tests/unit/test_restore_sets.py", "tests/e2e/test_cli_restore.py"],
    "ddb_backup_cli/files/mirror.py": ["tests/e2e/test_cli_mirror.py"],
    "ddb_backup_cli/files/cancel.py": ["tests/e2e/test_cli_interrupt.py", "tests/unit/restore/test_write.py"],
}


def package_path(module: str) -> str:
    """The module's path in the staged tree: ``ddb_backup/restore/write.py``, ``ddb_backup_cli/files/mirror.py``."""
    return module if module.startswith("ddb_backup_cli/") else f"ddb_backup/{module}"


def find_tests(module: str, root: Path | None = None) -> list[str]:
    """The test files of ``module``, found by name, then its :data:`EXTRA_TESTS`.

    ``pkg/module.py`` is tested in ``tests/unit/pkg/test_module.py`` and any ``tests/unit/pkg/test_module_*.py``
    (a second file on one aspect); the CLI's ``ddb_backup_cli/files/mirror.py`` in ``tests/unit/cli/files/``.
    """
    root = root or ROOT
    folder, _, name = module.removeprefix("ddb_backup_cli/").rpartition("/")
    unit = Path("tests/unit") / ("cli/" if module.startswith("ddb_backup_cli/") else "") / folder
    stem = name.removesuffix(".py")
    own = [unit / f"test_{stem}.py", *sorted((root / unit).glob(f"test_{stem}_*.py"))]
    found = [str(p.relative_to(root)) if p.is_absolute() else str(p) for p in own if (root / p).exists()]
    return found + [t for t in EXTRA_TESTS.get(module, []) if t not in found]


#: What the tests need beside the code: copied into the staging tree (and by mutmut into ``mutants/``).
TREE = {
    "layers/core/ddb_backup": "ddb_backup",
    "cli/ddb_backup_cli": "ddb_backup_cli",
    "devkit": "devkit",
    "tests": "tests",
    "functions": "functions",
    "statemachine": "statemachine",
    "events": "events",
    "template.yaml": "template.yaml",
}
#: The recorded equivalents not run again (read by the staged conftest; see :func:`run_module`).
SKIP_FILE = "mutate-skip.txt"
#: The operator pass's verdicts (``tools/mutate_ops.py``), kept beside mutmut's for ``--report``.
OPS_FILE = "mutate-ops.json"
ALSO_COPY = [
    "ddb_backup_cli",
    "devkit",
    "functions",
    "statemachine",
    "events",
    "template.yaml",
    "conftest.py",
    SKIP_FILE,
]
#: Staged as the tree's root ``conftest.py``: likeliest killers first, a hung test ends its mutant (see the file).
ORDER_PLUGIN = ROOT / "tools" / "mutate_conftest.py"
STATUS = {0: "survived", 1: "killed", 3: "killed", 5: "no tests", 33: "no tests", 34: "skipped", 37: "killed"}
TIMEOUTS = {24, -24, 36, 152, 255}
#: A mutant's tests may take this many times their clean run's time (x2 in CPU seconds) before it counts as
#: timed out (killed): mutmut's default, 15, lets each mutant that loops forever burn 30x its tests' CPU; at 5,
#: an equivalent mutant on a machine loaded by three runs at once took 5.4x and was wrongly counted killed.
TIMEOUT_MULTIPLIER = 10.0


@dataclass
class Equivalent:
    """A surviving mutant that behaves as the original, with the line it mutates and why."""

    mutant: str
    line: str
    why: str
    function_hash: str | None = None  # mutmut's hash of the function's source when it was judged


@dataclass
class Score:
    """One module's outcome."""

    module: str
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    survivors: list[tuple[str, str]] = field(default_factory=list)  # (mutant, mutated line)
    untested: dict[str, int] = field(default_factory=dict)  # function -> mutants no mapped test reaches
    equivalent: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)  # function (module prefix + mutmut's name) -> hash

    @property
    def score(self) -> float:
        """Killed (timeouts count as killed) over all mutants that are not equivalent."""
        killed = self.counts.get("killed", 0) + self.counts.get("timeout", 0)
        total = sum(self.counts.values()) - len(self.equivalent)
        return 100.0 * killed / total if total else 100.0


def load_equivalents(path: Path = EQUIVALENTS) -> dict[str, Equivalent]:
    """The equivalent mutants, by name."""
    if not path.exists():
        return {}
    data = tomllib.loads(path.read_text())
    return {
        e["mutant"]: Equivalent(e["mutant"], e["line"], e["why"], e.get("function_hash"))
        for e in data.get("equivalent", [])
    }


def mutmut_config(module: str) -> str:
    """The ``[tool.mutmut]`` section for one module: only its file, only its tests."""
    tests = ", ".join(json.dumps(t) for t in find_tests(module))
    package = package_path(module).partition("/")[0]
    also_copy = [p for p in [*ALSO_COPY, "ddb_backup"] if p != package]
    return (
        "\n[tool.mutmut]\n"
        f'source_paths = ["{package}"]\n'
        f'only_mutate = ["{package_path(module)}"]\n'
        f"pytest_add_cli_args_test_selection = [{tests}]\n"
        'pytest_add_cli_args = ["-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:unraisableexception"]\n'
        f"also_copy = {json.dumps(also_copy)}\n"
        "use_git_change_detection = false\n"
        f"timeout_multiplier = {TIMEOUT_MULTIPLIER}\n"
    )


def stage(module: str, skip: list[str]) -> Path:
    """A fresh copy of the tree laid out as the installed packages, configured for ``module``."""
    where = STAGE / module.replace("/", ".").removesuffix(".py")
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", "*.pyc")
    for src, dst in TREE.items():
        if (ROOT / src).is_dir():
            shutil.copytree(ROOT / src, where / dst, ignore=ignore)
        elif (ROOT / src).exists():
            shutil.copy2(ROOT / src, where / dst)
    shutil.copy2(ORDER_PLUGIN, where / "conftest.py")
    (where / SKIP_FILE).write_text("".join(f"{name}\n" for name in skip))
    pyproject = (ROOT / "pyproject.toml").read_text() + mutmut_config(module)
    (where / "pyproject.toml").write_text(pyproject)
    return where


def mutmut(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the mutmut beside this Python in ``where``, with no PYTHONPATH (the staged tree is the code)."""
    exe = Path(sys.executable).with_name("mutmut")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(exe), *args], cwd=where, env=env, text=True, capture_output=True, check=False)


#: Run by mutmut's Python in the staging directory: the diff of each named mutant, as JSON (one process for all).
_DIFFS = """
import json, sys
from pathlib import Path
from mutmut.mutation.diff_apply import get_diff_for_mutant
path = Path(sys.argv[1])
print(json.dumps({name: get_diff_for_mutant(name, path=path) for name in sys.argv[2:]}))
"""


def mutated_lines(where: Path, module: str, mutants: list[str]) -> dict[str, str]:
    """The line(s) each mutant adds, joined by `` / ``, from mutmut's own diffs."""
    if not mutants:
        return {}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cmd = [sys.executable, "-c", _DIFFS, package_path(module), *mutants]
    done = subprocess.run(cmd, cwd=where, env=env, text=True, capture_output=True, check=True)
    lines = {}
    for name, diff in json.loads(done.stdout).items():
        added = [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
        lines[name] = " / ".join(added)
    return lines


def run_module(  # noqa: C901 (stage, mutmut, the operator pass, equivalents: one module's run, read as one)
    module: str, children: int, equivalents: dict[str, Equivalent], *, again: bool = True, recheck: bool = False
) -> Score:
    """Mutate one module (``again=False``: read the last run's results) and classify every mutant.

    A recorded equivalent with a ``function_hash`` is not run again (its tests are all its
    mutant's tests, each to the end: the dearest mutants of all) unless ``recheck``; after the run
    its mutated line and its function's hash must still be the recorded ones, or it is run after all.
    """
    started = time.monotonic()
    where = STAGE / module.replace("/", ".").removesuffix(".py")
    meta = where / "mutants" / f"{package_path(module)}.meta"
    prefix = _prefix(module)
    if again or not meta.exists():
        skip = [] if recheck else sorted(n for n, e in equivalents.items() if n.startswith(prefix) and e.function_hash)
        where = stage(module, skip)
        done = mutmut(where, "run", "--max-children", str(children))
        if not meta.exists():
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
            raise SystemExit(f"mutmut produced no results for {module} (output above)")
        unproved = changed_since_judged(where, module, skip, equivalents)
        if unproved:  # run those by name; the others stay skipped (and are read as such below)
            (where / "mutants" / SKIP_FILE).write_text("".join(f"{n}\n" for n in skip if n not in unproved))
            mutmut(where, "run", "--max-children", str(children), *unproved)
    ops = where / OPS_FILE
    if again or not ops.exists():
        ops.write_text(json.dumps(run_ops(where, module, equivalents, recheck=recheck), indent=1))
    result = Score(module, seconds=time.monotonic() - started)
    data = json.loads(meta.read_text())
    codes: dict[str, int | None] = data["exit_code_by_key"]
    skipped = (
        set((where / "mutants" / SKIP_FILE).read_text().split()) if (where / "mutants" / SKIP_FILE).exists() else set()
    )
    survived = [m for m, code in codes.items() if code == 0]
    lines = mutated_lines(where, module, survived)
    for mutant, code in sorted(codes.items(), key=lambda kv: _natural(kv[0])):
        status = "timeout" if code in TIMEOUTS else STATUS.get(code, "suspicious") if code is not None else "not run"
        if status == "no tests" and mutant in skipped:
            status = "not re-run"
            result.equivalent.append(mutant)
        result.counts[status] = result.counts.get(status, 0) + 1
        if status == "survived":
            classify(result, mutant, lines[mutant], equivalents)
        elif status == "no tests":
            result.untested[_function(mutant)] = result.untested.get(_function(mutant), 0) + 1
    result.hashes = _function_hashes(data, module)
    for name, (status, line) in json.loads(ops.read_text()).items():
        result.counts[status] = result.counts.get(status, 0) + 1
        if status == "not re-run":
            result.equivalent.append(name)
        elif status == "survived":
            classify(result, name, line, equivalents)
    for name in equivalents:
        if name.startswith(prefix) and name not in result.equivalent and name not in result.stale:
            result.stale.append(f"{name}: listed as equivalent but not a survivor now (killed or renamed)")
    return result


def run_ops(where: Path, module: str, equivalents: dict[str, Equivalent], *, recheck: bool) -> dict[str, list[str]]:
    """The operator swaps mutmut lacks (tools/mutate_ops.py), each run against the module's tests: name -> [status, line].

    A recorded equivalent whose line and function are unchanged is not run again (as for mutmut's own).
    """
    source = (where / package_path(module)).read_text()
    mutants = operator_mutants(source, _prefix(module))
    hashes = _function_hashes(json.loads((where / "mutants" / f"{package_path(module)}.meta").read_text()), module)
    skip = set()
    for m in mutants:
        known = equivalents.get(m.name)
        if not recheck and known and known.line == m.line and known.function_hash == hashes.get(_function(m.name)):
            skip.add(m.name)
    verdicts = run_op_mutants(where / "mutants", package_path(module), find_tests(module), mutants, skip)
    return {m.name: [verdicts[m.name], m.line] for m in mutants}


def changed_since_judged(where: Path, module: str, skip: list[str], equivalents: dict[str, Equivalent]) -> list[str]:
    """The skipped equivalents whose mutated line or function is not what it was when judged: to run after all."""
    if not skip:
        return []
    data = json.loads((where / "mutants" / f"{package_path(module)}.meta").read_text())
    hashes, codes = _function_hashes(data, module), data["exit_code_by_key"]
    lines = mutated_lines(where, module, [n for n in skip if n in codes])
    return [
        n
        for n in skip
        if n not in codes or lines[n] != equivalents[n].line or hashes.get(_function(n)) != equivalents[n].function_hash
    ]


def _prefix(module: str) -> str:
    """What every mutant of ``module`` is named with: ``ddb_backup.restore.write.``."""
    return package_path(module).removesuffix(".py").replace("/", ".") + "."


def _function(mutant: str) -> str:
    """The mutated function, named as its mutants are: ``ddb_backup.restore.write.x_write_items``."""
    return mutant.rpartition("__mutmut_")[0]


def _function_hashes(meta: dict[str, Any], module: str) -> dict[str, str]:
    """mutmut's hash of each function's source (from a module's .meta), by :func:`_function` name."""
    return {_prefix(module) + f: h for f, h in meta.get("hash_by_function_name", {}).items()}


def classify(result: Score, mutant: str, line: str, equivalents: dict[str, Equivalent]) -> None:
    """File a survivor as equivalent (same mutated line as recorded) or as a survivor to act on."""
    known = equivalents.get(mutant)
    if known is None:
        result.survivors.append((mutant, line))
    elif known.line != line:
        result.stale.append(f"{mutant}: recorded line {known.line!r}, now {line!r}")
        result.survivors.append((mutant, line))
    else:
        result.equivalent.append(mutant)


def _natural(name: str) -> tuple[str, int]:
    head, _, num = name.rpartition("__mutmut_")
    return head, int(num) if num.isdigit() else 0


def report(scores: list[Score]) -> str:
    """The per-module table, then every survivor and stale entry."""
    rows = ["| module | mutants | killed | timeout | survived | equivalent | no tests | score | time |"]
    rows.append("|---|---|---|---|---|---|---|---|---|")
    for s in scores:
        c = s.counts
        rows.append(
            f"| {s.module} | {sum(c.values())} | {c.get('killed', 0)} | {c.get('timeout', 0)} | "
            f"{len(s.survivors)} | {len(s.equivalent)} | {c.get('no tests', 0)} | {s.score:.1f}% | {s.seconds:.0f}s |"
        )
    for s in scores:
        for mutant, line in s.survivors:
            rows.append(f"SURVIVED {mutant}: {line}")
        for function, n in s.untested.items():
            rows.append(f"NO TESTS {function}: {n} mutants (no mapped test file reaches it)")
        for note in s.stale:
            rows.append(f"STALE {note}")
    return "\n".join(rows)


def record_hashes(scores: list[Score], path: Path = EQUIVALENTS) -> int:
    """Set ``function_hash`` on every equivalent these scores confirmed; returns how many entries changed."""
    hashes = {}
    for s in scores:
        for name in s.equivalent:
            digest = s.hashes.get(_function(name))
            if digest:
                hashes[name] = digest
    changed = 0
    blocks = path.read_text().split("[[equivalent]]\n")
    for i, block in enumerate(blocks[1:], start=1):
        name = tomllib.loads(block)["mutant"]
        if name not in hashes:
            continue
        kept = [ln for ln in block.splitlines(keepends=True) if not ln.startswith("function_hash = ")]
        at = next(j for j, ln in enumerate(kept) if ln.startswith("mutant = ")) + 1
        updated = "".join([*kept[:at], f'function_hash = "{hashes[name]}"\n', *kept[at:]])
        changed += updated != block
        blocks[i] = updated
    path.write_text("[[equivalent]]\n".join(blocks))
    return changed


def main(argv: list[str] | None = None) -> int:
    """Run the modules asked for (all by default), print the report, fail on unexplained survivors."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"modules under ddb_backup/ (default: all): {', '.join(MODULES)}")
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once, per module (default 2)")
    parser.add_argument("--jobs", type=int, default=1, help="modules run at once (default 1), each with --children")
    parser.add_argument(
        "--report", action="store_true", help="report the last run's results again (after editing the equivalents)"
    )
    parser.add_argument(
        "--recheck", action="store_true", help="run the recorded equivalents too (by default those unchanged are not)"
    )
    parser.add_argument(
        "--record-hashes",
        action="store_true",
        help="write each confirmed equivalent's function hash into the equivalents file (so later runs skip it)",
    )
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES or not find_tests(m)]
    if unknown:
        parser.error(
            f"not mutated or no tests for {', '.join(unknown)}: add it to MODULES in tools/mutate.py and "
            "its tests to tests/unit/<pkg>/test_<module>.py"
        )
    equivalents = load_equivalents()
    untested = [m for m in MODULES if not find_tests(m)] if not args.modules else []
    modules = args.modules or [m for m in MODULES if m not in untested]

    def one(module: str) -> Score:
        score = run_module(module, args.children, equivalents, again=not args.report, recheck=args.recheck)
        print(report([score]).splitlines()[2], flush=True)
        return score

    # The costliest modules first (the order of MODULES), so the last to finish is a short one.
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        scores = list(pool.map(one, modules))
    text = report(scores)
    (STAGE / "report.md").write_text(text + "\n")
    print(text)
    if args.record_hashes:
        print(f"recorded the function hash of {record_hashes(scores)} equivalent(s) in {EQUIVALENTS.name}")
    for module in untested:
        print(f"NOT RUN {module}: no tests found by name (tests/unit/<pkg>/test_<module>.py) nor in EXTRA_TESTS")
    bad = sum(len(s.survivors) + len(s.stale) + sum(s.untested.values()) for s in scores) + len(untested)
    print(f"{bad} survivor(s) neither killed nor recorded as equivalent" if bad else "every survivor is explained")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
