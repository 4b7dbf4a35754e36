"""tools/mutate.py's bookkeeping of equivalent mutants (the mutation run itself is `make mutate`)."""

from __future__ import annotations

from tools.mutate import (
    EXTRA_TESTS,
    MODULES,
    Equivalent,
    Score,
    classify,
    find_tests,
    load_equivalents,
    package_path,
    record_hashes,
)
from tools.mutate_ops import operator_mutants

TOML = """# header kept

[[equivalent]]
mutant = "ddb_backup.format.lines.x_decoded__mutmut_3"
line = 'first = None'
why = "Why one."

[[equivalent]]
mutant = "ddb_backup.format.lines.x_split_lines__mutmut_9"
function_hash = "old"
line = "pending = [\\"x\\"]"
why = "Why two, with \\"quotes\\"."

[[equivalent]]
mutant = "ddb_backup.format.lines.x_other__mutmut_1"
line = 'x = 1'
why = "Not confirmed by this run."
"""


def test_a_confirmed_equivalent_gets_its_function_hash_and_nothing_else_changes(tmp_path):
    path = tmp_path / "equivalents.toml"
    path.write_text(TOML)
    before = load_equivalents(path)
    score = Score("format/lines.py")
    score.equivalent = [
        "ddb_backup.format.lines.x_decoded__mutmut_3",
        "ddb_backup.format.lines.x_split_lines__mutmut_9",
    ]
    score.hashes = {"ddb_backup.format.lines.x_decoded": "h1", "ddb_backup.format.lines.x_split_lines": "h2"}
    assert record_hashes([score], path) == 2
    after = load_equivalents(path)
    assert {n: e.function_hash for n, e in after.items()} == {
        "ddb_backup.format.lines.x_decoded__mutmut_3": "h1",
        "ddb_backup.format.lines.x_split_lines__mutmut_9": "h2",
        "ddb_backup.format.lines.x_other__mutmut_1": None,
    }
    assert {n: (e.line, e.why) for n, e in after.items()} == {n: (e.line, e.why) for n, e in before.items()}
    assert path.read_text().startswith("# header kept\n") and path.read_text().count("function_hash") == 2
    assert record_hashes([score], path) == 0  # already recorded: the file is left as it is


def test_a_survivor_is_equivalent_only_with_the_recorded_line():
    known = {"m__mutmut_1": Equivalent("m__mutmut_1", "x = 2", "why", "h")}
    score = Score("format/lines.py")
    classify(score, "m__mutmut_1", "x = 2", known)
    classify(score, "m__mutmut_1", "x = 3", known)
    classify(score, "m__mutmut_2", "y = 0", known)
    assert score.equivalent == ["m__mutmut_1"]
    assert score.survivors == [("m__mutmut_1", "x = 3"), ("m__mutmut_2", "y = 0")]
    assert score.stale == ["m__mutmut_1: recorded line 'x = 2', now 'x = 3'"]


def test_a_modules_tests_are_found_by_name_then_its_listed_extras(tmp_path):
    for path in ("tests/unit/restore/test_preflight.py", "tests/unit/restore/test_preflight_parts.py",
                 "tests/unit/restore/test_preflightish.py", "tests/unit/cli/files/test_mirror.py"):  # fmt: skip
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    assert find_tests("restore/preflight.py", tmp_path) == [
        "tests/unit/restore/test_preflight.py",
        "tests/unit/restore/test_preflight_parts.py",
    ]
    assert find_tests("ddb_backup_cli/files/mirror.py", tmp_path)[0] == "tests/unit/cli/files/test_mirror.py"
    assert find_tests("native/cfn.py", tmp_path) == EXTRA_TESTS["native/cfn.py"]  # none by name: its extras
    assert package_path("ddb_backup_cli/files/mirror.py") == "ddb_backup_cli/files/mirror.py"
    assert package_path("restore/write.py") == "ddb_backup/restore/write.py"


def test_every_mutated_module_has_tests():
    assert [m for m in MODULES if not find_tests(m)] == ["changes/events.py"]


SOURCE = """LIMIT = min(1, 2)


def f(a, b):
    if a != b and len(a) < 3:
        return max(a, b)
    return a > b  # pragma: no mutate


class C:
    def m(self, x):
        return x != 1
"""


def test_the_operator_pass_makes_the_swaps_mutmut_lacks_inside_functions_named_as_mutmut_names_them():
    made = {m.name: (m.lineno, m.line) for m in operator_mutants(SOURCE, "pkg.mod.")}
    assert made == {
        "pkg.mod.x_f__mutmut_ne_lt1": (5, "if a < b and len(a) < 3:"),
        "pkg.mod.x_f__mutmut_ne_gt2": (5, "if a > b and len(a) < 3:"),
        "pkg.mod.x_f__mutmut_lt_ne3": (5, "if a != b and len(a) != 3:"),
        "pkg.mod.x_f__mutmut_max_min4": (6, "return min(a, b)"),
        "pkg.mod.xǁCǁm__mutmut_ne_lt1": (12, "return x < 1"),
        "pkg.mod.xǁCǁm__mutmut_ne_gt2": (12, "return x > 1"),
    }
    (mutant,) = [m for m in operator_mutants(SOURCE, "pkg.mod.") if m.name.endswith("max_min4")]
    assert mutant.source == SOURCE.replace("return max(a, b)", "return min(a, b)")
