"""Record-level restore (issue 28 point 1): --key, --key-prefix, --keys-file and --preview, on every source kind."""

from __future__ import annotations

import csv
import io
import json

import pytest

from ddb_backup.aws.clients import client
from ddb_backup_cli.main import main
from tests.conftest import canonical, table_items


def _orders(ddb) -> list[dict]:
    """A table keyed (customer S, order N) of 50 items: 10 customers c00..c09 x 5 orders, one prefixed 'vip-'."""
    ddb.create_table(
        TableName="shop-Orders",
        KeySchema=[{"AttributeName": "customer", "KeyType": "HASH"}, {"AttributeName": "order", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "customer", "AttributeType": "S"},
            {"AttributeName": "order", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    items = []
    for c in range(10):
        for o in range(5):
            name = f"vip-c{c:02d}" if c == 7 else f"c{c:02d}"
            item = {"customer": {"S": name}, "order": {"N": str(o)}, "total": {"N": f"{c}.{o}5"}}
            if o == 2:
                item["tags"] = {"SS": ["gift", "rush"]}
            items.append(item)
            ddb.put_item(TableName="shop-Orders", Item=item)
    return items


@pytest.fixture
def backup(endpoint, tmp_path):
    """The orders table, its items, and a local backup file of it."""
    ddb = client("dynamodb")
    items = _orders(ddb)
    path = tmp_path / "orders.json"
    assert main(["backup", "--table", "shop-Orders", "--out", str(path), "-q"]) == 0
    return ddb, items, path


def _keyed(items) -> list[str]:
    return sorted(map(canonical, items))


def _pick(items, *keys) -> list[dict]:
    return [i for i in items if (i["customer"]["S"], int(i["order"]["N"])) in keys]


def test_two_keys_of_fifty_restore_exactly_those_two_into_a_new_table(backup, capsys):
    ddb, items, path = backup
    args = ["restore", str(path), "--table", "two-Orders", "--key", "c03,order=1", "--key", "customer=c05,order=4.0"]
    assert main(args) == 2  # 'c03' has no name: a usage error naming it
    assert "'c03,order=1'" in capsys.readouterr().err
    args[5] = "customer=c03,order=1"
    assert main(args) == 0
    assert "2 items restored" in capsys.readouterr().out
    assert _keyed(table_items(ddb, "two-Orders")) == _keyed(_pick(items, ("c03", 1), ("c05", 4)))


def test_a_partition_key_alone_and_a_prefix_select_their_items(backup, tmp_path):
    ddb, items, path = backup
    assert main(["restore", str(path), "--table", "p-Orders", "--key", "customer=c02", "-q"]) == 0
    assert _keyed(table_items(ddb, "p-Orders")) == _keyed([i for i in items if i["customer"]["S"] == "c02"])
    assert main(["restore", str(path), "--table", "v-Orders", "--key-prefix", "customer=vip-", "-q"]) == 0
    assert _keyed(table_items(ddb, "v-Orders")) == _keyed([i for i in items if i["customer"]["S"].startswith("vip-")])
    assert main(["restore", str(path), "--table", "c0-Orders", "--key-prefix", "customer=c0", "-q"]) == 0
    assert len(table_items(ddb, "c0-Orders")) == 45


def test_a_keys_file_in_typed_and_plain_form_into_an_existing_table(backup, tmp_path):
    ddb, items, path = backup
    keys = tmp_path / "keys.jsonl"
    keys.write_text(
        '{"customer": {"S": "c01"}, "order": {"N": "0"}}\n\n{"customer": "c09", "order": 3}\n{"customer": "c04"}\n'
    )
    assert main(["restore", str(path), "--table", "f-Orders", "--keys-file", str(keys), "-q"]) == 0
    wanted = _pick(items, ("c01", 0), ("c09", 3)) + [i for i in items if i["customer"]["S"] == "c04"]
    assert _keyed(table_items(ddb, "f-Orders")) == _keyed(wanted)
    # the on-call case: two items damaged in the live table, put back over it
    ddb.put_item(TableName="shop-Orders", Item={"customer": {"S": "c01"}, "order": {"N": "0"}, "total": {"N": "-1"}})
    ddb.delete_item(TableName="shop-Orders", Key={"customer": {"S": "c09"}, "order": {"N": "3"}})
    keys.write_text('{"customer": "c01", "order": 0}\n{"customer": {"S": "c09"}, "order": {"N": "3"}}\n')
    args = ["restore", str(path), "--table", "shop-Orders", "--mode", "overwrite", "--allow-source"]
    assert main([*args, "--keys-file", str(keys), "-q"]) == 0
    assert _keyed(table_items(ddb, "shop-Orders")) == _keyed(items)


def test_a_selection_from_an_s3_backup_and_a_cumulus_api_file(backup, tmp_path, capsys):
    ddb, items, _ = backup
    client("s3").create_bucket(Bucket="select-b")
    assert main(["backup", "--table", "shop-Orders", "--to", "s3://select-b/b/", "-q"]) == 0
    assert (
        main(["restore", "s3://select-b/b/shop-Orders/", "--table", "s-Orders", "--key", "customer=c06,order=2"]) == 0
    )
    assert _keyed(table_items(ddb, "s-Orders")) == _keyed(_pick(items, ("c06", 2)))
    cumulus = tmp_path / "shop-Orders.cumulus.json"  # cumulus-api: plain JSON lines, no schema
    cumulus.write_text(
        "".join(json.dumps({"customer": i["customer"]["S"], "n": i["total"]["N"]}) + "\n" for i in items)
    )
    args = ["restore", str(cumulus), "--table", "k-Orders", "--keys", "customer", "--key", "customer=vip-c07"]
    assert main([*args, "-q"]) == 1  # five items share the key customer: refused, as without a selection
    cumulus.write_text("".join(json.dumps({"customer": f"u{n}", "n": n}) + "\n" for n in range(30)))
    assert "vip-c07" in capsys.readouterr().err
    args[3] = "u-Orders"
    assert main([*args[:-1], "customer=u7", "--key-prefix", "customer=u2", "-q"]) == 0
    assert sorted(i["customer"]["S"] for i in table_items(ddb, "u-Orders")) == sorted(
        ["u2", *[f"u2{n}" for n in range(10)], "u7"]
    )


@pytest.mark.parametrize("form", ["lines", "json", "csv"])
def test_preview_shows_the_items_and_writes_nothing(backup, capsys, form):
    path = backup[2]
    options = {"lines": [], "json": ["--json"], "csv": ["--csv"]}[form]
    glob = ["--json"] if form == "json" else []
    args = [
        "restore",
        str(path),
        "--table",
        "pv-Orders",
        "--key",
        "customer=c03,order=2",
        "--key-prefix",
        "customer=vip",
    ]
    assert main([*glob, *args, "--preview", *[o for o in options if o != "--json"]]) == 0
    out, err = capsys.readouterr()
    assert "pv-Orders" not in client("dynamodb").list_tables()["TableNames"]
    assert "6 items of" in out + err and "nothing created or written" in out + err
    if form == "json":
        rows = [json.loads(line) for line in out.splitlines()]
        assert rows[0] == {"customer": "c03", "order": "2", "tags": ["gift", "rush"], "total": "3.25"}
        assert sorted(r["customer"] for r in rows) == ["c03", *["vip-c07"] * 5]
    elif form == "csv":
        rows = list(csv.reader(io.StringIO(out)))
        assert rows[0] == ["customer", "order", "tags", "total"]
        assert ["c03", "2", '["gift","rush"]', "3.25"] in rows and len(rows) == 7
    else:
        assert "customer=c03  order=2  tags=" in out and out.count("customer=vip-c07") == 5


def test_a_preview_of_an_s3_backup_names_the_backups_time(backup, capsys):
    client("s3").create_bucket(Bucket="preview-b")
    assert main(["backup", "--table", "shop-Orders", "--to", "s3://preview-b/b/", "-q"]) == 0
    assert (
        main(
            [
                "--json",
                "restore",
                "s3://preview-b/b/shop-Orders/",
                "--table",
                "px-Orders",
                "--key",
                "customer=c01",
                "--preview",
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 5
    assert "5 items of s3://preview-b/b/shop-Orders/" in err and "as of 20" in err and "unrecorded" not in err


def test_a_selector_that_matches_nothing_fails_naming_it_and_writes_nothing(backup, capsys, tmp_path):
    ddb, _, path = backup
    args = ["restore", str(path), "--table", "none-Orders", "--key", "customer=c01,order=1"]
    assert main([*args, "--key", "customer=c01,order=9", "--key-prefix", "customer=zz"]) == 1
    err = capsys.readouterr().err
    assert "--key 'customer=c01,order=9', --key-prefix 'customer=zz': matched no item" in err, err
    assert "'customer=c01,order=1'" not in err.split("matched no item")[0]
    assert "none-Orders" not in ddb.list_tables()["TableNames"]
    keys = tmp_path / "k.jsonl"
    keys.write_text('{"customer": "c01", "order": 1}\n{"customer": "c01", "order": "x1"}\n')
    assert main(["restore", str(path), "--table", "none-Orders", "--keys-file", str(keys)]) == 2
    assert f"{keys} line 2: order is a number key; 'x1' is not a number" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("selector", "says"),
    [
        (["--key", "customer"], "--key 'customer': expected NAME=VALUE"),
        (["--key", "who=c01"], "'who' is not a key attribute of sel-Orders (its keys: customer, order)"),
        (["--key", "order=1"], "give the partition key customer"),
        (["--key-prefix", "customer=c,order=1"], "order is of type N; a prefix is for string keys"),
        (["--preview"], "--preview shows the items a selection matches"),
        (["--key", "customer=c01", "--mode", "mirror"], "--mode mirror makes the whole table the backup"),
    ],
)
def test_a_malformed_selector_is_a_usage_error_naming_it(backup, capsys, selector, says):
    ddb, _, path = backup
    assert main(["restore", str(path), "--table", "sel-Orders", *selector]) == 2
    assert says in capsys.readouterr().err
    assert "sel-Orders" not in ddb.list_tables()["TableNames"]


def test_a_preview_and_a_dry_run_state_what_finding_and_writing_the_items_cost(backup, capsys):
    """Issue 28 point 3: the backup is read whole to find a few items; its bytes and GETs, and the write units of
    the matches, in dollars, before anything is written."""
    client("s3").create_bucket(Bucket="cost-b")
    assert main(["backup", "--table", "shop-Orders", "--to", "s3://cost-b/b/", "--segments", "3", "-q"]) == 0
    src = "s3://cost-b/b/shop-Orders/"
    objects = client("s3").list_objects_v2(Bucket="cost-b", Prefix="b/shop-Orders/")["Contents"]
    part_bytes = sum(o["Size"] for o in objects if "/data/" in o["Key"])
    parts = sum(1 for o in objects if "/data/" in o["Key"])
    assert main(["restore", src, "--table", "cost-Orders", "--key", "customer=c01", "--preview"]) == 0
    out, err = capsys.readouterr()
    said = f"reads all {parts:,} part(s) of the backup, {part_bytes:,} bytes, from S3 ({parts + 1:,} GETs"
    assert said in out, out
    assert "writing 5 item(s): 5 write units" in out and "on-demand in us-east-1" in out
    assert main(["restore", src, "--table", "cost-Orders", "--key", "customer=c01,order=3", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "writing 1 item(s): 1 write units" in out and said in out + err
    assert "cost-Orders" not in client("dynamodb").list_tables()["TableNames"]
