"""The local single-file format: its checksum, its temporary file, never replacing a backup, mode 0600."""

from __future__ import annotations

import datetime as dt
import errno
import gzip
import hashlib
import json
import os
import re
import stat
import threading
from pathlib import Path

import pytest

from ddb_backup import __version__
from ddb_backup.errors import BackupIncomplete, BadInput, IntegrityError
from ddb_backup.format import lines as line_stream
from ddb_backup.format import location
from ddb_backup.format import sources as readers
from ddb_backup.format.ddbjson import line_from_client_item
from ddb_backup.format.dialects import parse_item
from ddb_backup.format.lines import PartRef
from ddb_backup.format.localfile import LocalFileWriter, write_local_file
from ddb_backup.restore import fastwrite
from devkit import sample


def _items(n: int = 30) -> list[dict]:
    return list(sample.items(sample.CUMULUS_TABLES["Files"], n, seed=3))


def _backup(tmp_path: Path, name: str = "T.json", n: int = 30) -> Path:
    path = tmp_path / name
    write_local_file(path, _items(n), table="T", description=None)
    return path


def _lines(path: Path) -> list[bytes]:
    body = path.read_bytes()
    return (gzip.decompress(body) if path.name.endswith(".gz") else body).splitlines(keepends=True)


def _rewrite(path: Path, lines: list[bytes]) -> None:
    body = b"".join(lines)
    path.write_bytes(gzip.compress(body) if path.name.endswith(".gz") else body)


# ------------------------------------------------------------------ the checksum
@pytest.mark.parametrize("name", ["T.json", "T.json.gz"])
def test_the_end_line_carries_the_count_and_a_checksum_of_the_lines_before_it(tmp_path, name):
    path = _backup(tmp_path, name)
    lines = _lines(path)
    end = json.loads(lines[-1])["ddbBackupEnd"]
    assert end == {"items": 30, "sha256": hashlib.sha256(b"".join(lines[:-1])).hexdigest()}
    source = readers.open_source(str(path))
    assert source.parts[0].lines_sha256 == end["sha256"] and source.warnings == []


def _flip_value(lines: list[bytes]) -> list[bytes]:
    i = 5
    doc = json.loads(lines[i])
    attr = next(a for a, v in doc["Item"].items() if v.get("S"))
    value = doc["Item"][attr]["S"]
    changed = value[:-1] + ("a" if value[-1] != "a" else "b")
    return [*lines[:i], lines[i].replace(json.dumps(value).encode(), json.dumps(changed).encode(), 1), *lines[i + 1 :]]


def _flip_key(lines: list[bytes]) -> list[bytes]:
    i = 7
    name = next(iter(json.loads(lines[i])["Item"]))
    return [*lines[:i], lines[i].replace(f'"{name}"'.encode(), f'"{name[:-1]}X"'.encode(), 1), *lines[i + 1 :]]


def _drop_line_and_lower_count(lines: list[bytes]) -> list[bytes]:
    end = json.loads(lines[-1])
    end["ddbBackupEnd"]["items"] -= 1
    return [*lines[:3], *lines[4:-1], json.dumps(end).encode() + b"\n"]


@pytest.mark.parametrize("name", ["T.json", "T.json.gz"])
@pytest.mark.parametrize("damage", [_flip_value, _flip_key, _drop_line_and_lower_count])
def test_a_changed_local_file_is_refused_when_opened(tmp_path, name, damage):
    path = _backup(tmp_path, name)
    before = _lines(path)
    after = damage(before)
    assert after != before and len(after) >= len(before) - 1
    _rewrite(path, after)
    with pytest.raises(IntegrityError, match=rf"{path} is corrupt: its lines have sha256 [0-9a-f]{{64}}, its end line"):
        readers.open_source(str(path))


def test_a_local_file_replaced_after_opening_fails_when_read(tmp_path):
    path = _backup(tmp_path)
    source = readers.open_source(str(path))
    path.unlink()
    write_local_file(path, _items(30)[::-1], table="T", description=None)  # valid, but another file
    with pytest.raises(IntegrityError, match=r"T.json changed since it was opened"):
        list(source.items())


def test_a_checked_local_file_takes_the_fast_write_path(tmp_path):
    path = _backup(tmp_path)
    (part,) = readers.open_source(str(path)).parts
    raw = list(fastwrite.read_part(part))
    assert all(isinstance(i, fastwrite.RawItem) and i.wire is not None for i in raw)
    assert [dict(i) for i in raw] == _items(30)
    unchecked = PartRef(part.id, part.url, "local", items=30)  # as a file without a checksum is opened
    assert not any(isinstance(i, fastwrite.RawItem) and i.wire is not None for i in fastwrite.read_part(unchecked))


def test_an_old_local_file_without_a_checksum_reads_with_a_warning(tmp_path):
    path = _backup(tmp_path)
    lines = _lines(path)
    _rewrite(path, [*lines[:-1], b'{"ddbBackupEnd": {"items": 30}}\n'])
    source = readers.open_source(str(path))
    assert source.warnings == [readers.LOCAL_NO_CHECKSUM.format(url=str(path))]
    assert "has no checksum" in source.warnings[0]
    assert source.parts[0].lines_sha256 is None and list(source.items()) == _items(30)
    assert source.expected_items == 30  # counted when opened all the same


@pytest.mark.parametrize("sha", ["", "x" * 64, 5, "A" * 63])
def test_an_end_line_checksum_that_is_not_one_is_refused(tmp_path, sha):
    path = _backup(tmp_path)
    lines = _lines(path)
    _rewrite(path, [*lines[:-1], json.dumps({"ddbBackupEnd": {"items": 30, "sha256": sha}}).encode() + b"\n"])
    with pytest.raises(BadInput, match=r"T.json line 32: end line sha256 must be 64 hex digits"):
        readers.open_source(str(path))


# ------------------------------------------------------------------ the quick check before a restore
class _AnySha:
    __hash__ = None  # type: ignore[assignment]  # compares equal to many strings: not hashable

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and re.fullmatch(r"[0-9a-f]{64}", other) is not None


ANY_SHA = _AnySha()


def _line_by_line(path: Path) -> tuple[int, str | None]:
    """What reading the file line by line proves: (count, checksum); raises as open_source does."""
    part = PartRef(path.name, str(path), "local")
    read = line_stream.part_lines(part)
    count = 0
    while True:
        try:
            next(read)
        except StopIteration as done:
            return count, done.value
        count += 1


@pytest.mark.parametrize("name", ["T.json", "T.json.gz"])
@pytest.mark.parametrize("chunk", [1, 2, 7, 300, 1 << 20])
@pytest.mark.parametrize("n", [0, 1, 2, 30])
def test_the_quick_check_proves_what_reading_line_by_line_proves_at_any_chunk_size(
    tmp_path, monkeypatch, name, chunk, n
):
    path = _backup(tmp_path, name, n)
    monkeypatch.setattr(location, "CHUNK", chunk)
    expected = _line_by_line(path)
    assert expected[0] == n and expected[1] is not None
    assert line_stream.local_file_sum(str(path)) == expected


def _forge(path: Path, body: bytes, end: dict | None = None) -> None:
    """``body`` then an end line with its count of lines and its checksum, as the writer would make them."""
    fields = {"items": body.count(b"\n"), "sha256": hashlib.sha256(body).hexdigest(), **(end or {})}
    path.write_bytes(body + json.dumps({"ddbBackupEnd": fields}).encode() + b"\n")


@pytest.mark.parametrize("chunk", [1, 300, 1 << 20])
@pytest.mark.parametrize(
    "first",
    [b"", b'{"x": 1}\n'],  # the items alone (no header); a first line that is JSON but neither header nor item
    ids=["no-header", "other-json-first"],
)
def test_a_file_without_a_header_is_proved_as_line_by_line_reading_counts_it(tmp_path, monkeypatch, chunk, first):
    path = tmp_path / "T.json"
    _forge(path, first + b"".join(_lines(_backup(tmp_path, "src.json"))[1:-1]))
    monkeypatch.setattr(location, "CHUNK", chunk)
    assert line_stream.local_file_sum(str(path)) == _line_by_line(path) == (30 + bool(first), ANY_SHA)


@pytest.mark.parametrize("chunk", [300, 1 << 20])
def test_lines_as_long_as_the_limit_are_proved_however_the_file_is_cut(tmp_path, monkeypatch, chunk):
    path = _backup(tmp_path)
    monkeypatch.setattr(line_stream, "MAX_LINE_BYTES", max(len(line) - 1 for line in _lines(path)))  # the longest
    monkeypatch.setattr(location, "CHUNK", chunk)
    assert line_stream.local_file_sum(str(path)) == _line_by_line(path) == (30, ANY_SHA)


def test_an_empty_file_or_one_of_only_an_end_line_is_judged_as_line_by_line_reading_judges_it(tmp_path):
    empty, only_end = tmp_path / "E.json", tmp_path / "O.json"
    empty.write_bytes(b"")
    _forge(only_end, b"")
    assert line_stream.local_file_sum(str(empty)) is None
    with pytest.raises(BackupIncomplete, match=r"E.json is incomplete: it has no end line"):
        _line_by_line(empty)
    assert line_stream.local_file_sum(str(only_end)) == _line_by_line(only_end) == (0, hashlib.sha256(b"").hexdigest())


@pytest.mark.parametrize(
    ("body", "end", "error"),
    [
        (b"{not json\n", None, r"line 1: not a JSON line"),
        (b'{"Item": {"pk": {"S": "a"}}}\n', {"items": 1.0}, r"line 2: end line without an item count"),
        (b'{"Item": {"pk": {"S": "a"}}}\n', {"items": True}, r"line 2: end line without an item count"),
    ],
    ids=["first-line-not-json", "count-a-float", "count-a-boolean"],
)
def test_a_forged_file_with_a_right_checksum_but_a_wrong_line_is_left_to_be_named_line_by_line(
    tmp_path, body, end, error
):
    path = tmp_path / "T.json"
    _forge(path, body, end)
    assert line_stream.local_file_sum(str(path)) is None
    with pytest.raises(BadInput, match=error):
        _line_by_line(path)


def test_a_corrupt_gzip_file_is_refused_by_the_quick_check_naming_it(tmp_path):
    path = _backup(tmp_path, "T.json.gz")
    body = path.read_bytes()
    path.write_bytes(body[:40] + bytes(b ^ 0xFF for b in body[40:80]) + body[80:])
    with pytest.raises(BadInput, match=rf"^{path}: corrupt gzip data"):
        line_stream.local_file_sum(str(path))


def _blank_line(lines: list[bytes]) -> list[bytes]:
    return [*lines[:4], b"\n", *lines[4:]]


def _spaces_line(lines: list[bytes]) -> list[bytes]:
    return [*lines[:4], b"  \t\n", *lines[4:]]


def _blank_after_the_end(lines: list[bytes]) -> list[bytes]:
    return [*lines, b"\n"]


def _no_newline_after_the_end(lines: list[bytes]) -> list[bytes]:
    return [*lines[:-1], lines[-1].rstrip(b"\n")]


@pytest.mark.parametrize("change", [_blank_line, _spaces_line])
def test_a_checksum_over_a_blank_line_is_not_proved_quickly_and_is_refused_line_by_line(tmp_path, change):
    path = _backup(tmp_path)
    lines = change(_lines(path))  # a count (all but the header) and checksum of the lines as they stand:
    _forge(path, b"".join(lines[:-1]), {"items": len(lines) - 2})  # reading line by line leaves the blank out
    assert line_stream.local_file_sum(str(path)) is None
    with pytest.raises(BackupIncomplete, match=r"T.json is incomplete: its end line says 31 items, it holds 30"):
        readers.open_source(str(path))


@pytest.mark.parametrize(
    ("body", "error"),
    [
        # a blank first line: line by line, the header is then line 2 and counted as an item
        (lambda lines: b"\n" + b"".join(lines[:-1]), r"T.json is incomplete: its end line says 32 items, it holds 31"),
        # too short for the quick check to read in chunks: only a blank line, then the end line
        (lambda lines: b"\n", r"T.json is incomplete: its end line says 1 items, it holds 0"),
    ],
    ids=["blank-first-line", "blank-line-then-end"],
)
def test_the_quick_check_never_proves_a_forged_file_reading_line_by_line_refuses(tmp_path, body, error):
    path = _backup(tmp_path)
    before = body(_lines(path))
    _forge(path, before)  # a count and checksum of the bytes as they stand
    assert line_stream.local_file_sum(str(path)) is None
    with pytest.raises((BackupIncomplete, IntegrityError), match=error):
        _line_by_line(path)


@pytest.mark.parametrize("change", [_blank_line, _spaces_line, _blank_after_the_end])
def test_a_file_the_writer_did_not_lay_out_is_read_line_by_line_which_accepts_it(tmp_path, change):
    path = _backup(tmp_path)
    lines = _lines(path)
    _rewrite(path, change(lines))
    assert line_stream.local_file_sum(str(path)) is None
    source = readers.open_source(str(path))  # line by line: blank lines are skipped, the checksum holds
    assert source.expected_items == 30 and source.warnings == [] and list(source.items()) == _items(30)
    assert source.parts[0].lines_sha256 == json.loads(lines[-1])["ddbBackupEnd"]["sha256"]  # to check again


def test_a_local_file_in_s3_is_read_with_the_client_given_quickly_or_line_by_line(s3, tmp_path):
    s3.create_bucket(Bucket="files")
    lines = _lines(_backup(tmp_path))
    s3.put_object(Bucket="files", Key="T.json", Body=b"".join(lines))
    s3.put_object(Bucket="files", Key="B.json", Body=b"".join(_blank_line(lines)))
    reads: list[str] = []

    class Given:  # the client the caller gave, counting the objects it reads
        def __getattr__(self, name):
            if name == "get_object":
                return lambda **kw: reads.append(kw["Key"]) or s3.get_object(**kw)
            return getattr(s3, name)

    assert readers.open_source("s3://files/T.json", Given()).expected_items == 30
    quick = reads.count("T.json")
    assert readers.open_source("s3://files/B.json", Given()).expected_items == 30
    assert reads.count("B.json") == quick + 1  # read once more, line by line, by the same client


@pytest.mark.parametrize("n", [0, 1, 30])  # 0 and 1: the whole file is fewer than three lines or one chunk
def test_an_end_line_without_a_newline_is_proved_quickly_too(tmp_path, n):
    path = _backup(tmp_path, n=n)
    _rewrite(path, _no_newline_after_the_end(_lines(path)))
    assert line_stream.local_file_sum(str(path)) == _line_by_line(path) == (n, ANY_SHA)


@pytest.mark.parametrize("damage", [_flip_value, _flip_key, _drop_line_and_lower_count])
def test_the_quick_check_never_proves_a_changed_file(tmp_path, damage):
    path = _backup(tmp_path)
    _rewrite(path, damage(_lines(path)))
    assert line_stream.local_file_sum(str(path)) is None


def _count_one_more(lines: list[bytes]) -> list[bytes]:
    end = json.loads(lines[-1])
    end["ddbBackupEnd"]["items"] += 1
    return [*lines[:-1], json.dumps(end).encode() + b"\n"]


def _item_after_the_end(lines: list[bytes]) -> list[bytes]:
    return [*lines, lines[5]]


def _no_end_line(lines: list[bytes]) -> list[bytes]:
    return lines[:-1]


def _end_line_a_list(lines: list[bytes]) -> list[bytes]:
    return [*lines[:-1], b"[30]\n"]


def _end_line_not_a_map(lines: list[bytes]) -> list[bytes]:
    return [*lines[:-1], b'{"ddbBackupEnd": 30}\n']


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (_count_one_more, r"T.json is incomplete: its end line says 31 items, it holds 30"),
        (_item_after_the_end, r"T.json line 33: data after the end line"),
        (_no_end_line, r"T.json is incomplete: it has no end line"),
        (_end_line_a_list, r"T.json is incomplete: it has no end line"),
        (_end_line_not_a_map, r"T.json is incomplete: it has no end line"),
    ],
)
def test_a_file_the_quick_check_cannot_prove_is_refused_line_by_line_naming_why(tmp_path, change, error):
    path = _backup(tmp_path)
    _rewrite(path, change(_lines(path)))
    assert line_stream.local_file_sum(str(path)) is None
    with pytest.raises((BadInput, BackupIncomplete), match=error):
        readers.open_source(str(path))


@pytest.mark.parametrize("chunk", [64, 1 << 20])
def test_a_line_over_the_limit_is_never_proved_quickly_and_is_named_line_by_line(tmp_path, monkeypatch, chunk):
    path = _backup(tmp_path, n=3)
    lines = _lines(path)
    limit = max(map(len, lines)) + 10  # every line the writer wrote fits
    long = lines[2].replace(b'"}', b'"' + b" " * limit + b"}", 1)  # still one item, now over the limit
    assert len(long) > limit and long.startswith(b"{")
    _forge(path, b"".join([*lines[:2], long, *lines[3:-1]]), {"items": 3})  # forged over the long line
    monkeypatch.setattr(line_stream, "MAX_LINE_BYTES", limit)
    monkeypatch.setattr(location, "CHUNK", chunk)
    assert line_stream.local_file_sum(str(path)) is None
    with pytest.raises(BadInput, match=rf"T.json line 3: longer than {limit} bytes"):
        readers.open_source(str(path))


def test_a_file_with_no_newline_is_given_up_on_with_at_most_two_lines_in_memory(tmp_path, monkeypatch):
    import tracemalloc

    path = tmp_path / "T.json"
    path.write_bytes(b"{" + b"x" * 3_000_000)
    monkeypatch.setattr(line_stream, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(location, "CHUNK", 4096)
    tracemalloc.start()
    try:
        assert line_stream.local_file_sum(str(path)) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100_000


def test_opening_a_file_the_writer_laid_out_reads_it_once_quickly_not_line_by_line(tmp_path, monkeypatch):
    path = _backup(tmp_path)
    blank = _backup(tmp_path, "B.json")
    _rewrite(blank, _blank_line(_lines(blank)))
    real, read_line_by_line = readers.part_lines, []

    def spy(part, s3=None, **kwargs):
        read_line_by_line.append(part.url)
        return real(part, s3, **kwargs)

    monkeypatch.setattr(readers, "part_lines", spy)
    assert readers.open_source(str(path)).expected_items == 30
    assert read_line_by_line == []
    assert readers.open_source(str(blank)).expected_items == 30
    assert read_line_by_line == [str(blank)]


def test_ready_made_lines_are_written_counted_and_summed_as_items_are(tmp_path):
    # the CLI's backup writes each scanned page's lines at once (write_lines), not item by item
    items = _items(5)
    path = tmp_path / "T.json"
    with LocalFileWriter(path, table="T", description=None) as writer:
        writer.write(items[0])
        writer.write_lines([line_from_client_item(i) for i in items[1:3]], 2)
        writer.write_lines([line_from_client_item(items[3]) + line_from_client_item(items[4])], 2)
    assert writer.items == 5
    end = json.loads(_lines(path)[-1])["ddbBackupEnd"]
    assert end == {"items": 5, "sha256": hashlib.sha256(b"".join(_lines(path)[:-1])).hexdigest()}
    assert list(readers.open_source(str(path)).items()) == items


def test_the_header_names_the_backup_as_asked(tmp_path):
    path = tmp_path / "T.json"
    write_local_file(path, _items(1), table="T", description=None, backup_id="20240102T030405Z-0badcafe")
    source = readers.open_source(str(path))
    assert (source.table, source.backup_id) == ("T", "20240102T030405Z-0badcafe")


def test_the_header_carries_the_format_s_fields_and_the_file_is_made_where_asked(tmp_path):
    # describe_table's datetimes are written as text; startedAt is UTC; the directories are made as needed
    created = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    description = {"Table": {"TableName": "T", "CreationDateTime": created}}
    path = tmp_path / "new" / "dir" / "T.json"
    with LocalFileWriter(path, table="T", description=description, extra={"segments": 4}) as writer:
        assert writer.tmp.parent == path.parent and writer.tmp.name.startswith(".T.json.")
        assert writer.tmp.name.endswith(".partial")  # hidden, and never taken for a backup by a *.json glob
    header = json.loads(_lines(path)[0])["ddbBackupFile"]
    started = dt.datetime.fromisoformat(header.pop("startedAt"))
    assert started.utcoffset() == dt.timedelta(0) and abs(dt.datetime.now(dt.UTC) - started) < dt.timedelta(minutes=5)
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", header.pop("backupId"))
    assert header == {
        "formatVersion": 1,
        "toolVersion": __version__,
        "table": "T",
        "segments": 4,
        "description": {"Table": {"TableName": "T", "CreationDateTime": "2024-01-02 03:04:05+00:00"}},
    }


# ------------------------------------------------------------------ never replacing, never sharing
def test_a_backup_file_is_never_replaced_unless_asked(tmp_path):
    path = _backup(tmp_path, n=3)
    kept = path.read_bytes()
    with pytest.raises(BadInput, match=r"T.json already exists: a backup never replaces another"):
        write_local_file(path, _items(5), table="T", description=None)
    assert path.read_bytes() == kept and sorted(p.name for p in tmp_path.iterdir()) == ["T.json"]
    assert write_local_file(path, _items(5), table="T", description=None, replace=True) == 5
    assert readers.open_source(str(path)).expected_items == 5


def test_two_writers_at_once_have_their_own_files_and_the_second_to_finish_is_refused(tmp_path):
    path = tmp_path / "T.json"
    first = LocalFileWriter(path, table="T", description=None)
    second = LocalFileWriter(path, table="T", description=None)
    assert first.tmp != second.tmp and first.tmp.exists() and second.tmp.exists()
    for item in _items(4):
        first.write(item)
        second.write(item)
    second.write(_items(5)[-1])
    assert first.close() == 4
    with pytest.raises(BadInput, match=r"T.json was written by another run while this one ran"):
        second.close()
    assert readers.open_source(str(path)).expected_items == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["T.json"]


def test_without_hard_links_a_finished_file_is_renamed_into_place_but_never_over_another(tmp_path, monkeypatch):
    def no_links(src: object, dst: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")  # as on file systems without hard links

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "T.json"
    assert write_local_file(path, _items(3), table="T", description=None) == 3
    assert readers.open_source(str(path)).expected_items == 3
    writer = LocalFileWriter(tmp_path / "U.json", table="U", description=None)
    writer.write(_items(1)[0])
    (tmp_path / "U.json").write_bytes(b"another run's backup")
    with pytest.raises(
        BadInput, match=rf"^{tmp_path}/U.json was written by another run while this one ran: kept that one$"
    ):
        writer.close()
    assert (tmp_path / "U.json").read_bytes() == b"another run's backup"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["T.json", "U.json"]
    gone = LocalFileWriter(tmp_path / "V.json", table="V", description=None)  # its temporary file deleted by a clean-up
    gone.tmp.unlink()
    (tmp_path / "V.json").write_bytes(b"another run's backup")
    with pytest.raises(BadInput, match=r"V.json was written by another run while this one ran: kept that one$"):
        gone.close()


def test_a_temporary_file_is_created_exclusively(tmp_path, monkeypatch):
    monkeypatch.setattr("secrets.token_hex", lambda n: "same")
    LocalFileWriter(tmp_path / "T.json", table="T", description=None)
    with pytest.raises(FileExistsError):
        LocalFileWriter(tmp_path / "T.json", table="T", description=None)


def test_concurrent_writers_never_mix_their_lines(tmp_path):
    path = tmp_path / "T.json"
    outcomes: list[object] = []

    def run(seed: int) -> None:
        try:
            items = sample.items(sample.CUMULUS_TABLES["Files"], 400, seed=seed)
            outcomes.append(write_local_file(path, items, table="T", description=None))
        except BadInput as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert any(isinstance(o, int) for o in outcomes) and all(isinstance(o, (int, BadInput)) for o in outcomes)
    assert list(readers.open_source(str(path)).items()) in [
        list(sample.items(sample.CUMULUS_TABLES["Files"], 400, seed=s)) for s in (1, 2, 3)
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["T.json"]


# ------------------------------------------------------------------ 0600
@pytest.mark.parametrize("name", ["T.json", "T.json.gz"])
def test_backup_and_temporary_files_are_0600_whatever_the_umask(tmp_path, name):
    old = os.umask(0o000)
    try:
        writer = LocalFileWriter(tmp_path / name, table="T", description=None)
        assert stat.S_IMODE(writer.tmp.stat().st_mode) == 0o600
        writer.close()
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_a_temporary_file_is_never_open_to_others_not_even_before_its_mode_is_set(tmp_path, monkeypatch):
    # another user who opened it in that instant could read the backup through that descriptor later
    seen: list[int] = []
    fchmod = os.fchmod
    monkeypatch.setattr(
        os, "fchmod", lambda fd, mode: (seen.append(stat.S_IMODE(os.fstat(fd).st_mode)), fchmod(fd, mode))
    )
    old = os.umask(0o000)
    try:
        LocalFileWriter(tmp_path / "T.json", table="T", description=None).abort()
    finally:
        os.umask(old)
    assert seen == [0o600]


def test_closing_twice_or_aborting_after_closing_keeps_the_one_file_written(tmp_path):
    path = tmp_path / "T.json"
    with LocalFileWriter(path, table="T", description=None) as writer:
        writer.write(_items(1)[0])
        assert writer.close() == 1
    assert writer.close() == 1
    writer.abort()
    assert readers.open_source(str(path)).expected_items == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["T.json"]


# ------------------------------------------------------------------ items with no attributes
@pytest.mark.parametrize(
    ("dialect", "line"), [("item", b'{"Item": {}}'), ("local", b'{"Item":{}}'), ("typed", b"{}"), ("plain", b"{}")]
)
def test_an_item_with_no_attributes_is_refused_in_every_dialect(dialect, line):
    with pytest.raises(BadInput, match=r"f line 9: an item with no attributes"):
        parse_item(dialect, line, "f line 9")


@pytest.mark.parametrize(
    "body",
    [
        b'{"pk": {"S": "a"}}\n{}\n{"pk": {"S": "b"}}\n',  # cumulus-api 1.18 (typed)
        b'{"pk": "a"}\n{}\n{"pk": "b"}\n',  # cumulus-api 1.24 (plain)
        b'{"Item": {"pk": {"S": "a"}}}\n{"Item": {}}\n',  # bare item lines
    ],
    ids=["typed", "plain", "item-lines"],
)
def test_an_empty_item_in_a_file_is_refused_naming_the_line(tmp_path, body):
    (tmp_path / "T.json").write_bytes(body)
    source = readers.open_source(str(tmp_path / "T.json"))
    with pytest.raises(BadInput, match=rf"{tmp_path}/T.json line 2: an item with no attributes"):
        list(source.items())


def test_dead_letters_are_0600_and_never_overwrite_an_earlier_one(tmp_path):
    from ddb_backup.restore.deadletters import dead_letter_writer

    old = os.umask(0o000)
    try:
        save = dead_letter_writer(str(tmp_path), "run-1")
        first, second = save("T", _items(2)), save("T", _items(3))
    finally:
        os.umask(old)
    assert first != second
    for url, n in ((first, 2), (second, 3)):
        assert stat.S_IMODE(Path(url).stat().st_mode) == 0o600
        assert len(gzip.decompress(Path(url).read_bytes()).splitlines()) == n


def test_a_forged_checksum_over_a_line_that_is_not_json_still_fails_naming_the_line_when_read(tmp_path):
    # the quick check proves bytes, not JSON: the line is refused when it is reached, on either read path
    path = tmp_path / "T.json"
    lines = _lines(_backup(tmp_path, "src.json", n=5))
    _forge(path, b"".join(lines[:3]) + b"{garbage\n" + b"".join(lines[3:-1]), {"items": 6})
    source = readers.open_source(str(path))
    assert source.expected_items == 6
    not_json = r"T.json line 4: not a JSON line"
    with pytest.raises(BadInput, match=not_json):
        list(source.items())
    with pytest.raises(BadInput, match=not_json):
        list(fastwrite.read_part(source.parts[0]))
