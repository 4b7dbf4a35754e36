"""``ddb-backup``'s parser: what it refuses before any AWS call (exit 2, argparse's one-line message)."""

from __future__ import annotations

import argparse

import pytest

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
        (["restore", "s3://B/p/T/", "--table", "UUU", "--key", "pk=a00005"], "--key", "--keys"),  # issue 28
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
