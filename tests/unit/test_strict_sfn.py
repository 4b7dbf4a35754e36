"""devkit.strict.sfn: moto's note that the Map thresholds "have no effect" is silenced while they are enforced
(issue 24 point 13: ``make demo`` and ``local-stack`` printed it on every execution)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

from devkit.strict import sfn as strict_sfn

ROOT = Path(__file__).resolve().parents[2]


def _parse_machines() -> None:
    for path in sorted((ROOT / "statemachine").glob("*.asl.json")):
        text = path.read_text()
        if "ToleratedFailure" in text:
            AmazonStateLanguageParser.parse(json.dumps(json.loads(text)))


def _notes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "have no effect" in r.getMessage()]


def test_the_thresholds_note_is_dropped_while_they_are_enforced_and_only_then(caplog):
    caplog.set_level(logging.WARNING)
    with strict_sfn.enforced():
        _parse_machines()
    assert _notes(caplog) == []
    _parse_machines()  # outside the enforcement moto's note is true, and kept
    assert any("ToleratedFailure" in note for note in _notes(caplog))
