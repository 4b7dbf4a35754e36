"""`make demo` end to end, small: eight Cumulus tables backed up, restored and verified."""

from __future__ import annotations

import io

from devkit.demo import run_demo


def test_the_demo_verifies_all_eight_tables():
    out = io.StringIO()
    assert run_demo(items=40, out=out) == 0
    lines = [line for line in out.getvalue().splitlines() if line.startswith("mystack-")]
    assert len(lines) == 8 and all(line.endswith("yes") for line in lines)
