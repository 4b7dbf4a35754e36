"""``ddb-backup``'s parser: what it refuses before any AWS call (exit 2, argparse's one-line message)."""

from __future__ import annotations

import argparse
import json

import pytest

from ddb_backup.aws.clients import client
from ddb_backup_cli.common import apply_connection
from ddb_backup_cli.main import build_parser, main


def _parsers(parser: argparse.ArgumentParser, path: str = "ddb-backup") -> list[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the command tree, by its command path."""
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _parsers(sub, f"{path} {name}")
    return found


def test_no_parser_of_the_command_tree_takes_an_abbreviated_option():
    parsers = _parsers(build_parser())
    assert len(parsers) > 20
    assert [path for path, p in parsers if p.allow_abbrev] == []


@pytest.mark.parametrize(
    ("argv", "word", "meant"),
    [
        (["restore", "s3://B/p/T/", "--table", "UUU", "--keys-fi", "k.txt"], "--keys-fi", "--keys-file"),  # issue 28
        (["restore", "s3://B/p/T/", "--table", "UUU", "--expect", "10"], "--expect", "--expect-items"),
        (["backup", "--tab", "mystack-RulesTable"], "--tab", "--table"),
        (["verify", "--table", "mystack-RulesTable", "--backup", "b.json", "--sho", "3"], "--sho", "--show"),
        (["list", "--reg", "us-east-1"], "--reg", "--region"),
        (["pitr", "enable", "--cumulus-pre", "mystack-"], "--cumulus-pre", "--cumulus-prefix"),
    ],
)
def test_an_abbreviated_option_is_refused_naming_the_whole_one(capsys, argv, word, meant):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "error: unrecognized arguments: " in err and word in err, err
    assert f"did you mean {meant}?" in err, err


@pytest.mark.parametrize(
    ("env", "argv", "region"),
    [
        ({"AWS_REGION": "eu-west-1"}, [], "eu-west-1"),  # issue 24 point 10: botocore reads AWS_DEFAULT_REGION only
        ({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-west-2"}, [], "eu-west-1"),
        ({"AWS_DEFAULT_REGION": "us-west-2"}, [], "us-west-2"),
        ({"AWS_REGION": "eu-west-1"}, ["--region", "ap-south-1"], "ap-south-1"),
    ],
)
def test_the_region_is_the_option_then_aws_region_then_aws_default_region(monkeypatch, env, argv, region):
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")  # no profile's region either
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")  # credentials at hand: the client asks no metadata endpoint
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    apply_connection(build_parser().parse_args([*argv, "list"]))
    assert client("dynamodb").meta.region_name == region


@pytest.mark.parametrize(
    ("argv", "meant"),
    [(["restor"], "did you mean restore or start-restore?"), (["pitr", "enabl"], "did you mean enable?")],
)
def test_a_mistyped_command_is_refused_naming_the_closest(capsys, argv, meant):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err and meant in err, err


def test_under_json_an_error_is_a_json_document_on_stderr(capsys):
    assert main(["--json", "describe", "no-such-file.json"]) == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.err)
    assert "no-such-file.json" in doc["error"] and doc["type"], doc
    assert main(["restore", "x.json", "--json"]) == 2  # a usage error: --table or --map missing
    doc = json.loads(capsys.readouterr().err)
    assert doc["type"] == "UsageError" and "--table" in doc["error"], doc


def test_an_endpoint_that_refuses_says_what_to_check():
    from botocore.exceptions import EndpointConnectionError

    from ddb_backup_cli.endpoint import describe_failure

    said = describe_failure(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))
    assert said is not None and 'Could not connect to the endpoint URL: "http://127.0.0.1:9"' in said
    assert "--endpoint-url / AWS_ENDPOINT_URL" in said and "network" in said and "--region" in said, said


@pytest.mark.parametrize("command", ["demo", "local-stack"])
def test_without_the_development_kit_demo_and_local_stack_say_how_to_get_it(monkeypatch, capsys, command):
    """The ddb-backup wheel does not ship devkit/: the commands that need it name the way to it."""
    import sys

    monkeypatch.setitem(sys.modules, "devkit", None)  # as when only the wheel is installed
    monkeypatch.setitem(sys.modules, "devkit.cli", None)
    assert main([command]) == 1
    err = capsys.readouterr().err
    assert "development kit (devkit/)" in err and "does not ship" in err
    assert "'make venv' installs it" in err and f"ddb-backup-dev {command}" in err


def test_the_development_kit_has_its_own_entry_point_with_the_same_options():
    from devkit.cli import build_parser as dev_parser

    demo = dev_parser().parse_args(["--json", "demo", "--items", "30"])
    assert (demo.command, demo.items, demo.json) == ("demo", 30, True)
    stack = dev_parser().parse_args(["local-stack", "--port", "5001", "--sample", "mystack-"])
    assert (stack.port, stack.sample, stack.stack_name, stack.items) == (5001, "mystack-", "ddb-backup-local", 600)
    ours = build_parser().parse_args(["local-stack", "--port", "5001", "--sample", "mystack-"])
    assert {k: getattr(ours, k) for k in vars(stack) if k != "command"} == {
        k: v for k, v in vars(stack).items() if k != "command"
    }


def test_ddb_backup_demo_hands_over_to_the_development_kit(monkeypatch):
    from devkit import cli as devkit

    calls = []
    monkeypatch.setattr(devkit, "run", lambda command, args: calls.append((command, args.items, args.json)) or 0)
    assert main(["--json", "demo", "--items", "30"]) == 0
    assert calls == [("demo", 30, True)]


def test_the_command_the_missing_kit_message_names_runs():
    """``.venv/bin/ddb-backup-dev``, as the message and docs/cli.md say (make venv installs it)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).parent / "ddb-backup-dev"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "demo" in done.stdout and "local-stack" in done.stdout
