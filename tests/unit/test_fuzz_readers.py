"""Every backup format restore reads, damaged at random: a clear refusal naming the file, or exactly what was saved.

Real backups are built (a v1 backup made by the backup core on moto, the
CLI's local file, the cumulus-api and native-export fixtures), then cut,
flipped, given bad lines, unknown versions, oversize items and manifests
that lie or point outside the backup. Each read must either end in a
``DdbBackupError`` (``BadInput``, ``IntegrityError``, ``UnknownFormat``,
``BackupIncomplete``) whose message names the file or part (and the line
where there is one), or give back exactly the items that were saved: never
another exception, never a silent short read. The one exception is a format
with no count at all (a cumulus-api file cut at a line end), stated below.

Last, "nothing reported as restored that was not written": ``write_items``
(and the fast path of ``fastwrite.read_part``) against moto DynamoDB with a
mix of valid and invalid items; what it reports written is what the table
holds, and everything else is in the dead letter or raised.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import itertools
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from ddb_backup.backup.finalize import finalize_table
from ddb_backup.backup.plan import Settings, plan_run
from ddb_backup.backup.scan import ScanSettings, scan_segment
from ddb_backup.errors import BackupIncomplete, BadInput, DdbBackupError, IntegrityError
from ddb_backup.format import sources as readers
from ddb_backup.format.ddbjson import line_from_client_item
from ddb_backup.format.lines import PartRef
from ddb_backup.format.localfile import LocalFileWriter, write_local_file
from ddb_backup.restore import fastwrite
from ddb_backup.restore.write import DeadLettered, write_items
from devkit import sample
from tests.conftest import FIXTURES, canonical
from tests.unit.backup.test_fastscan import item_lists

#: Fixed examples (derandomize): CI sees the same cases every run. Modest counts: the two fuzz files stay fast.
FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(FUZZ, max_examples=15)

BUCKET = "fuzz-backups"
TABLE = "mystack-GranulesTable"
EXPORT = FIXTURES / "native-export" / "AWSDynamoDB" / "01763780000000-a1b2c3d4"
CUMULUS = [FIXTURES / "cumulus-api-1.18.0" / f"{TABLE}.json", FIXTURES / "cumulus-api-1.24.0" / f"{TABLE}.json"]
_unique = itertools.count()


# ------------------------------------------------------------------ reading, judged
def _read(source: str, s3: Any = None) -> list[dict[str, Any]]:
    """Open and read everything, as restore would (the fast path's checks are the same; see the end of the file)."""
    return list(readers.open_source(source, s3).items())


def _outcome(read: Callable[[], list[dict[str, Any]]]) -> tuple[list[dict[str, Any]] | None, DdbBackupError | None]:
    """(items, None) or (None, the refusal). Any other exception fails the test where it is raised."""
    try:
        return read(), None
    except DdbBackupError as exc:
        return None, exc


def _names_one_of(exc: BaseException, *names: str) -> None:
    message = str(exc)
    assert any(n in message for n in names), f"{type(exc).__name__} names none of {names}:\n{message}"


def _same(items: list[dict[str, Any]], expected: list[dict[str, Any]]) -> bool:
    return Counter(map(canonical, items)) == Counter(map(canonical, expected))


# ------------------------------------------------------------------ damage
#: Lines no reader may take for an item.
BAD_LINES = st.one_of(
    st.sampled_from(
        [
            b'{"Item": ',
            b"not json",
            b"[1, 2]",
            b"null",
            b'"Item"',
            b'{"Item":{"pk":{"S":"a"}},"Extra":1}',
            b'{"Item":"not an object"}',
            b'{"Item":{"pk":{"S":"a","N":"1"}}}',
            b'{"Item":{"pk":{"B":"not base64!"}}}',
            b'{"Item":{"pk":{"NULL":false}}}',
            b'{"Item":{"pk":{"SS":[]}}}',
            b'{"Item":{"pk":{"XX":"1"}}}',
            b'{"Item":{"pk":{"S":"a"}}}}],"Other":[{"PutRequest":{"Item":{"id":{"S":"evil"}}}',
            b'{"ddbBackupFile":{"formatVersion":1}}',
            b'{"formatVersion": 2}',
            b"\xff\xfe\x00garbage",
        ]
    ),
    st.binary(min_size=1, max_size=30).filter(lambda b: b"\n" not in b and b.strip()),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
        max_leaves=8,
    ).map(lambda v: json.dumps(v).encode()),
)
#: One item of more than DynamoDB's 400 KB, as an otherwise valid line.
OVERSIZE = line_from_client_item({"granuleId": {"S": "big"}, "blob": {"B": b"\x00" * (400 * 1024 + 1)}})[:-1]


class Damage(tuple):  # type: ignore[type-arg]
    """(what was done, the damaged bytes, the line inserted if any), shown short in hypothesis' reports."""

    def __repr__(self) -> str:
        what, body, line = self
        return f"Damage({what!r}, {len(body)} bytes{f', line {line[:60]!r}' if line else ''})"


@st.composite
def damaged(draw: Any, body: bytes, *, lines: bool = True) -> Damage:
    """A file's bytes (gzip or not) cut, flipped, or given a bad, oversize or missing line."""
    kinds = ["truncate", "flip"] + (["bad line", "drop line", "oversize"] if lines else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "truncate":
        return Damage((kind, body[: draw(st.integers(0, len(body) - 1))], None))
    if kind == "flip":
        at = draw(st.integers(0, len(body) - 1))
        mask = draw(st.integers(1, 255))
        return Damage((kind, body[:at] + bytes([body[at] ^ mask]) + body[at + 1 :], None))
    zipped = body[:2] == b"\x1f\x8b"
    text = gzip.decompress(body).splitlines() if zipped else body.splitlines()
    at = draw(st.integers(0, len(text)))
    inserted = None
    if kind == "bad line":
        inserted = draw(BAD_LINES)
        text.insert(at, inserted)
    elif kind == "oversize":
        text.insert(at, OVERSIZE)
    else:
        assume(text)
        del text[min(at, len(text) - 1)]
    raw = b"".join(line + b"\n" for line in text)
    return Damage((kind, gzip.compress(raw, mtime=0) if zipped else raw, inserted))


# ------------------------------------------------------------------ a real v1 backup, made once
def _make_v1(ddb: Any, s3: Any, count: int) -> tuple[str, list[dict[str, Any]]]:
    s3.create_bucket(Bucket=BUCKET)
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": count})
    run = plan_run(ddb, s3, Settings(bucket=BUCKET, prefix="backups/"), tables=[TABLE], segments=2)
    for work in json.loads(s3.get_object(Bucket=BUCKET, Key=run["workKey"])["Body"].read()):
        task = dict(work)
        while not task.get("done"):
            task = scan_segment(
                ddb, s3, ScanSettings(BUCKET, part_bytes=6_000, page_limit=5), task, time_left=lambda: 60.0
            )
    directory = json.loads(s3.get_object(Bucket=BUCKET, Key=run["tablesKey"])["Body"].read())[0]["backupDir"]
    finalize_table(s3, BUCKET, directory)
    items = []
    for page in ddb.get_paginator("scan").paginate(TableName=TABLE):
        items.extend(page["Items"])
    return directory, items


class Backup(tuple):  # type: ignore[type-arg]
    """(files, items) with a short repr, so that hypothesis' reports stay readable."""

    def __repr__(self) -> str:
        return f"<v1 backup: {len(self[0])} files, {len(self[1])} items>"


@pytest.fixture(scope="module")
def v1_files() -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    """A real backup's files ({path relative to the backup directory: bytes}) and the table's items."""
    from moto import mock_aws

    from ddb_backup.aws.clients import client

    with mock_aws():
        client.cache_clear()
        ddb, s3 = client("dynamodb"), client("s3")
        directory, items = _make_v1(ddb, s3, 40)
        files = {
            o["Key"][len(directory) :]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
            for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=directory)["Contents"]
        }
    client.cache_clear()
    manifest = json.loads(files["manifest.json"])
    assert len(manifest["parts"]) >= 3, "the fuzz wants several parts"
    return Backup((files, items))


def _put_v1(s3: Any, files: dict[str, bytes]) -> str:
    prefix = f"b{next(_unique)}/{TABLE}/20261122T030000Z-1a2b3c4d/"
    for rel, body in files.items():
        s3.put_object(Bucket=BUCKET, Key=prefix + rel, Body=body)
    return f"s3://{BUCKET}/{prefix}"


def _write_v1(root: Path, files: dict[str, bytes]) -> Path:
    directory = root / TABLE / "20261122T030000Z-1a2b3c4d"
    for rel, body in files.items():
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_bytes(body)
    return directory


def _resign(files: dict[str, bytes], key: str) -> dict[str, bytes]:
    """The manifest agreeing with a changed part (its sha256 and size): only the content can tell."""
    manifest = json.loads(files["manifest.json"])
    for part in manifest["parts"]:
        if part["key"] == key:
            part["sha256"] = hashlib.sha256(files[key]).hexdigest()
            part["bytes"] = len(files[key])
    return {**files, "manifest.json": json.dumps(manifest).encode()}


@pytest.fixture
def bucket(s3: Any) -> Any:
    s3.create_bucket(Bucket=BUCKET)
    return s3


# ------------------------------------------------------------------ v1: damaged parts
@FUZZ
@given(data=st.data(), resign=st.booleans())
def test_a_damaged_v1_part_on_s3_is_refused_naming_it_or_reads_exactly(bucket, v1_files, data, resign):
    files, items = v1_files
    keys = sorted(k for k in files if k.startswith("data/"))
    key = data.draw(st.sampled_from(keys), "part")
    what, body, _ = data.draw(damaged(files[key]), "damage")
    changed = {**files, key: body}
    if resign:
        changed = _resign(changed, key)
    url = _put_v1(bucket, changed)
    source = readers.open_source(url, bucket)
    part = next(p for p in source.parts if p.id == key)
    if not resign and body != files[key]:
        # the manifest's sha256 refuses the part before it hands out a single item
        with pytest.raises(IntegrityError, match="is corrupt") as info:
            next(source.read_part(part))
        _names_one_of(info.value, key)
        return
    got, refused = _outcome(lambda: list(source.items()))
    if refused is not None:
        _names_one_of(refused, part.url, key)
        if what in ("bad line", "oversize") and isinstance(refused, BadInput):
            assert " line " in str(refused)
    else:
        assert got is not None and _same(got, items), f"{what}: read without an error but not what was saved"


def test_a_part_the_manifest_lists_but_that_is_gone_is_named(bucket, v1_files, tmp_path):
    files, _ = v1_files
    key = sorted(k for k in files if k.startswith("data/"))[1]
    without = {k: v for k, v in files.items() if k != key}
    for where in (_put_v1(bucket, without), str(_write_v1(tmp_path / "without", without))):
        with pytest.raises(BackupIncomplete, match="missing") as info:
            readers.open_source(where, bucket)  # data/ is listed against the manifest
        _names_one_of(info.value, key)
    s3_copy, local_copy = _put_v1(bucket, files), _write_v1(tmp_path / "whole", files)
    for where, gone in (
        (s3_copy, lambda: bucket.delete_object(Bucket=BUCKET, Key=s3_copy.split("/", 3)[3] + key)),
        (str(local_copy), (local_copy / key).unlink),
    ):
        source = readers.open_source(where, bucket)
        gone()  # after the open: the read names it
        with pytest.raises(BackupIncomplete, match="missing") as info:
            list(source.items())
        _names_one_of(info.value, key)


# ------------------------------------------------------------------ v1: manifests that lie or point outside
#: Part keys that leave data/ (or are not keys at all).
OUTSIDE_KEYS = st.one_of(
    st.sampled_from(
        [
            "../data/000000-000000.json.gz",
            "data/../../other/000000-000000.json.gz",
            "data/../manifest.json",
            "/etc/passwd",
            "other/000000-000000.json.gz",
            "data//000000-000000.json.gz",
            "data/./000000-000000.json.gz",
            "data\\..\\..\\x.json.gz",
            "s3://another-bucket/data/x.json.gz",
            "",
            "data/",
            "data/x\x00.json.gz",
            "data/\n.json.gz",
            "DATA/000000-000000.json.gz",
        ]
    ),
    st.tuples(st.sampled_from(["data/", "../", "/", "./", "data/../", ""]), st.text(max_size=20)).map("".join),
    st.integers(),
    st.none(),
    st.lists(st.text(max_size=3), max_size=2),
)
MANIFEST_LIES = st.one_of(
    st.tuples(
        st.just("formatVersion"),
        st.one_of(
            st.integers().filter(lambda v: v != 1),
            st.text(max_size=6),
            st.none(),
            st.lists(st.integers(), max_size=2),
            st.floats().filter(lambda v: v != 1),
        ),
    ),
    st.tuples(st.just("format"), st.one_of(st.text(max_size=10).filter(lambda v: v != "ddb-backup"), st.none())),
    st.tuples(st.just("itemFormat"), st.text(max_size=10).filter(lambda v: v != "DYNAMODB_JSON")),
    st.tuples(
        st.just("parts"),
        st.one_of(st.none(), st.text(max_size=5), st.integers(), st.dictionaries(st.text(max_size=3), st.integers())),
    ),
    st.tuples(
        st.just("totals"),
        st.one_of(
            st.integers(),
            st.text(max_size=5),
            st.lists(st.text(max_size=5), max_size=2),
            st.dictionaries(st.just("items"), st.one_of(st.integers(), st.text(max_size=3))),
        ),
    ),
    st.tuples(
        st.just("part"), st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2))
    ),
    st.tuples(st.just("part.key"), OUTSIDE_KEYS),
    st.tuples(
        st.just("part.items"),
        st.one_of(st.integers(min_value=-3, max_value=100), st.text(max_size=3), st.none(), st.floats()),
    ),
    st.tuples(st.just("part.sha256"), st.one_of(st.text(max_size=70), st.none(), st.integers())),
    st.tuples(st.just("part.bytes"), st.one_of(st.integers(min_value=-1, max_value=10**6), st.text(max_size=3))),
    st.tuples(st.just("drop part"), st.none()),
)


@pytest.mark.parametrize("where", ["local", "s3"])
@FUZZ
@given(data=st.data(), lie=MANIFEST_LIES)
def test_a_manifest_that_lies_or_points_outside_is_refused_naming_it(bucket, v1_files, where, data, lie):
    files, items = v1_files
    manifest = json.loads(files["manifest.json"])
    field, value = lie
    i = data.draw(st.integers(0, len(manifest["parts"]) - 1), "part index")
    if field.startswith("part."):
        manifest["parts"][i][field[5:]] = value
    elif field == "part":
        manifest["parts"][i] = value
    elif field == "drop part":
        del manifest["parts"][i]
    else:
        manifest[field] = value
    changed = {**files, "manifest.json": json.dumps(manifest).encode()}
    with tempfile.TemporaryDirectory() as root:
        directory = str(_write_v1(Path(root), changed)) + "/" if where == "local" else _put_v1(bucket, changed)
        opened, refused = _outcome(lambda: [readers.open_source(directory, bucket)])  # type: ignore[list-item]
        if refused is not None:
            _names_one_of(refused, "manifest.json")
            return
        source: readers.Source = opened[0]  # type: ignore[index,assignment]
        for part in source.parts:  # whatever was accepted stays inside data/
            if where == "local":
                assert os.path.normpath(part.url).startswith(os.path.join(directory, "data") + os.sep), part.url
            else:
                rest = part.url.removeprefix(directory + "data/")
                assert rest != part.url and ".." not in rest.split("/"), part.url
        got, refused = _outcome(lambda: list(source.items()))
        if refused is not None:
            _names_one_of(refused, *[p.url for p in source.parts], *[p.id for p in source.parts])
        else:
            assert got is not None and _same(got, items), f"{field}={value!r}: read, but not what was saved"


@pytest.mark.parametrize(
    "key",
    ["../x.json.gz", "/etc/passwd", "data/../../x", "other/x.json.gz", "data/a\x00b", "data/" + "x" * 300, "data/./x"],
)
def test_each_way_out_of_data_is_named(v1_files, tmp_path, key):
    files, _ = v1_files
    manifest = json.loads(files["manifest.json"])
    manifest["parts"][0]["key"] = key
    directory = _write_v1(tmp_path, {**files, "manifest.json": json.dumps(manifest).encode()})
    _, refused = _outcome(lambda: list(readers.open_source(str(directory)).items()))
    assert refused is not None, f"{key!r} was read"
    _names_one_of(refused, "manifest.json parts[0]", key[:40])


@FEW
@given(data=st.data())
def test_a_damaged_manifest_file_is_refused_naming_it(v1_files, data):
    files, items = v1_files
    what, body, _ = data.draw(damaged(files["manifest.json"], lines=False), "damage")
    with tempfile.TemporaryDirectory() as root:
        directory = _write_v1(Path(root), {**files, "manifest.json": body})
        got, refused = _outcome(lambda: _read(str(directory)))
    if refused is not None:
        _names_one_of(refused, "manifest.json", "data/")
    else:  # a flip in a value the reader does not use (a time, the tool version)
        assert got is not None and _same(got, items), what


# ------------------------------------------------------------------ the local file (the CLI's backup)
class Items(list):  # type: ignore[type-arg]
    def __repr__(self) -> str:
        return f"<{len(self)} items>"


@pytest.fixture(scope="module")
def local_items() -> list[dict[str, Any]]:
    return Items(sample.items(sample.CUMULUS_TABLES["Granules"], 25, seed=5, size=300))


@pytest.mark.parametrize("name", ["T.json", "T.json.gz"])
@FUZZ
@given(data=st.data())
def test_a_damaged_local_file_is_refused_naming_it_or_reads_whole(local_items, name, data):
    with tempfile.TemporaryDirectory() as root:
        path = Path(root) / name
        description = {"Table": {"TableName": "T", "KeySchema": [{"AttributeName": "granuleId", "KeyType": "HASH"}]}}
        with LocalFileWriter(
            path, table="T", description=description, backup_id="20261122T030000Z-1a2b3c4d", started_at="then"
        ) as writer:
            for item in local_items:
                writer.write(item)
        body = path.read_bytes()
        if name.endswith(".gz"):  # the same bytes every run (gzip's header holds a time and a name)
            body = gzip.compress(gzip.decompress(body), mtime=0)
        what, body, _ = data.draw(damaged(body), "damage")
        path.write_bytes(body)
        got, refused = _outcome(lambda: _read(str(path)))
    if refused is not None:
        _names_one_of(refused, str(path))
        if isinstance(refused, BadInput) and what in ("bad line", "oversize") and "gzip" not in str(refused):
            assert " line " in str(refused)
        return
    assert got is not None
    # the end line's checksum (and gzip's CRC): anything read is what was written
    assert _same(got, local_items), what


@pytest.mark.parametrize("damage", [b"edbBackupFile", b"ddbBackupFilf", b"ddbBackupFile\x00"])
def test_a_local_file_with_a_damaged_header_is_not_taken_for_plain_json(tmp_path, local_items, damage):
    """One flipped letter in the header once made the file "cumulus-api plain JSON": items wrapped in "Item"."""
    path = tmp_path / "T.json"
    write_local_file(path, local_items, table="T", description=None)
    path.write_bytes(path.read_bytes().replace(b"ddbBackupFile", damage, 1))
    with pytest.raises(DdbBackupError) as info:
        _read(str(path))
    _names_one_of(info.value, f"{path} line")


@pytest.mark.parametrize(
    "header",
    [
        {"formatVersion": 2},
        {"formatVersion": "1"},
        {"formatVersion": None},
        {},
        "not an object",
        {"formatVersion": 1, "description": {"no": "Table"}},
    ],
)
def test_a_local_file_of_an_unknown_version_is_refused_naming_it(tmp_path, header):
    path = tmp_path / "T.json"
    lines = [{"ddbBackupFile": header}, {"Item": {"pk": {"S": "a"}}}, {"ddbBackupEnd": {"items": 1}}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(BadInput, match=r"T\.json line 1"):
        readers.open_source(str(path))


@FEW
@example(end=1)  # the one accepted value, always tried (the draws alone may never reach it)
@example(end=True)
@given(
    end=st.one_of(st.text(max_size=5), st.none(), st.floats(), st.lists(st.integers(), max_size=2), st.integers(-2, 5))
)
def test_the_end_line_of_a_local_part_read_alone_is_checked(end):
    """The restore Lambda reads a part from its work item, without open_source's first pass."""
    with tempfile.TemporaryDirectory() as root:
        path = Path(root) / "T.json"
        lines = [
            {"ddbBackupFile": {"formatVersion": 1}},
            {"Item": {"pk": {"S": "a"}}},
            {"ddbBackupEnd": {"items": end}},
        ]
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        part = PartRef(id="T.json", url=str(path), dialect="local")
        for read in (readers.read_part, fastwrite.read_part):
            got, refused = _outcome(lambda read=read: [dict(i) for i in read(part)])  # type: ignore[misc]
            if end == 1 and not isinstance(end, bool):
                assert got == [{"pk": {"S": "a"}}]
            else:
                assert refused is not None, f"end line {end!r} accepted"
                _names_one_of(refused, str(path))


# ------------------------------------------------------------------ cumulus-api files
@functools.cache
def _fixture_items(path: Path) -> list[dict[str, Any]]:
    return _read(str(path))


@pytest.mark.parametrize("fixture", CUMULUS, ids=["typed-1.18", "plain-1.24"])
@FUZZ
@given(data=st.data(), zipped=st.booleans())
def test_a_damaged_cumulus_file_is_refused_naming_the_line(fixture, data, zipped):
    original = fixture.read_bytes()
    expected = _fixture_items(fixture)
    body = gzip.compress(original, mtime=0) if zipped else original
    what, damaged_body, inserted = data.draw(damaged(body), "damage")
    with tempfile.TemporaryDirectory() as root:
        path = Path(root) / ("T.json.gz" if zipped else "T.json")
        path.write_bytes(damaged_body)
        got, refused = _outcome(lambda: _read(str(path)))
    if refused is not None:
        _names_one_of(refused, str(path))
        if isinstance(refused, BadInput) and what in ("bad line", "oversize") and "gzip" not in str(refused):
            assert " line " in str(refused)
        return
    assert got is not None
    if what == "bad line" and fixture.parent.name == "cumulus-api-1.24.0":
        # In a plain file any JSON object that is not typed is an item, even {} (whether it holds the
        # table's key is known only to the restore, which refuses it then: see write_items' key check).
        doc = json.loads(inserted)
        assert isinstance(doc, dict) and not readers.looks_typed(doc) and len(got) == len(expected) + 1
    elif what == "drop line":  # no count: a missing line cannot be told from a shorter backup either
        assert len(got) == len(expected) - 1 and not Counter(map(canonical, got)) - Counter(map(canonical, expected))
    elif what == "truncate" and not zipped:
        # The format has no count: a file cut at the end of a line cannot be told from a shorter backup.
        # Anywhere else a cut is refused; a cut at a line end gives the items before it, in order.
        complete = damaged_body.count(b"\n") + (not damaged_body.endswith(b"\n") and bool(damaged_body.strip()))
        assert [canonical(i) for i in got] == [canonical(i) for i in expected[: len(got)]]
        assert len(got) == complete
    elif zipped:
        assert _same(got, expected), what
    else:
        assert len(got) == len(expected), f"{what}: {len(got)} items of {len(expected)}"


# ------------------------------------------------------------------ native exports
@FUZZ
@given(data=st.data(), keep_md5=st.booleans())
def test_a_damaged_native_export_is_refused_naming_the_file(data, keep_md5):
    with tempfile.TemporaryDirectory() as root:
        export = Path(root) / "AWSDynamoDB" / EXPORT.name
        shutil.copytree(EXPORT, export)
        expected = _read(str(EXPORT))
        kinds = ["data", "manifest-files.json", "key", "count", "missing files", "nothing"]
        target = data.draw(st.sampled_from(kinds), "what")
        if target == "nothing":  # the accept branch: an intact export reads whole, with or without its md5
            if not keep_md5:
                (export / "manifest-files.md5").unlink()
        elif target == "data":
            path = data.draw(st.sampled_from(sorted((export / "data").iterdir())), "file")
            _, body, _ = data.draw(damaged(path.read_bytes(), lines=False), "damage")
            path.write_bytes(body)
        elif target == "missing files":
            (export / "manifest-files.json").unlink()
        else:
            files = export / "manifest-files.json"
            entries = [json.loads(line) for line in files.read_text().splitlines() if line.strip()]
            entry = entries[data.draw(st.integers(0, len(entries) - 1), "entry")]
            if target == "key":
                key = data.draw(OUTSIDE_KEYS.filter(lambda k: isinstance(k, str)), "key")
                entry["dataFileS3Key"] = f"exports/AWSDynamoDB/{EXPORT.name}/" + key
            elif target == "count":
                entry["itemCount"] = data.draw(st.one_of(st.integers(-2, 200), st.text(max_size=3), st.none()))
            else:
                _, raw, _ = data.draw(damaged(files.read_bytes(), lines=False), "damage")
                files.write_bytes(raw)
            if target != "manifest-files.json":
                files.write_text("".join(json.dumps(e) + "\n" for e in entries))
            if not keep_md5:
                (export / "manifest-files.md5").unlink()
        got, refused = _outcome(lambda: _read(str(export)))
    if refused is not None:
        assert target != "nothing", f"an intact export was refused: {refused}"
        _names_one_of(refused, str(export))
    else:
        assert got is not None and _same(got, expected), target


# ------------------------------------------------------------------ nothing reported as restored that was not written
KEYS = [("pk", "HASH")]
#: Items DynamoDB refuses, each for its own reason (all of them ValidationException, as moto answers too).
REFUSED_BY_DYNAMODB = [
    lambda k: {"pk": {"N": k.removeprefix("k")}, "why": {"S": "key of the wrong type"}},
    lambda k: {"pk": {"S": ""}, "why": {"S": "empty key"}},
    lambda k: {"pk": {"S": k}, "n": {"N": "not a number"}},
    lambda k: {"pk": {"S": k}, "n": {"NULL": False}},
    lambda k: {"pk": {"S": k}, "n": {"N": "1e300"}},
]


@st.composite
def mixed_items(draw: Any) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 70))
    out = []
    empty_key = False  # one item at most with the empty key: a key met again stops the writes (test_restore_write)
    for i in range(count):
        key = f"k{i}"
        refused = draw(st.sampled_from(REFUSED_BY_DYNAMODB)) if draw(st.integers(0, 5)) == 0 else None
        if refused is not None and not (empty_key and refused(key)["pk"] == {"S": ""}):
            out.append(refused(key))
            empty_key = empty_key or refused(key)["pk"] == {"S": ""}
        else:
            out.append({"pk": {"S": key}, "i": {"N": str(i)}, "v": {"S": draw(st.text(max_size=8))}})
    return out


@pytest.fixture
def target(ddb: Any) -> Iterator[Any]:
    def fresh() -> str:
        name = f"fuzz-target-{next(_unique)}"
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        return name

    yield fresh


def _table(ddb: Any, name: str) -> list[dict[str, Any]]:
    return [i for page in ddb.get_paginator("scan").paginate(TableName=name) for i in page["Items"]]


def _restore(ddb: Any, table: str, items: Any, concurrency: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """write_items; (its counts, what it dead-lettered)."""
    saved: list[dict[str, Any]] = []

    def dead_letter(xs: list[Any]) -> str:
        saved.extend(dict(x) if isinstance(x, fastwrite.RawItem) else x for x in xs)
        return "s3://dead/letter.json.gz"

    try:
        counts = write_items(
            ddb, table, items, dead_letter=dead_letter, key_names=["pk"], concurrency=concurrency, sleep=lambda _s: None
        )
    except DeadLettered as exc:
        assert exc.location == "s3://dead/letter.json.gz" and exc.counts["deadLettered"] == len(saved)
        counts = exc.counts
    return counts, saved


@FEW
@given(items=mixed_items(), concurrency=st.integers(1, 4))
def test_what_write_items_reports_written_is_what_the_table_holds(ddb, target, items, concurrency):
    table = target()
    counts, saved = _restore(ddb, table, iter(items), concurrency)
    assert counts["items"] == len(items) and counts["done"]
    assert counts["written"] + len(saved) == len(items)
    # every item is either written or dead-lettered, never both, never neither
    written = list(items)
    for item in saved:
        written.remove(item)  # raises if it dead-lettered something it was not given
    assert len(written) == counts["written"]
    assert _same(_table(ddb, table), written)


def _part(root: Path, lines: list[bytes], *, signed: bool) -> PartRef:
    path = root / "data" / "000000-000000.json.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(b"".join(line + b"\n" for line in lines), mtime=0))
    sha = hashlib.sha256(path.read_bytes()).hexdigest() if signed else None
    return PartRef("data/000000-000000.json.gz", str(path), "item", items=len(lines), sha256=sha)


#: Lines built to fool a reader that sends lines without parsing them: they close the request early and add
#: one for another table or a second item, add a key beside "Item", or trail text.
STRUCTURE_TRICKS = [
    b'{"Item":{"pk":{"S":"trick-a"}}}}],"fuzz-other":[{"PutRequest":{"Item":{"pk":{"S":"evil"}}}',
    b'{"Item":{"pk":{"S":"trick-b"}}}},{"PutRequest":{"Item":{"\\u0070k":{"S":"smuggled"}}}',
    b'{"Item":{"pk":{"S":"trick-c"}}}},{"PutRequest":{"Item":{"other":{"S":"no key"}}}',
    b'{"Item":{"pk":{"S":"trick-d"}},"Extra":{"x":{"S":"y"}}}',
    b'{"Item":{"pk":{"S":"trick-e"}, "n":{"N":"1"}}} trailing',
]
#: Lines the reader refuses for a value, which DynamoDB refuses too (SerializationException, ValidationException).
#: (Not here: values moto stores though DynamoDB refuses them, such as bad base64 or an empty set.)
VALUE_TRICKS = [
    b'{"Item":{"pk":{"S":"trick-g"},"s":{"S":5}}}',
    b'{"Item":{"pk":{"S":"trick-h"},"x":{"NULL":false}}}',
]
#: Lines the reader reads, that DynamoDB refuses: dead-lettered.
REFUSED_LINES = [b'{"Item":{"pk":{"S":"trick-i"},"n":{"N":"not a number"}}}']


@FUZZ
@given(
    valid=st.lists(st.text(alphabet="abcdef", min_size=1, max_size=4), min_size=1, max_size=40, unique=True),
    tricks=st.lists(
        st.sampled_from([*STRUCTURE_TRICKS, *VALUE_TRICKS, *REFUSED_LINES, OVERSIZE.replace(b"granuleId", b"pk")]),
        max_size=3,
        unique=True,
    ),
    positions=st.lists(st.integers(0, 40), min_size=3, max_size=3),
    signed=st.booleans(),
)
def test_the_fast_path_writes_only_what_it_reports_and_only_where_it_is_told(
    ddb, target, valid, tricks, positions, signed
):
    from botocore.exceptions import ClientError

    table, other = target(), target()  # the trick lines aim at the other one
    lines = [line_from_client_item({"pk": {"S": f"v-{k}"}, "n": {"N": str(i)}})[:-1] for i, k in enumerate(valid)]
    for trick, at in zip(tricks, positions, strict=False):
        lines.insert(min(at, len(lines)), trick.replace(b"fuzz-other", other.encode()))
    with tempfile.TemporaryDirectory() as root:
        part = _part(Path(root), lines, signed=signed)
        read, reader_refused = _outcome(lambda: list(readers.read_part(part)))
        try:
            counts, saved = _restore(ddb, table, fastwrite.read_part(part, ddb=ddb), concurrency=2)
            raised: BaseException | None = None
        except (DdbBackupError, ClientError) as exc:  # the reader's own refusal, or DynamoDB's
            raised = exc
    assert _table(ddb, other) == [], "a line wrote into another table"
    held = _table(ddb, table)
    if raised is not None:
        assert reader_refused is not None, f"the fast path failed on what the reader reads: {raised}"
        if isinstance(raised, DdbBackupError):
            _names_one_of(raised, part.url)
        # whatever went in before the refusal is valid lines of this part, and only those
        assert {i["pk"]["S"] for i in held} <= {f"v-{k}" for k in valid}
        return
    # it went through: the reader reads the same items, and what is reported written is what the table holds
    assert reader_refused is None, f"the fast path took what the reader refuses: {reader_refused}"
    assert read is not None and counts["items"] == len(read)
    assert counts["written"] + len(saved) == len(read)
    written = list(read)
    for item in saved:
        written.remove(item)
    assert _same(held, written)


#: Text that would end a request early if a line were joined in without being proved one item.
_HOSTILE = ['"', "\\", '}}],"fuzz-other":[{"PutRequest":{"Item":', "},{", "\n", "\u2028", "é中", "\x00", '"}}}']
#: One to three valid item lines as a backup or an export writes them (compact, UTF-8 or \\u-escaped),
#: every type, hostile text in names and values (the fast scan tests' wire items).
item_line_lists = st.tuples(
    item_lists(st.one_of(st.text(max_size=6), st.lists(st.sampled_from(_HOSTILE), max_size=3).map("".join))),
    st.booleans(),
).map(lambda t: [json.dumps({"Item": i}, separators=(",", ":"), ensure_ascii=t[1]).encode() for i in t[0][:3]])
item_lines = item_line_lists.filter(bool).map(lambda lines: lines[0])


#: Pieces of JSON text, to build lines that look like an item line at both ends and may be anything between.
_PIECES = [b"{", b"}", b"[", b"]", b",", b":", b" ", b'"pk"', b'"S"', b'"x"', b'"Item"', b'"PutRequest"']
_PIECES += [b'"fuzz-other"', b'"\\""', b'"\\"', b"1", b"null", b"\\", b'"', b"\n"]
tricky_lines = st.one_of(
    item_lines,
    st.lists(st.sampled_from(_PIECES), max_size=14).map(lambda ps: b'{"Item":{"' + b"".join(ps) + b"}}"),
    st.tuples(st.sampled_from(STRUCTURE_TRICKS), st.integers(0, 60), st.sampled_from(_PIECES)).map(
        lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]
    ),
)


@settings(FUZZ, max_examples=150)
@given(line=tricky_lines)
def test_a_line_the_fast_path_sends_is_exactly_one_put_of_the_item_it_holds(line):
    """Whatever a signed part holds, a line sent as it is becomes exactly one PutRequest for the target table."""
    assume(b"\n" not in line)
    with tempfile.TemporaryDirectory() as root:
        part = _part(Path(root), [line], signed=True)
        got, refused = _outcome(lambda: list(fastwrite.read_part(part)))
    if refused is not None:
        _names_one_of(refused, "line 1")
        return
    assert got is not None
    (item,) = got
    if not isinstance(item, fastwrite.RawItem):
        return  # parsed and validated as the reader does
    params = {"RequestItems": {"target": [{"PutRequest": {"Item": item}}]}}
    context: dict[str, Any] = {}
    fastwrite._build_body(params, context)
    body = json.loads(context[fastwrite._BODY])
    assert list(body) == ["RequestItems"] and list(body["RequestItems"]) == ["target"]
    (request,) = body["RequestItems"]["target"]
    assert request == {"PutRequest": json.loads(line)}


@settings(FUZZ, max_examples=150)
@given(lines=item_line_lists.filter(bool))
def test_valid_item_lines_are_sent_as_they_are_each_exactly_one_put(lines):
    """Every example reaches the assertions: each valid line of a signed part is a RawItem sent unchanged."""
    with tempfile.TemporaryDirectory() as root:
        part = _part(Path(root), lines, signed=True)
        got = list(fastwrite.read_part(part))
    assert [type(item) for item in got] == [fastwrite.RawItem] * len(lines)
    assert [item.line for item in got] == lines and all(item.wire is not None for item in got)
    params = {"RequestItems": {"target": [{"PutRequest": {"Item": item}} for item in got]}}
    context: dict[str, Any] = {}
    fastwrite._build_body(params, context)
    assert params["RequestItems"] == {"target": [{"PutRequest": {"Item": {}}}]}  # botocore sees a placeholder
    body = json.loads(context[fastwrite._BODY])
    assert body == {"RequestItems": {"target": [{"PutRequest": json.loads(line)} for line in lines]}}
