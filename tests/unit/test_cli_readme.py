"""README and help examples against the real parser: every ``ddb-backup`` line parses, every option has help (issue 16)."""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from ddb_backup_cli.main import build_parser, main, parse

ROOT = Path(__file__).resolve().parents[2]
#: The README and docs/ say the same things as --help: every page is checked as the README was.
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


class _Docs:
    """README.md and docs/*.md read as one text (the checks below were written for the README alone)."""

    @staticmethod
    def read_text() -> str:
        return "\n".join(page.read_text() for page in PAGES)


README = _Docs()
ENV = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")
COMMAND = re.compile(r"^(\$ )?([A-Z_][A-Z0-9_]*=\S* +)*ddb-backup ")  # a shell line that runs ddb-backup


def code_block_commands(text: str) -> list[tuple[int, str]]:
    """Each ``ddb-backup`` command line in the text's fenced code blocks: (line number, line), continuations joined."""
    found: list[tuple[int, str]] = []
    inside = False
    pending: tuple[int, str] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            inside = not inside
            continue
        if not inside:
            continue
        if pending is not None:
            pending = (pending[0], pending[1] + " " + line.strip())
        elif COMMAND.match(line.strip()):
            pending = (number, line.strip())
        if pending is not None and not pending[1].endswith("\\"):
            found.append(pending)
            pending = None
        elif pending is not None:
            pending = (pending[0], pending[1][:-1])
    return found


def argv_of(line: str) -> list[str] | None:
    """The arguments after ``ddb-backup`` in a shell line (a ``$`` prompt and ``VAR=value`` prefixes dropped)."""
    words = shlex.split(line, comments=True)
    while words and (words[0] == "$" or ENV.match(words[0])):
        words.pop(0)
    if not words or words[0] != "ddb-backup":
        return None
    return words[1:]


def parse_error(argv: list[str]) -> str | None:
    """What the real parser says about ``argv`` (None: it parses)."""
    parser = build_parser()
    errors: list[str] = []

    def record(message: str) -> None:
        errors.append(message)
        raise SystemExit(2)

    for each in _parsers(parser):
        each.error = record  # type: ignore[method-assign]
    try:
        parse(parser, argv)
    except SystemExit:
        return errors[0] if errors else "exited"
    return None


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every subcommand parser under it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def _epilog_commands() -> list[tuple[str, str]]:
    """Each ``ddb-backup`` example line in the help of every command: (command's prog, line)."""
    return [
        (p.prog, line.strip())
        for p in _parsers(build_parser())
        for line in (p.epilog or "").splitlines()
        if "ddb-backup " in line.split("#")[0] and argv_of(line.strip()) is not None
    ]


def test_readme_code_blocks_name_commands():
    lines = code_block_commands(README.read_text())
    assert len(lines) > 30  # the examples are found, not silently skipped
    assert all(argv_of(line) is not None for _, line in lines), [line for _, line in lines if argv_of(line) is None]
    assert code_block_commands("```\ndevkit/  serve: `ddb-backup local-stack`\n```\n") == []  # prose, not a command


@pytest.mark.parametrize("number,line", code_block_commands(README.read_text()))
def test_every_readme_command_line_parses(number, line):
    argv = argv_of(line)
    assert argv is not None
    assert parse_error(argv) is None, f"README.md:{number}: {line}: {parse_error(argv)}"


@pytest.mark.parametrize("prog,line", _epilog_commands())
def test_every_help_example_parses(prog, line):
    argv = argv_of(line)
    assert argv is not None
    assert parse_error(argv) is None, f"{prog} --help: {line}: {parse_error(argv)}"


def test_a_misspelt_option_in_a_readme_line_is_caught():
    text = "```sh\nddb-backup restore backups/T.json --table restore-T --mode mirror --dryrun\n```\n"
    [(number, line)] = code_block_commands(text)
    assert number == 2
    error = parse_error(argv_of(line) or [])
    assert error is not None and "--dryrun" in error
    assert "invalid choice" in (parse_error(["restore", "b.json", "--table", "restore-T", "--mode", "mirorr"]) or "")
    assert "not a DynamoDB table name" in (parse_error(["restore", "b.json", "--table", "U"]) or "")


def test_changes_follow_refuses_a_table_name_dynamodb_would_refuse() -> None:
    error = parse_error(["changes", "follow", "--table", "a/b", "--to", "s3://b/p/"]) or ""
    assert "'a/b' is not a DynamoDB table name" in error


def inline_problems(text: str) -> list[str]:
    """Each option in an inline ``ddb-backup ...`` span of ``text`` that its command does not have."""
    problems = []
    for span in re.findall(r"`(ddb-backup [^`]*)`", text):
        current = build_parser()
        for word in span.split()[1:]:
            subs = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
            if subs and word in subs[0].choices:
                current = subs[0].choices[word]
            elif word.startswith("--") and word.split("=")[0] not in current._option_string_actions:
                problems.append(f"{span}: {current.prog} has no {word}")
    return problems


def test_every_inline_readme_command_names_options_its_command_has():
    assert inline_problems(README.read_text()) == []
    assert inline_problems("`ddb-backup backup --stack-name s`") == [
        "`ddb-backup backup --stack-name s`"[1:-1] + ": ddb-backup backup has no --stack-name"
    ]


def test_continued_lines_and_environment_prefixes_are_read():
    text = "```sh\nAWS_REGION=us-east-1 X=1 \\\n    ddb-backup list --stack-name s  # a comment\n```\n"
    assert [argv_of(line) for _, line in code_block_commands(text)] == [["list", "--stack-name", "s"]]


def test_every_option_of_every_command_has_help():
    missing = [
        f"{p.prog} {'/'.join(a.option_strings) or a.dest}"
        for p in _parsers(build_parser())
        for a in p._actions
        if not a.help and not isinstance(a, argparse._SubParsersAction)
    ]
    assert missing == []


def test_every_command_has_a_description_in_its_help():
    bare = [p.prog for p in _parsers(build_parser()) if not (p.description or "").strip()]
    assert bare == []


def test_every_option_appears_in_the_readme_or_the_command_help():
    """An option no README line names must at least be explained in its command's own --help."""
    readme = README.read_text()
    unexplained = [
        f"{p.prog} {option}"
        for p in _parsers(build_parser())
        for a in p._actions
        for option in a.option_strings
        if option.startswith("--") and option not in readme and not a.help
    ]
    assert unexplained == []


def shown_sessions(text: str) -> list[tuple[list[str], str]]:
    """Each ``$ ddb-backup ...`` line of the text's code blocks with the output shown under it."""
    sessions: list[tuple[list[str], str]] = []
    for block in re.findall(r"```\w*\n(.*?)```", text, re.S):
        for chunk in re.split(r"^(?=\$ ddb-backup )", block, flags=re.M):
            if chunk.startswith("$ ddb-backup "):
                command, _, output = chunk.partition("\n")
                sessions.append((argv_of(command) or [], output))
    return sessions


def test_the_output_the_readme_shows_is_what_the_command_prints(capsys, monkeypatch):
    """``estimate --size`` reads and writes nothing, so its README output must be exactly what it prints."""
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    sessions = [(argv, out) for argv, out in shown_sessions(README.read_text()) if "--size" in argv]
    assert len(sessions) >= 2
    for argv, shown in sessions:
        capsys.readouterr()
        assert main(argv) == 0
        assert capsys.readouterr().out == shown, argv
