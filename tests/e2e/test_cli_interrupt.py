"""Ctrl-C through a real process (issue 16 point 1): every worker stops within seconds, and the run says so.

The CLI runs as a subprocess against moto server behind :class:`SlowProxy`,
which holds every request for a fixed time: the run is slow the same way on
every machine, and the proxy's count of requests tells when the work is under
way. SIGINT then goes to the process, as a terminal's Ctrl-C does.
"""

from __future__ import annotations

import http.client
import os
import pty
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ddb_backup.aws.clients import client
from ddb_backup_cli.main import main
from devkit import sample

CLI = [sys.executable, "-m", "ddb_backup_cli.main"]
TABLE = "mystack-GranulesTable"
DELAY = 0.25  # seconds the proxy holds each request


class SlowProxy(ThreadingHTTPServer):
    """Forwards every request to ``upstream`` after ``DELAY`` seconds; counts them by DynamoDB operation."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = urllib.parse.urlsplit(upstream).netloc
        self.seen: Counter[str] = Counter()
        self.counted = threading.Condition()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def count(self, operation: str) -> None:
        with self.counted:
            self.seen[operation] += 1
            self.counted.notify_all()

    def wait_for(self, proc: subprocess.Popen[str], operation: str, count: int) -> None:
        """Until ``operation`` was asked ``count`` times (woken by each request, and when ``proc`` ends)."""
        ended = threading.Thread(target=self._notify_after, args=(proc.wait,), daemon=True)
        ended.start()
        with self.counted:
            self.counted.wait_for(lambda: self.seen[operation] >= count or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()

    def _notify_after(self, wait: Callable[[], object]) -> None:
        wait()
        with self.counted:
            self.counted.notify_all()


class _Forward(BaseHTTPRequestHandler):
    server: SlowProxy

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.count((self.headers.get("X-Amz-Target") or self.command).rpartition(".")[2])
        time.sleep(DELAY)
        upstream = http.client.HTTPConnection(self.server.upstream, timeout=30)
        upstream.request(self.command, self.path, body=body, headers=dict(self.headers))
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        length = answer.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        upstream.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def proxy(endpoint: str) -> Iterator[SlowProxy]:
    server = SlowProxy(endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def granules(endpoint: str, request: pytest.FixtureRequest) -> int:
    """The Granules table with 2,000 items (or the test's indirect parameter), and bucket ``ops``."""
    count = getattr(request, "param", 2000)
    sample.create_cumulus_tables(client("dynamodb"), "mystack-", {"Granules": count})
    client("s3").create_bucket(Bucket="ops")
    return int(count)


def _start(proxy: SlowProxy, *argv: str, **streams: int) -> subprocess.Popen[str]:
    env = {**os.environ, "AWS_ENDPOINT_URL": proxy.url}
    out = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **streams}
    return subprocess.Popen([*CLI, *argv], text=True, env=env, **out)  # type: ignore[call-overload]


def _interrupt(proc: subprocess.Popen[str], proxy: SlowProxy, operation: str) -> tuple[int, str]:
    """SIGINT, then how many ``operation`` requests the process started after it, and its stderr.

    The process must end with 130. A run that stops at its next page or batch starts at most one more
    request a worker (the one that passed its check as the signal came); one that goes on starts dozens.
    Counting requests, not seconds, keeps the bound the same on a loaded machine.
    """
    before = proxy.seen[operation]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    return proxy.seen[operation] - before, err


def test_ctrl_c_stops_a_backup_to_a_file_and_leaves_no_file(granules, proxy, tmp_path):
    out = tmp_path / "granules.json"
    proc = _start(proxy, "backup", "--table", TABLE, "--out", str(out), "--segments", "200", "--workers", "2")
    proxy.wait_for(proc, "Scan", 4)
    after, err = _interrupt(proc, proxy, "Scan")
    assert after <= 2, f"{after} segments started after Ctrl-C by 2 workers"
    assert proxy.seen["Scan"] < 200 // 2
    assert f"ddb-backup: interrupted: the backup of {TABLE} stopped after " in err
    assert f"{out} was not written (its temporary file .granules.json." in err and ".partial was removed)" in err
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary one


def test_ctrl_c_stops_a_backup_to_s3_writes_no_manifest_and_says_what_it_left(granules, proxy, capsys):
    proc = _start(proxy, "backup", "--table", TABLE, "--to", "s3://ops/backups/", "--segments", "200", "--workers", "2")
    proxy.wait_for(proc, "Scan", 4)
    after, err = _interrupt(proc, proxy, "Scan")
    assert after <= 2, f"{after} segments started after Ctrl-C by 2 workers"
    keys = [o["Key"] for o in client("s3").list_objects_v2(Bucket="ops").get("Contents", [])]
    assert not [k for k in keys if k.endswith("manifest.json")], keys
    (directory,) = {k.split("/")[2] for k in keys if k.startswith(f"backups/{TABLE}/")}
    url = f"s3://ops/backups/{TABLE}/{directory}/"
    parts = len([k for k in keys if k.startswith(url[len("s3://ops/") :]) and k.endswith(".json.gz")])
    assert "before its manifest was written, so it reads INCOMPLETE" in err
    more = r"(?: \(and up to (\d+) more from the segment\(s\) still stopping)?"
    said = re.search(rf"{re.escape(url)} holds (\d+) part\(s\){more}", err)
    assert said, err
    assert 1 <= int(said.group(1)) <= parts <= int(said.group(1)) + int(said.group(2) or 0), (err, keys)
    assert f"`aws s3 rm --recursive {url} && aws s3 rm --recursive s3://ops/backups/" in err
    assert main(["list", "--json", "--bucket", "s3://ops/backups/"]) == 0
    assert '"complete": false' in capsys.readouterr().out


def _backup(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """The table backed up to a file or to S3 (directly, not through the proxy): where."""
    if kind == "file":
        path = tmp_path / "granules.json"
        assert main(["--quiet", "backup", "--table", TABLE, "--out", str(path)]) == 0
        return str(path)
    assert main(["--quiet", "--json", "backup", "--table", TABLE, "--to", "s3://ops/backups/"]) == 0
    manifest = re.search(r'"manifest": "([^"]+)"', capsys.readouterr().out)
    assert manifest
    return f"s3://ops/{manifest.group(1).rpartition('/')[0]}/"


@pytest.mark.parametrize("granules", [500], indirect=True)  # 20 requests of 25, one at a time: stopped after 3
@pytest.mark.parametrize("kind", ["file", "s3"])
def test_ctrl_c_stops_a_restore_says_how_many_items_and_the_resume_command(granules, proxy, kind, tmp_path, capsys):
    source = _backup(kind, tmp_path, capsys)
    proc = _start(proxy, "restore", source, "--table", "restored", "--workers", "1")
    proxy.wait_for(proc, "BatchWriteItem", 3)

    after, err = _interrupt(proc, proxy, "BatchWriteItem")
    assert after <= 1, f"{after} batches sent after Ctrl-C by 1 worker"
    found = re.search(rf"the restore into restored stopped after ([\d,]+) of {granules:,} items were written", err)
    assert found, err
    held = _count("restored")
    assert int(found.group(1).replace(",", "")) == held < granules
    command = re.search(r"resume it with `([^`]+)`", err)
    assert command and command.group(1) == f"ddb-backup restore {source} --table restored --mode overwrite", err
    assert main(["--quiet", *shlex.split(command.group(1))[1:]]) == 0
    assert _count("restored") == granules


def _count(table: str) -> int:
    pages = client("dynamodb").get_paginator("scan").paginate(TableName=table, Select="COUNT")
    return sum(page["Count"] for page in pages)


def test_ctrl_c_stops_a_verify_saying_nothing_was_changed(granules, proxy, tmp_path, capsys):
    backup = _backup("s3", tmp_path, capsys)
    proc = _start(proxy, "verify", "--table", TABLE, "--backup", backup)
    proxy.wait_for(proc, "GET", 2)
    after, err = _interrupt(proc, proxy, "GET")
    assert after <= 1, f"{after} parts read after Ctrl-C"
    assert f"the comparison of {TABLE} with {backup} stopped before it finished: nothing was changed" in err


def test_ctrl_c_on_a_terminal_ends_the_progress_line_and_later_ones_are_ignored(granules, proxy, tmp_path):
    """With stderr on a terminal the progress line is drawn; the message starts a line of its own."""
    leader, follower = pty.openpty()
    proc = _start(
        proxy,
        "backup",
        "--table",
        TABLE,
        "--dir",
        str(tmp_path),
        "--segments",
        "200",
        "--workers",
        "2",
        stderr=follower,
    )
    os.close(follower)
    seen = bytearray()
    reader = threading.Thread(target=_drain, args=(leader, seen), daemon=True)
    reader.start()
    while not re.search(rb"\d/s", seen):
        assert proc.poll() is None, seen
        time.sleep(0.02)
    before = proxy.seen["Scan"]
    for _ in range(3):  # impatient: three times
        proc.send_signal(signal.SIGINT)
        time.sleep(0.1)
    assert proc.wait(timeout=120) == 130
    assert proxy.seen["Scan"] - before <= 2
    reader.join(timeout=5)
    text = seen.decode(errors="replace")
    assert "Traceback" not in text and "Exception ignored" not in text, text
    # the display ends its line and erases it (rich: newline, cursor up, erase line); the message follows
    assert re.search(
        r"\d/s [^\r\n]*\r?\n(\x1b\[\?25h)?\r?\x1b\[1A\x1b\[2Kddb-backup: interrupted: the backup of ", text
    ), text
    assert text.count("ddb-backup: interrupted") == 1
    assert list(tmp_path.iterdir()) == []


def _drain(fd: int, into: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return
        if not chunk:
            return
        into.extend(chunk)


def test_an_interrupted_multi_table_backup_names_the_files_it_finished(endpoint, tmp_path, monkeypatch, capsys):
    from ddb_backup_cli.files import backup, cancel

    sample.create_cumulus_tables(client("dynamodb"), "mystack-", {"Granules": 30, "Rules": 7})
    real = backup.backup_to_file

    def stopped_at_granules(ddb: object, table: str, path: Path, **options: object) -> dict[str, object]:
        if table == TABLE:  # as backup_to_file says it after Ctrl-C
            raise cancel.Interrupted(f"the backup of {table} stopped after 10 items; {path} was not written")
        return real(ddb, table, path, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(backup, "backup_to_file", stopped_at_granules)
    argv = ["backup", "--tables", f"mystack-RulesTable,{TABLE}", "--dir", str(tmp_path)]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert f"stopped after 10 items; {tmp_path / (TABLE + '.json')} was not written; " in err
    assert f"complete and kept: {tmp_path / 'mystack-RulesTable.json'}\n" in err
    assert [p.name for p in tmp_path.iterdir()] == ["mystack-RulesTable.json"]
