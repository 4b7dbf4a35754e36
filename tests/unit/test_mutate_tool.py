"""tools/mutate.py's bookkeeping of equivalent mutants (the mutation run itself is `make mutate`)."""

from __future__ import annotations

from tools.mutate import Equivalent, Score, classify, load_equivalents, record_hashes

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
