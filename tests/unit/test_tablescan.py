"""verify's and a mirror's reads of a table (issue 24, point 12): parallel segments, within a read rate, exact."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.client import BaseClient

from ddb_backup.aws.ratelimit import Limit, RateLimiter
from ddb_backup.format.ddbjson import canonical_wire, item_to_wire
from ddb_backup_cli.files import tablescan, verify
from ddb_backup_cli.main import main
from devkit import sample

KEYS = [("pk", "HASH")]


@pytest.fixture
def filled(ddb) -> Any:
    sample.create_table(ddb, "scan-Table", KEYS)
    sample.fill(ddb, "scan-Table", sample.items(KEYS, 300, seed=3))
    return ddb


def _scans(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    send = BaseClient._make_api_call

    def call(self: Any, operation: str, params: Any) -> Any:
        if operation == "Scan":
            seen.append(dict(params))
        return send(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", call)
    return seen


def test_the_table_is_read_in_parallel_segments_every_item_once(filled, monkeypatch):
    seen = _scans(monkeypatch)
    got = list(verify.scan_items(filled, "scan-Table"))
    assert sorted(canonical_wire(i) for i in got) == sorted(
        canonical_wire(item_to_wire(i)) for i in sample.items(KEYS, 300, seed=3)
    )
    assert {s.get("TotalSegments") for s in seen} == {tablescan.MIN_SEGMENTS}
    assert {s["Segment"] for s in seen} == set(range(tablescan.MIN_SEGMENTS))


def test_a_read_rate_is_kept_by_one_bucket_the_segments_share(filled):
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(5.0, clock=lambda: now[0], sleep=sleep)
    got = list(tablescan.table_items(filled, "scan-Table", segments=4, workers=4, limiter=limiter))
    assert len(got) == 300
    assert limiter.consumed > 0
    # the units consumed, less the first second's burst, took at least consumed / rate seconds of waiting
    assert now[0] >= (limiter.consumed - 5.0) / 5.0 - 1e-6, (now[0], limiter.consumed)


def test_verify_and_a_mirror_take_read_rate_options(filled, tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "t.json")
    assert main(["backup", "--table", "scan-Table", "--out", out, "-q"]) == 0
    taken: list[Limit] = []
    real = tablescan.read_limiter
    monkeypatch.setattr(tablescan, "read_limiter", lambda d, limit: taken.append(limit) or real(d, limit))
    assert main(["verify", "--table", "scan-Table", "--backup", out, "--read-rate", "50000", "-q"]) == 0
    argv = ["restore", out, "--table", "scan-Table", "--mode", "mirror", "--yes", "--allow-source"]
    argv += ["--read-rate", "40000", "-q"]
    assert main(argv) == 0, capsys.readouterr().err
    assert taken == [Limit(50000.0, None), Limit(40000.0, None), Limit(40000.0, None)]  # verify; mirror's 2 scans


def test_an_error_in_a_segment_is_raised_by_the_reader(filled, monkeypatch):
    send = BaseClient._make_api_call

    def call(self: Any, operation: str, params: Any) -> Any:
        if operation == "Scan" and params.get("Segment") == 3:
            raise RuntimeError("segment 3 failed")
        return send(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", call)
    with pytest.raises(RuntimeError, match="segment 3 failed"):
        list(tablescan.table_items(filled, "scan-Table", segments=4, workers=2))


def test_sets_in_another_order_are_equal_and_a_string_that_looks_like_a_set_is_not_reordered():
    a = {"s": {"SS": ["b", 'a"]', "c"]}, "m": {"M": {"n": {"NS": ["3", "1"]}}}, "t": {"S": '"SS":["z","a"]'}}
    b = {"t": {"S": '"SS":["z","a"]'}, "m": {"M": {"n": {"NS": ["1", "3"]}}}, "s": {"SS": ["c", "b", 'a"]']}}
    assert canonical_wire(a) == canonical_wire(b)
    assert canonical_wire(a) != canonical_wire({**b, "t": {"S": '"SS":["a","z"]'}})
    assert canonical_wire(a) != canonical_wire({**b, "s": {"SS": ["c", "b"]}})
