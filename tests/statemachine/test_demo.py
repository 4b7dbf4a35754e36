"""`make demo` end to end, small: eight Cumulus tables backed up, restored and verified."""

from __future__ import annotations

import io

from devkit.demo import run_demo


def test_the_demo_verifies_all_eight_tables():
    out = io.StringIO()
    assert run_demo(items=40, out=out) == 0
    lines = [line for line in out.getvalue().splitlines() if line.startswith("mystack-")]
    assert len(lines) == 8 and all(line.endswith("yes") for line in lines)


def test_demo_json_prints_one_json_document_and_no_chatter(capsys):
    import json

    from devkit.cli import main

    assert main(["--json", "demo", "--items", "30"]) == 0  # ddb-backup-dev --json demo --items 30
    doc = json.loads(capsys.readouterr().out)  # the whole of stdout
    assert len(doc["tables"]) == 8 and all(t["verified"] for t in doc["tables"])
    assert {t["restoredAs"] for t in doc["tables"]} == {
        t["table"].replace("mystack-", "restore-") for t in doc["tables"]
    }
