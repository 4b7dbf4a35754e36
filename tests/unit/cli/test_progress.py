"""The CLI's progress display (rich, on stderr): per page, against a total, ticking during a stall, off off-terminal.

A ``FakeTTY`` (a StringIO that says it is a terminal) stands in for stderr, so
the display is drawn as on a terminal and its frames can be read back.
"""

from __future__ import annotations

import io
import sys
import threading
from typing import Any

import pytest

from ddb_backup.aws.clients import client
from ddb_backup.backup.scan import ScanSettings
from ddb_backup_cli.files.backup import backup_to_file, backup_to_s3
from ddb_backup_cli.files.restore import restore_sources
from ddb_backup_cli.files.verify import verify_table
from ddb_backup_cli.main import main
from ddb_backup_cli.progress import Progress
from devkit import sample

ITEMS = 300
TABLE = "p-GranulesTable"


class FakeTTY(io.StringIO):
    """A stream that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


class Recording(Progress):
    """A progress display that also keeps the running count after every update."""

    def __init__(self, label: str, **kwargs: Any) -> None:
        self.seen: list[int] = []
        super().__init__(label, **kwargs)

    def add(self, items: int, nbytes: int = 0) -> None:
        super().add(items, nbytes)
        self.seen.append(self.items)


@pytest.fixture
def table(aws: None) -> Any:
    ddb = client("dynamodb")
    sample.create_cumulus_tables(ddb, "p-", {"Granules": ITEMS})
    client("s3").create_bucket(Bucket="prog")
    return ddb


def test_backup_to_s3_counts_each_page_before_its_segment_completes(table):
    shown = Recording("backup", enabled=False)
    backup_to_s3(
        table,
        client("s3"),
        "prog",
        "b/",
        tables=[TABLE],
        segments=1,
        workers=1,
        progress=shown,
        scan_settings=ScanSettings(bucket="prog", page_limit=50),
    )
    # one segment of 300 items in pages of 50: the count moves with every page, not once at the end
    assert shown.seen[:6] == [50, 100, 150, 200, 250, 300]
    assert shown.items == ITEMS and shown.bytes > ITEMS * 100
    assert (shown.total, shown.approximate) == (ITEMS, True)  # the table's ItemCount, an estimate


def test_backup_to_file_draws_count_total_and_percent_on_a_terminal(table, tmp_path):
    tty = FakeTTY()
    with Progress(TABLE, stream=tty) as shown:
        backup_to_file(table, TABLE, tmp_path / "t.json", segments=2, workers=2, progress=shown)
    frames = tty.getvalue()
    assert f"{ITEMS:,}/~{ITEMS:,} items" in frames  # ~: ItemCount is approximate
    assert "100%" in frames
    assert " MB" in frames and "0.0 MB" not in frames.rsplit(f"{ITEMS:,}/", 1)[-1]


class Watched(FakeTTY):
    """A terminal that tells when ``text`` has been drawn."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.drawn = threading.Event()

    def write(self, s: str) -> int:
        n = super().write(s)
        if self.text in self.getvalue():
            self.drawn.set()
        return n


def test_the_elapsed_time_ticks_while_nothing_arrives():
    now = [0.0]
    tty = Watched("0:01")
    with Progress("stalled", stream=tty, total=10, clock=lambda: now[0]):
        now[0] = 1.5  # a second and a half of nothing
        tty.drawn.wait(timeout=30)  # the timer's next redraw (a quarter of a second)
        frames = tty.getvalue()
    assert "stalled" in frames and "0/10 items" in frames
    assert "0:01" in frames  # redrawn by the timer: a stall does not look like a hang


def test_an_estimate_passed_by_the_count_is_dropped_rather_than_over_100_percent():
    shown = Progress("t", enabled=False, total=10, approximate=True)
    shown.add(11)
    assert shown.total is None and "%" not in shown.line()
    exact = Progress("t", enabled=False, total=0)
    assert exact.total == 0  # an exact zero stays (an empty backup); only a zero estimate means "unknown"


def test_restore_shows_items_against_the_backup_total_and_real_megabytes(table, tmp_path):
    path = tmp_path / "t.json"
    backup_to_file(table, TABLE, path)
    tty = FakeTTY()
    shown: list[Recording] = []

    def factory(label: str) -> Progress:
        shown.append(Recording(label, stream=tty))
        return shown[-1]

    restore_sources(table, client("s3"), str(path), table="p-Restored", progress_factory=factory)
    (one,) = shown
    assert one.items == ITEMS and one.total == ITEMS and not one.approximate  # the file's own count
    assert one.bytes >= path.stat().st_size * 0.9  # every line read, not 0.0 MB
    frames = tty.getvalue()
    assert f"{ITEMS:,}/{ITEMS:,} items" in frames and "100%" in frames
    assert f"{one.bytes / 1e6:,.1f} MB" in frames and one.bytes / 1e6 >= 0.1


def test_verify_shows_each_stage_against_its_total(table, tmp_path):
    path = tmp_path / "t.json"
    backup_to_file(table, TABLE, path)
    stages: list[tuple[str, int | None, bool, str, int]] = []

    class Staged(Progress):
        def stage(self, label: str, **kw: Any) -> None:
            if stages:  # the count the stage before ended with
                stages[-1] = (*stages[-1][:4], self.items)
            super().stage(label, **kw)
            stages.append((label, self.total, self.approximate, self.unit, -1))

    tty = FakeTTY()
    with Staged(TABLE, stream=tty) as shown:
        report = verify_table(table, client("s3"), TABLE, str(path), progress=shown)
        stages[-1] = (*stages[-1][:4], shown.items)
    assert report["identical"]
    assert stages == [
        (f"{TABLE}: read backup", ITEMS, False, "items", ITEMS),  # the backup's own count
        (f"{TABLE}: scan table", ITEMS, True, "items", ITEMS),  # the table's ItemCount, an estimate
        (f"{TABLE}: compare", 16, False, "partitions", 16),
    ]
    assert "16/16 partitions" in tty.getvalue() and "100%" in tty.getvalue()


@pytest.mark.parametrize(
    ("terminal", "options", "drawn"),
    [(True, [], True), (False, [], False), (True, ["--quiet"], False), (True, ["--json"], False)],
)
def test_the_command_line_draws_progress_on_a_terminal_stderr_only(
    table, tmp_path, monkeypatch, capsys, terminal, options, drawn
):
    err = FakeTTY() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    assert main(["backup", "--table", TABLE, "--out", str(tmp_path / "t.json"), *options]) == 0
    out = capsys.readouterr().out
    assert ("/~300 items" in err.getvalue()) is drawn
    assert "/~300" not in out  # never on stdout
    if not terminal:
        assert err.getvalue() == ""


def test_verbose_logs_each_table_segment_and_manifest_step_on_stderr(table, capsys):
    assert main(["--verbose", "backup", "--table", TABLE, "--to", "s3://prog/v/", "--segments", "2"]) == 0
    err = capsys.readouterr().err
    assert f"{TABLE}: backup " in err and "2 segment(s), about 300 items (ItemCount)" in err
    assert f"{TABLE} segment 1/2: " in err and f"{TABLE} segment 2/2: " in err
    assert f"{TABLE}: manifest s3://prog/v/{TABLE}/" in err and "300 items in" in err
    assert "botocore" not in err  # the wire log is --debug's
    assert main(["backup", "--table", TABLE, "--to", "s3://prog/q/"]) == 0
    assert "segment 1/" not in capsys.readouterr().err  # without --verbose: no step log


def test_verbose_logs_each_part_a_restore_reads(table, tmp_path, capsys):
    path = tmp_path / "t.json"
    backup_to_file(table, TABLE, path)
    assert main(["-v", "restore", str(path), "--table", "p-Again"]) == 0
    err = capsys.readouterr().err
    assert f"{path} -> p-Again: 1 part(s), 300 items" in err
    assert "p-Again: part 1/1 t.json (300 items)" in err
