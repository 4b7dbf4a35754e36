"""Readers: every format restore reads, detected, verified, and refused with a message naming file and line."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ddb_backup import names
from ddb_backup.aws import clients
from ddb_backup.backup.finalize import finalize_table
from ddb_backup.backup.plan import Settings, plan_run
from ddb_backup.backup.scan import ScanSettings, scan_segment
from ddb_backup.errors import BackupIncomplete, BadInput, IntegrityError, UnknownFormat
from ddb_backup.format import lines as line_stream
from ddb_backup.format import location
from ddb_backup.format import sources as readers
from ddb_backup.format.lines import PartRef
from ddb_backup.format.localfile import LocalFileWriter, write_local_file
from ddb_backup.format.runs import find_run as runs_find
from ddb_backup.restore.deadletters import dead_letter_writer
from devkit import sample
from tests.conftest import FIXTURES, canonical, expected_items, table_items

TABLES = ["mystack-CollectionsTable", "mystack-ExecutionsTable", "mystack-GranulesTable"]
EXPORT = FIXTURES / "native-export" / "AWSDynamoDB" / "01763780000000-a1b2c3d4"
BUCKET = "backups"


def _same(items, table: str) -> bool:
    return Counter(canonical(i) for i in items) == Counter(canonical(i) for i in expected_items(table))


# ------------------------------------------------------------------ foreign formats, as they are
@pytest.mark.parametrize("table", TABLES)
def test_cumulus_api_1_18_typed_files_read_exactly(table):
    source = readers.open_source(str(FIXTURES / "cumulus-api-1.18.0" / f"{table}.json"))
    assert (source.format, source.parts[0].dialect, source.description, source.expected_items) == (
        "cumulus-api",
        "typed",
        None,
        None,
    )
    assert source.warnings == [readers.NO_COUNT.format(url=source.location, fmt="cumulus-api")]
    assert "carries no item count" in source.warnings[0]
    assert _same(source.items(), table)


@pytest.mark.parametrize("table", TABLES)
def test_cumulus_api_1_24_plain_files_read_exactly_with_a_warning(table):
    source = readers.open_source(str(FIXTURES / "cumulus-api-1.24.0" / f"{table}.json"))
    assert (source.format, source.parts[0].dialect) == ("cumulus-api", "plain")
    assert "cannot tell sets from lists" in source.warnings[0]
    assert "carries no item count" in source.warnings[1]
    assert _same(source.items(), table)


@pytest.mark.parametrize(
    "where", [EXPORT, Path(str(EXPORT) + "/"), EXPORT / "manifest-summary.json", FIXTURES / "native-export"]
)
def test_a_native_export_reads_from_its_directory_summary_or_prefix(where):
    source = readers.open_source(str(where))
    assert source.format == "native-export"
    assert source.table == "mystack-GranulesTable"
    assert source.expected_items == 120
    assert [p.id for p in source.parts] == [
        "data/x7k2mq4vdu5lbl3fzhyq2a6ctm.json.gz",
        "data/j3nq5ybq4e2dfp7wzl6ka3xvhe.json.gz",
    ]
    assert _same(source.items(), "mystack-GranulesTable")


def test_a_native_export_moved_to_another_bucket_and_prefix_reads_relative_to_where_it_is(s3):
    s3.create_bucket(Bucket="elsewhere")
    for path in EXPORT.rglob("*"):
        if path.is_file():
            key = f"copied/AWSDynamoDB/{EXPORT.name}/{path.relative_to(EXPORT)}"
            s3.put_object(Bucket="elsewhere", Key=key, Body=path.read_bytes())
    source = readers.open_source(f"s3://elsewhere/copied/AWSDynamoDB/{EXPORT.name}/")
    assert (
        source.parts[0].url
        == f"s3://elsewhere/copied/AWSDynamoDB/{EXPORT.name}/data/x7k2mq4vdu5lbl3fzhyq2a6ctm.json.gz"
    )
    assert source.dead_letter_base == f"s3://elsewhere/copied/AWSDynamoDB/{EXPORT.name}/"
    assert _same(source.items(), "mystack-GranulesTable")
    assert readers.open_source("s3://elsewhere/copied/").format == "native-export"


@pytest.fixture
def export_copy(tmp_path):
    target = tmp_path / "AWSDynamoDB" / EXPORT.name
    shutil.copytree(EXPORT, target)
    for p in target.rglob("*"):
        p.chmod(0o644)
    return target


def test_a_native_export_data_file_with_another_md5_is_refused_before_any_item(export_copy):
    data = export_copy / "data" / "j3nq5ybq4e2dfp7wzl6ka3xvhe.json.gz"
    body = bytearray(data.read_bytes())
    body[-12] ^= 0xFF
    data.write_bytes(bytes(body))
    source = readers.open_source(str(export_copy))
    first, second = source.parts
    assert len(list(source.read_part(first))) == 70
    reader = source.read_part(second)
    with pytest.raises(IntegrityError, match=r"part data/j3nq5ybq4e2dfp7wzl6ka3xvhe.json.gz .* is corrupt: md5"):
        next(reader)


def test_a_native_export_whose_item_count_differs_is_refused_naming_the_part(export_copy):
    files = export_copy / "manifest-files.json"
    text = files.read_text().replace('"itemCount": 50', '"itemCount": 51')
    files.write_text(text)
    (export_copy / "manifest-files.md5").write_text(hashlib.md5(text.encode()).hexdigest())
    summary = export_copy / "manifest-summary.json"
    summary.write_text(summary.read_text().replace('"itemCount": 120', '"itemCount": 121'))
    (export_copy / "manifest-summary.md5").unlink()
    source = readers.open_source(str(export_copy))
    with pytest.raises(IntegrityError, match=r"j3nq5ybq4e2dfp7wzl6ka3xvhe.json.gz .* holds 50 items, manifest says 51"):
        list(source.read_part(source.parts[1]))


def test_a_native_export_whose_data_files_add_up_to_less_than_its_summary_is_refused(export_copy):
    # manifest-files.json lost an entry (and its md5 file was rewritten to match): 50 of 120 items are listed.
    files = export_copy / "manifest-files.json"
    lines = [ln for ln in files.read_text().splitlines() if ln.strip()]
    kept = "\n".join(ln for ln in lines if '"itemCount": 70' not in ln) + "\n"
    assert kept.count("itemCount") == len(lines) - 1
    files.write_text(kept)
    (export_copy / "manifest-files.md5").write_text(hashlib.md5(kept.encode()).hexdigest())
    with pytest.raises(
        IntegrityError, match=r"manifest-summary.json: itemCount 120, manifest-files.json adds up to 50$"
    ):
        readers.open_source(str(export_copy))


def test_a_native_export_s_table_is_read_from_its_arn(export_copy):
    assert readers.open_source(str(export_copy)).table == "mystack-GranulesTable"


def test_a_native_export_manifest_that_differs_from_its_md5_file_is_refused(export_copy):
    files = export_copy / "manifest-files.json"
    files.write_text(files.read_text().replace('"itemCount": 50', '"itemCount": 49'))
    with pytest.raises(IntegrityError, match=r"manifest-files.json is corrupt: md5"):
        readers.open_source(str(export_copy))


def test_a_native_export_key_outside_its_data_directory_is_refused(export_copy):
    files = export_copy / "manifest-files.json"
    files.write_text(files.read_text().replace("/data/x7k2", "/../x7k2"))
    (export_copy / "manifest-files.md5").unlink()
    with pytest.raises(BadInput, match=r"outside the backup's data/ directory"):
        readers.open_source(str(export_copy))


def test_an_ion_or_incremental_export_is_refused(export_copy):
    summary = export_copy / "manifest-summary.json"
    summary.write_text(summary.read_text().replace('"DYNAMODB_JSON"', '"ION"'))
    (export_copy / "manifest-summary.md5").unlink()
    with pytest.raises(UnknownFormat, match=r"ION"):
        readers.open_source(str(export_copy))


def _rewrite_export(export: Path, *, summary=None, files: list[str] | None = None) -> None:
    """Edit an export's summary (``summary(doc)``) and/or replace manifest-files.json's lines; drop their .md5 files."""
    if summary is not None:
        path = export / "manifest-summary.json"
        doc = json.loads(path.read_text())
        summary(doc)
        path.write_text(json.dumps(doc))
        (export / "manifest-summary.md5").unlink(missing_ok=True)
    if files is not None:
        (export / "manifest-files.json").write_text("\n".join(files) + "\n")
        (export / "manifest-files.md5").unlink(missing_ok=True)


def _files_entry(key: str, count: int = 0, **more: object) -> str:
    return json.dumps({"itemCount": count, "md5Checksum": "AAAA", "dataFileS3Key": key, **more})


EXPORT_KEY = f"exports/AWSDynamoDB/{EXPORT.name}/"


def test_an_export_summary_without_format_type_or_table_arn_reads_as_a_full_dynamodb_json_export(export_copy):
    def older(doc):
        del doc["outputFormat"], doc["tableArn"]

    _rewrite_export(export_copy, summary=older)
    source = readers.open_source(str(export_copy))
    assert (source.format, source.location, source.table, source.backup_id, source.expected_items) == (
        "native-export",
        str(export_copy),
        None,
        EXPORT.name,
        120,
    )
    assert _same(source.items(), "mystack-GranulesTable")


@pytest.mark.parametrize(
    ("arn", "table"),
    [
        ("arn:aws:dynamodb:us-east-1:123456789012:table/T-1.x", "T-1.x"),
        ("arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2026-11-21T03:00:00.000", "T"),
        ("not an arn", None),
        (None, None),
    ],
)
def test_an_export_s_table_is_the_name_in_its_table_arn_and_nothing_after_it(export_copy, arn, table):
    _rewrite_export(export_copy, summary=lambda doc: doc.update(tableArn=arn))
    assert readers.open_source(str(export_copy)).table == table


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda doc: doc.pop("manifestFilesS3Key"), r"manifest-summary.json: not a DynamoDB export summary$"),
        (
            lambda doc: doc.update(exportType="INCREMENTAL_EXPORT"),
            r"manifest-summary.json: exportType 'INCREMENTAL_EXPORT': only full exports are read$",
        ),
        (
            lambda doc: doc.update(outputFormat="ION"),
            r"manifest-summary.json: outputFormat 'ION': only DYNAMODB_JSON is read$",
        ),
    ],
)
def test_an_export_summary_this_tool_cannot_read_is_refused_saying_why(export_copy, change, message):
    _rewrite_export(export_copy, summary=change)
    with pytest.raises(UnknownFormat, match=message):
        readers.open_source(str(export_copy))


def test_an_export_summary_of_a_full_export_says_so_and_reads(export_copy):
    _rewrite_export(export_copy, summary=lambda doc: doc.update(exportType="FULL_EXPORT"))
    assert readers.open_source(str(export_copy)).expected_items == 120


def test_an_export_with_an_empty_data_file_and_blank_lines_in_its_manifest_reads_every_part(export_copy):
    # DynamoDB writes empty data files (itemCount 0) when a segment has no items.
    (export_copy / "data" / "empty.json.gz").write_bytes(gzip.compress(b""))
    kept = (export_copy / "manifest-files.json").read_text().splitlines()
    _rewrite_export(export_copy, files=[kept[0], "", _files_entry(EXPORT_KEY + "data/empty.json.gz"), "  ", kept[1]])
    source = readers.open_source(str(export_copy))
    assert [(p.id, p.items) for p in source.parts] == [
        ("data/x7k2mq4vdu5lbl3fzhyq2a6ctm.json.gz", 70),
        ("data/empty.json.gz", 0),
        ("data/j3nq5ybq4e2dfp7wzl6ka3xvhe.json.gz", 50),
    ]
    assert source.expected_items == 120
    _rewrite_export(export_copy, summary=lambda doc: doc.update(itemCount=121))
    with pytest.raises(
        IntegrityError, match=r"manifest-summary.json: itemCount 121, manifest-files.json adds up to 120$"
    ):
        readers.open_source(str(export_copy))


def test_an_export_data_file_is_named_by_its_whole_key_after_the_export_directory(export_copy):
    key = EXPORT_KEY + f"data/AWSDynamoDB/{EXPORT.name}/f.json.gz"  # the marker again, inside data/
    _rewrite_export(export_copy, summary=lambda doc: doc.pop("itemCount"), files=[_files_entry(key, 3)])
    (part,) = readers.open_source(str(export_copy)).parts
    assert (part.id, part.url, part.items, part.md5) == (
        f"data/AWSDynamoDB/{EXPORT.name}/f.json.gz",
        str(export_copy / "data" / "AWSDynamoDB" / EXPORT.name / "f.json.gz"),
        3,
        "AAAA",
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[1]", r"line 2: not an object$"),
        ("{", r"line 2: not a JSON line"),
        (
            _files_entry("exports/AWSDynamoDB/01763780000000-ffffffff/data/a.json.gz"),
            r"line 2: dataFileS3Key 'exports/AWSDynamoDB/01763780000000-ffffffff/data/a.json.gz' is not inside "
            rf"AWSDynamoDB/{EXPORT.name}/$",
        ),
        (json.dumps({"itemCount": 1}), rf"line 2: dataFileS3Key None is not inside AWSDynamoDB/{EXPORT.name}/$"),
        (_files_entry(EXPORT_KEY + "other/a.json.gz"), r"line 2: part key 'other/a.json.gz' points outside"),
        (_files_entry(EXPORT_KEY + "data/a.json.gz", -1), r"line 2: itemCount must be a count, got -1$"),
        (_files_entry(EXPORT_KEY + "data/a.json.gz", md5Checksum=7), r"line 2: md5Checksum must be a string, got 7$"),
    ],
)
def test_a_bad_export_manifest_line_is_refused_naming_file_line_and_field(export_copy, line, message):
    first = (export_copy / "manifest-files.json").read_text().splitlines()[0]
    _rewrite_export(export_copy, files=[first, line])
    with pytest.raises(BadInput, match=rf"^{export_copy}/manifest-files.json {message}"):
        readers.open_source(str(export_copy))


@pytest.mark.parametrize("which", ["manifest-summary", "manifest-files"])
def test_an_export_md5_file_that_is_not_ascii_or_too_long_is_refused_naming_it(export_copy, which):
    md5_file = export_copy / f"{which}.md5"
    good = md5_file.read_text().strip()
    md5_file.write_text(good.upper() + "\n" + " " * (1023 - len(good)))  # 1024 bytes, case and spaces aside: its md5
    assert len(md5_file.read_bytes()) == 1024 and readers.open_source(str(export_copy)).expected_items == 120
    md5_file.write_bytes(b"\xff" + good.encode()[1:])
    with pytest.raises(IntegrityError, match=rf"^{export_copy}/{which}.json is corrupt: md5 {good}, {which}.md5 says"):
        readers.open_source(str(export_copy))
    md5_file.write_bytes(good.encode() + b" " * (1025 - len(good)))
    with pytest.raises(BadInput, match=rf"^{export_copy}/{which}.md5: larger than 1024 bytes"):
        readers.open_source(str(export_copy))


# ------------------------------------------------------------------ our own format v1
def _backup_v1(ddb, s3, table: str, count: int, segments: int = 2) -> str:
    """A real v1 backup made by the backup core, on moto: returns the backup directory URL."""
    s3.create_bucket(Bucket=BUCKET)
    short = table.split("-")[1].removesuffix("Table")
    sample.create_cumulus_tables(ddb, "mystack-", {short: count})
    run = plan_run(ddb, s3, Settings(bucket=BUCKET, prefix="backups/"), tables=[table], segments=segments)
    for work in json.loads(s3.get_object(Bucket=BUCKET, Key=run["workKey"])["Body"].read()):
        task = dict(work)
        while not task.get("done"):
            task = scan_segment(
                ddb, s3, ScanSettings(BUCKET, part_bytes=20_000, page_limit=10), task, time_left=lambda: 60.0
            )
    directory = json.loads(s3.get_object(Bucket=BUCKET, Key=run["tablesKey"])["Body"].read())[0]["backupDir"]
    finalize_table(s3, BUCKET, directory)
    return f"s3://{BUCKET}/{directory}"


@pytest.fixture(scope="module")
def v1_master(tmp_path_factory):
    """One real backup (90 items, several parts), made once and kept on disk."""
    from moto import mock_aws

    from ddb_backup.aws.clients import client

    root = tmp_path_factory.mktemp("v1")
    with mock_aws():
        client.cache_clear()
        ddb, s3 = client("dynamodb"), client("s3")
        url = _backup_v1(ddb, s3, "mystack-GranulesTable", 90)
        prefix = url.split("/", 3)[3]
        for key in [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]]:
            path = root / key[len(prefix) :]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        items = Counter(canonical(i) for i in table_items(ddb, "mystack-GranulesTable"))
    client.cache_clear()
    return root, items


@pytest.fixture
def v1(v1_master, tmp_path) -> Path:
    directory = tmp_path / "mystack-GranulesTable" / "20261122T030000Z-1a2b3c4d"
    shutil.copytree(v1_master[0], directory)
    return directory


def _edit_manifest(directory: Path, change) -> None:
    manifest = json.loads((directory / "manifest.json").read_text())
    change(manifest)
    (directory / "manifest.json").write_text(json.dumps(manifest))


def test_our_backup_reads_from_s3_by_directory_or_manifest_with_schema_and_counts(v1_master, s3):
    root, items = v1_master
    s3.create_bucket(Bucket=BUCKET)
    for path in root.rglob("*"):
        if path.is_file():
            s3.put_object(Bucket=BUCKET, Key=f"b/T/ID/{path.relative_to(root)}", Body=path.read_bytes())
    for where in (f"s3://{BUCKET}/b/T/ID/", f"s3://{BUCKET}/b/T/ID", f"s3://{BUCKET}/b/T/ID/manifest.json"):
        source = readers.open_source(where, s3)
        assert source.format == "ddb-backup-v1"
        assert source.table == "mystack-GranulesTable"
        assert source.key_schema == [{"AttributeName": "granuleId", "KeyType": "HASH", "AttributeType": "S"}]
        assert len(source.parts) > 2 and source.expected_items == 90
        assert source.dead_letter_base == f"s3://{BUCKET}/b/T/ID/"
    assert Counter(map(canonical, source.items())) == items


def test_our_backup_reads_from_a_local_copy(v1, v1_master):
    for where in (v1, v1 / "manifest.json"):
        source = readers.open_source(str(where))
        assert source.format == "ddb-backup-v1"
        assert Counter(map(canonical, source.items())) == v1_master[1]


def test_a_table_directory_restores_its_latest_complete_backup(v1):
    newer = v1.parent / "20991231T000000Z-00000000"
    newer.mkdir()
    (newer / "plan.json").write_text("{}")  # a backup still running: no manifest yet
    source = readers.open_source(str(v1.parent))
    assert source.location == str(v1) and source.expected_items == 90
    assert "restoring the latest, " in source.warnings[0]


def test_a_table_directory_names_the_backup_it_restores_and_every_newer_incomplete_one(v1):
    table = v1.parent
    shutil.copytree(v1, table / "20261121T030000Z-00000001")  # older, complete
    for newer in ("20261123T030000Z-00000002", "20261124T030000Z-00000003"):  # newer, no manifest yet
        (table / newer).mkdir()
        (table / newer / "plan.json").write_text("{}")
    shutil.copytree(v1, table / "20261125T030000Z-0000000g")  # not a backup id: not a backup of this tool
    (table / "notes").mkdir()
    source = readers.open_source(str(table))
    backup_id = json.loads((v1 / "manifest.json").read_text())["backupId"]  # the manifest's, whatever the directory
    assert (source.location, source.backup_id) == (str(v1), backup_id)
    assert source.warnings == [
        f"{table} holds several backups of one table: restoring the latest, {backup_id}",
        f"{table}: the newest backup, 20261124T030000Z-00000003, is incomplete (no manifest.json; "
        f"2 incomplete in all): restoring {backup_id}, the newest complete one",
    ]


def test_a_table_directory_with_only_incomplete_backups_is_no_backup(v1):
    (v1 / "manifest.json").unlink()
    with pytest.raises(UnknownFormat) as info:
        readers.open_source(str(v1.parent))
    assert str(info.value) == (
        f"{v1.parent}: no backup found (neither a ddb-backup manifest.json, a DynamoDB export, "
        "a cumulus-api backup file nor a ddb-backup local file)"
    )


def test_a_corrupted_part_is_refused_naming_it_before_any_of_its_items(v1):
    source = readers.open_source(str(v1))
    part = source.parts[1]
    body = bytearray(Path(part.url).read_bytes())
    body[len(body) // 2] ^= 0x01
    Path(part.url).write_bytes(bytes(body))
    with pytest.raises(IntegrityError, match=rf"part {part.id} .* is corrupt: sha256"):
        next(source.read_part(part))


def test_a_part_whose_count_differs_from_the_manifest_fails_naming_it(v1):
    def one_more(m):
        m["parts"][0]["items"] += 1
        m["totals"]["items"] += 1

    _edit_manifest(v1, one_more)
    source = readers.open_source(str(v1))
    with pytest.raises(IntegrityError, match=rf"part {source.parts[0].id} .* manifest says"):
        list(source.read_part(source.parts[0]))


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda m: m.update(formatVersion=2), BadInput, "formatVersion 2 is not one this tool reads"),
        (lambda m: m["parts"][0].update(key="../other/data/x.json.gz"), BadInput, "outside the backup's data/"),
        (lambda m: m["parts"][0].update(key="/etc/passwd"), BadInput, "outside the backup's data/"),
        (lambda m: m["parts"][0].update(sha256="abc"), BadInput, "sha256 must be 64 hex digits"),
        (lambda m: m["totals"].update(items=1), IntegrityError, r"totals say 1 items, the parts add up to 90$"),
        (lambda m: m.update(totals="x"), BadInput, r"manifest.json: totals must be an object, got str$"),
        (lambda m: m.pop("parts"), BadInput, r"manifest.json: has no list of parts$"),
        (lambda m: m.update(description={}), BadInput, r"manifest.json: has no table description$"),
        (lambda m: m.update(description=["Table"]), BadInput, r"manifest.json: has no table description$"),
        (lambda m: m.update(format="other"), UnknownFormat, "not a ddb-backup manifest"),
        (lambda m: m.update(itemFormat="ION"), BadInput, r"manifest.json: itemFormat 'ION' is not DYNAMODB_JSON$"),
        (lambda m: m["parts"].__setitem__(1, "x"), BadInput, r"manifest.json parts\[1\]: not an object$"),
        (
            lambda m: m["parts"][1].update(items=-1),
            BadInput,
            r"manifest.json parts\[1\]: items must be a count, got -1$",
        ),
        (
            lambda m: m["parts"].append(dict(m["parts"][0])),
            BadInput,
            r"manifest.json parts\[\d+\]: part data/\S+ is listed twice$",
        ),
    ],
)
def test_a_bad_manifest_is_refused_naming_it(v1, change, error, message):
    _edit_manifest(v1, change)
    with pytest.raises(error, match=message) as info:
        readers.open_source(str(v1))
    assert "manifest.json" in str(info.value)


def test_a_manifest_without_item_format_or_part_sizes_reads_each_part_checked_by_its_sha256(v1, v1_master):
    def older(m):
        del m["itemFormat"]
        for part in m["parts"]:
            part["bytes"] = str(part["bytes"])  # not a size: ignored, the sha256 still checks every byte

    _edit_manifest(v1, older)
    source = readers.open_source(str(v1))
    assert source.expected_items == 90 and Counter(map(canonical, source.items())) == v1_master[1]
    assert {p.bytes for p in source.parts} == {None}


def _empty_part(m) -> None:
    m["parts"].append({"key": "data/empty.json.gz", "items": 0, "sha256": "0" * 64, "bytes": 20})


def test_an_empty_part_adds_nothing_to_the_count_the_totals_are_checked_against(v1):
    (v1 / "data" / "empty.json.gz").write_bytes(gzip.compress(b""))  # every part listed is in data/
    _edit_manifest(v1, _empty_part)
    assert readers.open_source(str(v1)).expected_items == 90
    _edit_manifest(v1, lambda m: m["totals"].update(items=91))
    with pytest.raises(IntegrityError, match=r"manifest.json: totals say 91 items, the parts add up to 90$"):
        readers.open_source(str(v1))


@pytest.mark.parametrize(("moment", "read"), [("2026-11-22T03:00:00+00:00", "2026-11-22T03:00:00+00:00"), (5, None)])
def test_an_exact_backup_s_moment_is_read_from_its_manifest(v1, moment, read):
    assert readers.open_source(str(v1)).consistent_at is None
    _edit_manifest(v1, lambda m: m.update(consistentAt=moment))
    assert readers.open_source(str(v1)).consistent_at == read


def test_a_manifest_table_that_is_not_a_name_is_no_table(v1):
    _edit_manifest(v1, lambda m: m.update(table=["mystack-GranulesTable"]))
    assert readers.open_source(str(v1)).table is None


def test_a_backup_without_its_manifest_is_incomplete(v1):
    (v1 / "manifest.json").unlink()
    with pytest.raises(BackupIncomplete, match=r"has no manifest.json"):
        readers.open_source(str(v1))


def test_a_part_resumes_from_an_item_number(v1):
    source = readers.open_source(str(v1))
    part = source.parts[0]
    everything = list(source.read_part(part))
    assert list(source.read_part(part, start=3)) == everything[3:]
    assert list(source.read_part(part, start=len(everything))) == []


def test_the_latest_run_or_a_named_one_is_found_under_a_prefix(ddb, s3):
    first = _backup_v1(ddb, s3, "mystack-GranulesTable", 10, segments=1)
    choice = runs_find(f"s3://{BUCKET}/backups/", s3)
    assert choice.directories == [first] and first.endswith(f"/{choice.backup_id}/")
    with pytest.raises(UnknownFormat, match=r"no backup 20200101T000000Z-00000000"):
        runs_find(f"s3://{BUCKET}/backups/", s3, "20200101T000000Z-00000000")


# ------------------------------------------------------------------ the local file
def _items(n: int = 30):
    return list(sample.items(sample.CUMULUS_TABLES["Files"], n, seed=3))


@pytest.mark.parametrize("name", ["T.json", "T.json.gz"])
def test_the_local_file_round_trips_with_its_description(tmp_path, name):
    items = _items()
    description = {"Table": {"TableName": "T", "KeySchema": [{"AttributeName": "bucket", "KeyType": "HASH"}]}}
    path = tmp_path / "backups" / name
    assert write_local_file(path, items, table="T", description=description) == 30
    assert not path.with_name(name + ".partial").exists()
    source = readers.open_source(str(path))
    assert (source.format, source.table, source.description, source.expected_items) == (
        "local-file",
        "T",
        description,
        30,
    )
    assert list(source.items()) == items
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"


def test_a_local_file_left_by_an_error_is_removed(tmp_path):
    path = tmp_path / "T.json"
    with pytest.raises(RuntimeError), LocalFileWriter(path, table="T", description=None) as writer:
        writer.write(_items(1)[0])
        raise RuntimeError("scan failed")
    assert list(tmp_path.iterdir()) == []


def _local(tmp_path, lines: list[bytes]) -> str:
    path = tmp_path / "T.json"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return str(path)


HEADER = json.dumps({"ddbBackupFile": {"formatVersion": 1, "table": "T", "description": None}}).encode()
ITEM = b'{"Item":{"pk":{"S":"a"}}}'


@pytest.mark.parametrize(
    ("lines", "error", "message"),
    [
        ([HEADER, ITEM, ITEM], BackupIncomplete, "T.json is incomplete: it has no end line"),
        ([HEADER, ITEM, b'{"ddbBackupEnd": {"items": 3}}'], BackupIncomplete, "end line says 3 items, it holds 1"),
        ([HEADER, b'{"ddbBackupEnd": {"items": 0}}', ITEM], BadInput, "T.json line 3: data after the end line"),
        ([HEADER.replace(b'"formatVersion": 1', b'"formatVersion": 9'), ITEM], BadInput, "formatVersion 9"),
        ([b'{"ddbBackupFile": "x"}', ITEM], BadInput, r"T.json line 1: ddbBackupFile must be an object$"),
        (
            [HEADER.replace(b'"description": null', b'"description": {}'), ITEM],
            BadInput,
            r"T.json line 1: description must be the saved table description$",
        ),
        (
            [HEADER.replace(b'"description": null', b'"description": ["Table"]'), ITEM],
            BadInput,
            r"T.json line 1: description must be the saved table description$",
        ),
    ],
)
def test_an_incomplete_or_odd_local_file_is_refused_naming_it(tmp_path, lines, error, message):
    with pytest.raises(error, match=message):
        readers.open_source(_local(tmp_path, lines))


def test_a_local_file_cut_short_after_opening_fails_when_read(tmp_path):
    path = _local(tmp_path, [HEADER, ITEM, b'{"ddbBackupEnd": {"items": 1}}'])
    source = readers.open_source(path)
    Path(path).write_bytes(HEADER + b"\n" + ITEM + b"\n")
    with pytest.raises(BackupIncomplete, match=r"no end line"):
        list(source.items())


def test_a_local_file_altered_after_opening_with_the_same_count_fails_before_the_restore_is_called_done(tmp_path):
    path = tmp_path / "T.json"
    write_local_file(
        path, [{"pk": {"S": "a"}, "v": {"N": "1"}}, {"pk": {"S": "b"}, "v": {"N": "2"}}], table="T", description=None
    )
    source = readers.open_source(str(path))
    path.write_bytes(path.read_bytes().replace(b'"2"', b'"3"'))  # one value changed, every count still right
    with pytest.raises(
        IntegrityError, match=r"T.json is corrupt: its lines have sha256 [0-9a-f]{64}, its end line says"
    ):
        list(source.items())
    path.write_bytes(path.read_bytes().replace(b'"3"', b'"2"'))  # put back: reads whole again
    assert [i["v"]["N"] for i in source.items()] == ["1", "2"]


BARE = 'bare {"Item": ...} lines'
ONE_FILE = {  # name -> (body, format, part dialect, the name no-count warnings give the format)
    "T.json": (None, "local-file", "local", None),
    "dl.json": (b'{"Item": {"pk": {"S": "a"}}}\n', "dynamodb-json-lines", "item", BARE),
    "typed.json": (b'{"pk": {"S": "a"}}\n', "cumulus-api", "typed", "cumulus-api"),
    "plain.json": (b'{"pk": "a"}\n', "cumulus-api", "plain", "cumulus-api"),
}
BACKUP_ID = "20261122T030000Z-1a2b3c4d"


def _one_file(tmp_path: Path, name: str, base: str, s3) -> str:
    """One single-file backup ``name`` (see ONE_FILE) holding the item pk=a, in ``base`` (a directory or S3 prefix)."""
    body = ONE_FILE[name][0]
    if body is None:
        written = tmp_path / "written" / name
        write_local_file(written, [{"pk": {"S": "a"}}], table="T", description=None, backup_id=BACKUP_ID)
        body = written.read_bytes()
    url = location.join(base, name)
    if names.is_s3_url(url):
        bucket, key = names.split_s3_url(url)
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    else:
        Path(url).write_bytes(body)
    return url


@pytest.mark.parametrize("where", ["local", "s3"])
@pytest.mark.parametrize("name", list(ONE_FILE))
def test_a_single_file_source_names_its_part_by_the_file_and_keeps_dead_letters_beside_it(tmp_path, s3, where, name):
    _, fmt, dialect, shown = ONE_FILE[name]
    if where == "s3":
        s3.create_bucket(Bucket="bkt")
        base = "s3://bkt/d/"
    else:
        base = str(tmp_path / "d")
        Path(base).mkdir()
    url = _one_file(tmp_path, name, base, s3)
    source = readers.open_source(url, s3)
    recorded = ("T", BACKUP_ID) if fmt == "local-file" else (None, None)
    assert (source.format, source.location, (source.table, source.backup_id), source.dead_letter_base) == (
        fmt,
        url,
        recorded,
        str(tmp_path / "d") if where == "local" else base,
    )
    assert [(p.id, p.url, p.dialect, p.items) for p in source.parts] == [
        (name, url, dialect, 1 if fmt == "local-file" else None)
    ]
    no_count = f"{url} is a {shown} file: it carries no item count, so a file cut short"
    if fmt == "local-file":
        assert source.warnings == []
    elif dialect == "plain":
        assert source.warnings[0].startswith(f"{url}: cumulus-api plain JSON cannot tell sets from lists")
        assert source.warnings[1].startswith(no_count) and len(source.warnings) == 2
    else:
        assert len(source.warnings) == 1 and source.warnings[0].startswith(no_count)
    assert list(source.items()) == [{"pk": {"S": "a"}}]


class _OwnClient:
    """An S3 client other than the shared one (a profile's, a region's): records the keys it reads."""

    def __init__(self, s3) -> None:
        self.s3, self.reads = s3, []

    def __getattr__(self, name: str):
        return getattr(self.s3, name)

    def get_object(self, **kwargs):
        self.reads.append(kwargs["Key"])
        return self.s3.get_object(**kwargs)


@pytest.mark.parametrize("name", list(ONE_FILE))
def test_a_source_opened_with_an_s3_client_reads_every_object_with_it(tmp_path, s3, monkeypatch, name):
    s3.create_bucket(Bucket="bkt")
    url = _one_file(tmp_path, name, "s3://bkt/d/", s3)
    monkeypatch.setattr(clients, "client", lambda service: pytest.fail(f"the shared {service} client was used"))
    own = _OwnClient(s3)
    source = readers.open_source(url, own)
    assert source.s3 is own
    own.reads.clear()
    assert list(source.items()) == [{"pk": {"S": "a"}}]
    assert list(source.read_part(source.parts[0])) == [{"pk": {"S": "a"}}]
    assert own.reads == ["d/" + name, "d/" + name]


def test_an_export_opened_with_an_s3_client_reads_its_data_files_with_it(s3, monkeypatch):
    s3.create_bucket(Bucket="bkt")
    for path in EXPORT.rglob("*"):
        if path.is_file():
            s3.put_object(
                Bucket="bkt", Key=f"e/AWSDynamoDB/{EXPORT.name}/{path.relative_to(EXPORT)}", Body=path.read_bytes()
            )
    directory = f"s3://bkt/e/AWSDynamoDB/{EXPORT.name}/"
    s3.put_object(Bucket="bkt", Key=f"e/AWSDynamoDB/{EXPORT.name}/", Body=b"")  # a folder the S3 console made
    monkeypatch.setattr(clients, "client", lambda service: pytest.fail(f"the shared {service} client was used"))
    own = _OwnClient(s3)
    for where in ("s3://bkt/e/", directory, directory + "manifest-summary.json"):
        source = readers.open_source(where, own)
        assert source.location == directory
    own.reads.clear()
    assert _same(source.items(), "mystack-GranulesTable")
    assert own.reads == [f"e/AWSDynamoDB/{EXPORT.name}/{p.id}" for p in source.parts]


# ------------------------------------------------------------------ bad lines, named
def test_an_invalid_json_line_is_named_by_file_and_line(tmp_path):
    path = tmp_path / "dump.json"
    path.write_bytes(b'{"pk": {"S": "a"}}\n\n{"pk": {"S": "b"}\n')
    with pytest.raises(BadInput, match=r"dump.json line 3: not a JSON line"):
        list(readers.open_source(str(path)).items())


def test_a_truncated_gzip_is_named(tmp_path):
    path = tmp_path / "T.json.gz"
    body = gzip.compress(b"".join(b'{"Item":{"pk":{"S":"%d"}}}\n' % i for i in range(2000)))
    path.write_bytes(body[: len(body) // 2])
    with pytest.raises(BadInput, match=r"T.json.gz: truncated gzip"):
        list(readers.open_source(str(path)).items())


def test_several_gzip_members_read_as_one_file(tmp_path):
    path = tmp_path / "T.json.gz"
    path.write_bytes(gzip.compress(b'{"Item":{"pk":{"S":"a"}}}\n') + gzip.compress(b'{"Item":{"pk":{"S":"b"}}}\n'))
    assert [i["pk"]["S"] for i in readers.open_source(str(path)).items()] == ["a", "b"]


def test_an_item_over_400_kb_is_refused_naming_the_line(tmp_path):
    path = tmp_path / "big.json"
    big = {"pk": {"S": "a"}, "blob": {"B": base64.b64encode(b"x" * (401 * 1024)).decode()}}
    path.write_text(json.dumps({"pk": {"S": "small"}}) + "\n" + json.dumps(big) + "\n")
    with pytest.raises(BadInput, match=r"big.json line 2: item of \d+ bytes is larger than DynamoDB's 400 KB"):
        list(readers.open_source(str(path)).items())


def test_a_line_longer_than_any_item_is_refused_without_reading_it_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(line_stream, "MAX_LINE_BYTES", 1000)
    path = tmp_path / "long.json"
    path.write_text('{"pk": {"S": "a"}}\n{"pk": {"S": "' + "x" * 5000 + '"}}\n')
    with pytest.raises(BadInput, match=r"long.json line 2: longer than 1000 bytes"):
        list(readers.open_source(str(path)).items())


def test_plain_json_numbers_keep_every_digit_and_nesting(tmp_path):
    path = tmp_path / "plain.json"
    path.write_text(
        '{"pk": "a", "n": 12345678901234567890123456789012345678, "f": 0.1000000000000000055511151231257827, '
        '"e": 1e-130, "m": {"l": [1, "x", null, true, {"k": []}]}, "nul": null}\n'
    )
    (item,) = readers.open_source(str(path)).items()
    assert item == {
        "pk": {"S": "a"},
        "n": {"N": "12345678901234567890123456789012345678"},
        "f": {"N": "0.1000000000000000055511151231257827"},
        "e": {"N": "1E-130"},
        "m": {"M": {"l": {"L": [{"N": "1"}, {"S": "x"}, {"NULL": True}, {"BOOL": True}, {"M": {"k": {"L": []}}}]}}},
        "nul": {"NULL": True},
    }


def test_plain_json_that_dynamodb_cannot_hold_is_named(tmp_path):
    path = tmp_path / "plain.json"
    path.write_text('{"pk": "a"}\n{"pk": "b", "n": 1234567890123456789012345678901234567890123}\n')
    with pytest.raises(BadInput, match=r"plain.json line 2: cannot be stored in DynamoDB"):
        list(readers.open_source(str(path)).items())


def test_a_typed_line_in_a_plain_file_is_refused(tmp_path):
    path = tmp_path / "mixed.json"
    path.write_text('{"pk": "a"}\n{"pk": {"S": "b"}}\n')
    with pytest.raises(BadInput, match=r"mixed.json line 2: typed DynamoDB JSON in a file whose first line is plain"):
        list(readers.open_source(str(path)).items())


def test_a_plain_line_in_a_typed_file_is_refused(tmp_path):
    path = tmp_path / "mixed.json"
    path.write_text('{"pk": {"S": "b"}}\n{"pk": "a"}\n')
    with pytest.raises(BadInput, match=r"mixed.json line 2"):
        list(readers.open_source(str(path)).items())


@pytest.mark.parametrize("body", [b"", b"hello\n", b"[1, 2]\n", b"{}\n"])
def test_anything_else_is_an_unknown_format(tmp_path, body):
    path = tmp_path / "what.json"
    path.write_bytes(body)
    with pytest.raises(UnknownFormat, match=r"what.json"):
        readers.open_source(str(path))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "what.json: empty file, no backup in it"),
        (b"\n\nhello\n", "what.json line 3: not JSON lines: not a backup this tool reads"),
        (b"[1, 2]\n", "what.json line 1: a JSON list, not an item: not a backup this tool reads"),
        (b"{}\n", "what.json line 1: a JSON dict, not an item: not a backup this tool reads"),
    ],
)
def test_a_file_that_is_no_backup_says_what_its_first_line_is(tmp_path, body, message):
    path = tmp_path / "what.json"
    path.write_bytes(body)
    with pytest.raises(UnknownFormat) as info:
        readers.open_source(str(path))
    assert str(info.value) == f"{tmp_path}/{message}"


@pytest.mark.parametrize("count", [2, 6])
def test_a_prefix_with_several_exports_asks_for_one_naming_the_first_five(tmp_path, count):
    ids = [f"0176378000000{i}-a1b2c3d4" for i in range(count)]
    for export in ids:
        (tmp_path / "AWSDynamoDB" / export).mkdir(parents=True)
    with pytest.raises(BadInput) as info:
        readers.open_source(str(tmp_path))
    assert str(info.value) == f"{tmp_path} holds {count} DynamoDB exports ({', '.join(ids[:5])}): name one"


def test_a_backup_directory_with_a_plan_and_no_manifest_did_not_finish(tmp_path):
    (tmp_path / "plan.json").write_text("{}")
    with pytest.raises(BackupIncomplete) as info:
        readers.open_source(str(tmp_path) + "/")
    assert str(info.value) == f"{tmp_path}/: the backup has no manifest.json: it did not finish, or is still running"


@pytest.mark.parametrize("source", ["", None])
def test_no_source_is_refused(source):
    with pytest.raises(BadInput, match=r"^no source given$"):
        readers.open_source(source)


def test_a_missing_path_or_empty_prefix_is_named(tmp_path, s3):
    with pytest.raises(BadInput, match=r"no such file"):
        readers.open_source(str(tmp_path / "nope.json"))
    s3.create_bucket(Bucket="empty")
    with pytest.raises(UnknownFormat, match=r"s3://empty/x/: no backup found"):
        readers.open_source("s3://empty/x/", s3)


# ------------------------------------------------------------------ dead letters and key types
def test_a_dead_letter_object_reads_back_as_a_source(tmp_path, s3):
    s3.create_bucket(Bucket="bkt")
    items = _items(5)
    for base in ("s3://bkt/backups/T/ID/", str(tmp_path)):
        url = dead_letter_writer(base, "run-1", s3)("data/000000-000001.json.gz", items)
        assert "dead-letter/run-1/data_000000-000001.json.gz" in url
        source = readers.open_source(url, s3)
        assert source.format == "dynamodb-json-lines"
        assert list(source.items()) == items


def test_key_types_come_from_the_first_item():
    item = {"bucket": {"S": "b"}, "key": {"N": "1"}, "x": {"M": {}}, "blob": {"B": b"\x00"}}
    assert readers.key_schema_from_names(["bucket", "key"], item, "f.json") == [
        {"AttributeName": "bucket", "KeyType": "HASH", "AttributeType": "S"},
        {"AttributeName": "key", "KeyType": "RANGE", "AttributeType": "N"},
    ]
    assert readers.key_schema_from_names(["blob"], item, "f.json") == [
        {"AttributeName": "blob", "KeyType": "HASH", "AttributeType": "B"}
    ]
    with pytest.raises(BadInput, match=r"^f.json: the first item has no attribute 'nope'"):
        readers.key_schema_from_names(["nope"], item, "f.json")
    with pytest.raises(BadInput, match=r"^f.json: key 'x' is of type M in the first item; keys are S, N or B$"):
        readers.key_schema_from_names(["x"], item, "f.json")


@pytest.mark.parametrize("names", [[], ["bucket", "key", "x"]])
def test_a_key_schema_takes_one_or_two_names(names):
    with pytest.raises(
        BadInput, match=rf"^give one or two key attribute names \(hash\[,range\]\), got {re.escape(repr(names))}$"
    ):
        readers.key_schema_from_names(names, {"bucket": {"S": "b"}, "key": {"N": "1"}, "x": {"S": "x"}}, "f.json")


def test_a_source_without_items_cannot_give_key_types():
    with pytest.raises(
        BadInput, match=r"^f.json has no items to take the type of key 'pk' from: give it with its type$"
    ):
        readers.key_schema_from_names(["pk"], None, "f.json")


def test_the_first_item_of_an_s3_source_is_read_with_its_client_past_empty_parts(s3):
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="d/a.json", Body=b'{"pk": {"S": "a"}}\n{"pk": {"S": "b"}}\n')
    s3.put_object(Bucket="bkt", Key="d/empty.json", Body=b"")
    own = _OwnClient(s3)
    source = readers.open_source("s3://bkt/d/a.json", own)
    own.reads.clear()
    assert source.first_item() == {"pk": {"S": "a"}}
    assert own.reads == ["d/a.json"]
    empty = PartRef("empty.json", "s3://bkt/d/empty.json", "typed")
    assert replace(source, parts=[empty, *source.parts]).first_item() == {"pk": {"S": "a"}}
    assert replace(source, parts=[empty]).first_item() is None


def test_a_part_reference_survives_json():
    # Every field: a restore task carries its part as JSON, and a checksum lost on the way is a check skipped.
    part = PartRef(
        "data/a.json.gz", "s3://b/k/data/a.json.gz", "local", items=3, sha256="0" * 64, md5="AAAA", bytes=9,
        lines_sha256="1" * 64,
    )  # fmt: skip
    assert PartRef.from_json(json.loads(json.dumps(part.to_json()))) == part


def _part_file(tmp_path: Path, body: bytes, **promised: object) -> PartRef:
    path = tmp_path / "p.json"
    path.write_bytes(body)
    return PartRef("p.json", str(path), "item", **promised)  # type: ignore[arg-type]


def test_a_part_s_size_sha256_and_md5_are_each_checked_over_all_its_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(location, "CHUNK", 4)  # the size and digests add up over many chunks
    body = b'{"Item": {"pk": {"S": "a"}}}\n' * 3
    sha, md5 = hashlib.sha256(body).hexdigest(), base64.b64encode(hashlib.md5(body).digest()).decode()
    good = _part_file(tmp_path, body, sha256=sha, md5=md5, bytes=len(body))
    assert line_stream.verified_copy(good, None).read() == body
    with pytest.raises(IntegrityError) as info:
        line_stream.verified_copy(_part_file(tmp_path, body, sha256="0" * 64, bytes=len(body) + 1), None)
    assert str(info.value) == (
        f"part p.json ({tmp_path}/p.json) is corrupt: {len(body)} bytes, manifest says {len(body) + 1}; "
        f"sha256 {sha}, manifest says {'0' * 64}"
    )
    with pytest.raises(IntegrityError, match=r"is corrupt: md5 \S+, manifest says AAAA$"):
        line_stream.verified_copy(_part_file(tmp_path, body, md5="AAAA"), None)


def test_a_verified_part_is_read_from_the_copy_that_was_verified(tmp_path, monkeypatch):
    body = b'{"Item": {"pk": {"S": "a"}}}\n'
    part = _part_file(tmp_path, body, sha256=hashlib.sha256(body).hexdigest(), items=1)
    reads: list[str] = []
    chunks = location.chunks
    monkeypatch.setattr(location, "chunks", lambda url, s3: reads.append(url) or chunks(url, s3))
    assert [line for _, line in line_stream.part_lines(part)] == [body.strip()]
    assert reads == [part.url]  # downloaded once: what is read is what was checked


def test_lines_are_split_across_chunks_with_none_lost_or_misnumbered():
    chunks = [b"a\n\nb", b"c\n", b"d", b"e", b"\n", b"f\ng"]
    assert list(line_stream.split_lines(chunks, "w")) == [(1, b"a"), (3, b"bc"), (4, b"de"), (5, b"f"), (6, b"g")]
    assert list(line_stream.split_lines([b"x\ny\nz"], "w")) == [(1, b"x"), (2, b"y"), (3, b"z")]


def test_a_line_of_exactly_the_limit_is_read_and_one_byte_more_is_refused_as_soon_as_seen(monkeypatch):
    monkeypatch.setattr(line_stream, "MAX_LINE_BYTES", 1000)

    def stream(*chunks: bytes):
        yield from chunks
        raise AssertionError("read on after a line already over the limit")

    ok = list(line_stream.split_lines([b"x\n", b"a" * 10, b"a\n", b"b" * 600, b"b" * 400, b"\n"], "w"))
    assert ok == [(1, b"x"), (2, b"a" * 11), (3, b"b" * 1000)]
    with pytest.raises(BadInput, match=r"^w line 3: longer than 1000 bytes, not an item$"):
        list(line_stream.split_lines(stream(b"x\ny\n", b"b" * 600, b"b" * 401), "w"))
    with pytest.raises(BadInput, match=r"^w line 2: longer than 1000 bytes"):
        list(line_stream.split_lines([b"x\n" + b"c" * 1001 + b"\n"], "w"))
    assert list(line_stream.split_lines([b"c" * 1000 + b"\n"], "w")) == [(1, b"c" * 1000)]
    assert list(line_stream.split_lines([b"c" * 600, b"c" * 400 + b"\n"], "w")) == [(1, b"c" * 1000)]
    assert list(line_stream.split_lines([b"c" * 500, b"c" * 500, b"\n"], "w")) == [(1, b"c" * 1000)]  # no newline yet
    assert list(line_stream.split_lines([b"ab", b"cd"], "w")) == [(1, b"abcd")]  # a last line without its newline


def test_a_file_s_lines_name_it_in_their_errors(tmp_path):
    path = tmp_path / "cut.json.gz"
    path.write_bytes(gzip.compress(b'{"Item": {}}\n' * 100)[:-9])
    with pytest.raises(BadInput, match=rf"^{path}: truncated gzip"):
        list(line_stream.file_lines(str(path), None))
    path.write_bytes(b"x" * (line_stream.MAX_LINE_BYTES + 1))
    with pytest.raises(BadInput, match=rf"^{path} line 1: longer than"):
        list(line_stream.file_lines(str(path), None))


@pytest.mark.parametrize("count", [True, -1, "3", None])
def test_an_end_line_count_must_be_a_count(count):
    with pytest.raises(BadInput, match=r"^f line 9: end line without an item count$"):
        line_stream.end_count({"items": count}, "f line 9")
    assert line_stream.end_count({"items": 0}, "f") == 0


def test_an_end_line_checksum_is_read_and_must_be_64_hex_digits():
    assert line_stream.end_sha256({"sha256": "a" * 64}, "f") == "a" * 64
    assert line_stream.end_sha256({}, "f") is None
    for bad in ["A" * 64, "a" * 63, "g" * 64, 64]:
        with pytest.raises(BadInput, match=r"^f line 2: end line sha256 must be 64 hex digits"):
            line_stream.end_sha256({"sha256": bad}, "f line 2")


def test_gzip_members_split_anywhere_across_chunks_read_whole(monkeypatch, tmp_path):
    monkeypatch.setattr(location, "CHUNK", 7)
    path = tmp_path / "T.json.gz"
    lines = [b'{"Item":{"pk":{"S":"%d"}}}\n' % i for i in range(50)]
    path.write_bytes(b"".join(gzip.compress(b"".join(lines[i : i + 3])) for i in range(0, 50, 3)))
    assert [i["pk"]["S"] for i in readers.open_source(str(path)).items()] == [str(i) for i in range(50)]
    path.write_bytes(gzip.compress(b"".join(lines)) + b"garbage")
    with pytest.raises(BadInput, match=r"T.json.gz: corrupt gzip data"):
        list(readers.open_source(str(path)).items())


def test_an_empty_part_reads_as_no_lines(tmp_path):
    assert list(line_stream.decoded([], "w")) == [] and list(line_stream.decoded([b"", b""], "w")) == []
    part = _part_file(tmp_path, b"", sha256=hashlib.sha256(b"").hexdigest(), items=0)
    assert list(line_stream.part_lines(part)) == []


def test_corrupt_gzip_data_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "T.json.gz"
    body = bytearray(gzip.compress(b"".join(b'{"Item":{"pk":{"S":"%d"}}}\n' % i for i in range(2000))))
    body[len(body) // 2 : len(body) // 2 + 8] = b"\xff" * 8  # deflate data no encoder writes
    path.write_bytes(bytes(body))
    with pytest.raises(BadInput, match=rf"^{path}: corrupt gzip data \(.+\)$"):
        list(line_stream.file_lines(str(path), None))


def test_gzip_is_undone_in_pieces_no_larger_than_a_chunk(monkeypatch):
    # bounded memory: a part that compresses 1000:1 is never held whole once undone
    monkeypatch.setattr(location, "CHUNK", 64)
    body = b'{"Item":{"pk":{"S":"a"}}}\n' * 400
    pieces = list(line_stream.decoded([gzip.compress(body)], "w"))
    assert b"".join(pieces) == body and max(len(p) for p in pieces) == 64 and len(pieces) == -(-len(body) // 64)


class _RecordingS3:
    """An S3 client of the caller's own: records the keys it is asked for."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.keys = inner, []

    def get_object(self, **kwargs: str) -> Any:
        self.keys.append(kwargs["Key"])
        return self.inner.get_object(**kwargs)


def test_an_s3_part_is_read_with_the_caller_s_client_or_else_the_shared_one(s3):
    import boto3

    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="d/p.json", Body=ITEM + b"\n" + ITEM + b"\n")
    part = PartRef("d/p.json", f"s3://{BUCKET}/d/p.json", "item", items=2)
    own = _RecordingS3(boto3.session.Session().client("s3", region_name="us-east-1"))
    assert [line for _, line in line_stream.part_lines(part, own)] == [ITEM, ITEM]
    assert own.keys == ["d/p.json"]  # the caller's client (its account, its role), not the shared one
    assert [line for _, line in line_stream.part_lines(part)] == [ITEM, ITEM]


def test_a_part_without_a_checksum_streams_its_first_line_before_the_rest_is_read(tmp_path, monkeypatch):
    # nothing to verify first, so nothing is spooled: a large foreign file does not fill the disk before it starts
    read: list[int] = []

    def chunks(url: str, s3: object):
        for i, chunk in enumerate([ITEM + b"\n", ITEM + b"\n", ITEM + b"\n"]):
            read.append(i)
            yield chunk

    monkeypatch.setattr(location, "chunks", chunks)
    lines = line_stream.part_lines(PartRef("p", str(tmp_path / "p.json"), "item", items=3))
    assert next(lines) == (f"{tmp_path}/p.json line 1", ITEM) and read == [0]
    assert len(list(lines)) == 2


def test_lines_of_other_formats_named_like_a_local_file_s_header_or_end_are_data(tmp_path):
    body = b'{"ddbBackupFile": "x", "pk": "a"}\n{"ddbBackupEnd": {"items": 0}}\n{"pk": "b"}\n'
    part = _part_file(tmp_path, body, items=3)
    for dialect in ("plain", "item"):
        got = [line for _, line in line_stream.part_lines(PartRef(part.id, part.url, dialect, items=3))]
        assert got == body.splitlines()


def _local_sum(lines: list[bytes]) -> str:
    return hashlib.sha256(b"".join(line + b"\n" for line in lines)).hexdigest()


def test_a_header_line_anywhere_but_first_in_a_local_file_is_refused(tmp_path):
    for body in ([HEADER, ITEM, HEADER, ITEM], [b'{"other": 1}', ITEM, ITEM]):
        end = json.dumps({"ddbBackupEnd": {"items": 2, "sha256": _local_sum(body)}}).encode()
        path = _local(tmp_path, [*body, end])
        with pytest.raises(BackupIncomplete, match=r"T.json is incomplete: its end line says 2 items, it holds 3"):
            list(line_stream.part_lines(PartRef("T.json", path, "local")))


@pytest.mark.parametrize(
    ("end", "message"),
    [
        (b'{"ddbBackupEnd": {"items": 1, "sha', "T.json line 3: not a JSON line"),
        (b'{"ddbBackupEnd": {"items": "1"}}', "T.json line 3: end line without an item count"),
    ],
)
def test_a_damaged_end_line_is_refused_naming_file_and_line(tmp_path, end, message):
    path = _local(tmp_path, [HEADER, ITEM, end])
    with pytest.raises(BadInput, match=rf"^{tmp_path}/{message}"):
        readers.open_source(path)


def test_the_parts_bytes_before_gzip_are_read_from_the_manifest_totals(v1):
    _edit_manifest(v1, lambda m: m["totals"].update(uncompressedBytes=543_693))
    assert readers.open_source(str(v1)).uncompressed_bytes == 543_693
    _edit_manifest(v1, lambda m: m["totals"].pop("uncompressedBytes"))
    assert readers.open_source(str(v1)).uncompressed_bytes is None  # an older manifest: unknown, not zero
