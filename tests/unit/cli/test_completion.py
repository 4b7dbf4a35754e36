"""``ddb-backup completion bash|zsh``: run in a real bash, it completes every command path's subcommands and options."""

from __future__ import annotations

import argparse
import shutil
import subprocess

import pytest

from ddb_backup_cli.main import build_parser, main

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _paths(
    parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command path of the parser, with its own parser (read through argparse's option table)."""
    found = [(words, parser)]
    if parser._subparsers is not None:
        for group in parser._subparsers._group_actions:
            for name, sub in group.choices.items():
                found += _paths(sub, (*words, name))
    return found


def _complete(script: str, words: list[str]) -> set[str]:
    """What bash offers for the last of ``words`` after sourcing ``script``."""
    quoted = " ".join(f"'{w}'" for w in words)
    program = (
        f'{script}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _ddb_backup; printf "%s\\n" "${{COMPREPLY[@]}}"'
    )
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True, check=True)
    return {line for line in done.stdout.splitlines() if line}


@pytest.fixture(scope="module")
def bash_script() -> str:
    from ddb_backup_cli.completion import script

    return script(build_parser(), "bash")


def test_the_completion_command_prints_a_script_for_bash_and_zsh(capsys):
    assert main(["completion", "bash"]) == 0
    bash = capsys.readouterr().out
    assert "complete -o default -F _ddb_backup ddb-backup" in bash
    assert main(["completion", "zsh"]) == 0
    zsh = capsys.readouterr().out
    assert "bashcompinit" in zsh and zsh.endswith(bash)
    with pytest.raises(SystemExit) as exit_:
        main(["completion", "fish"])
    assert exit_.value.code == 2


def test_every_command_path_completes_its_subcommands_and_options_in_bash(bash_script):
    paths = _paths(build_parser())
    assert len(paths) > 15  # the top, every command, pitr/snapshots/changes and theirs
    for words, parser in paths:
        options = {
            o for o in parser._option_string_actions if parser._option_string_actions[o].help != argparse.SUPPRESS
        }
        assert _complete(bash_script, ["ddb-backup", *words, "-"]) == options, words
        subs = {name for sub in _paths(parser)[1:] if len(sub[0]) == len(words) + 1 for name in sub[0][-1:]}
        if subs:
            assert _complete(bash_script, ["ddb-backup", *words, ""]) == subs, words


def test_option_values_complete_from_their_choices_after_other_options(bash_script):
    assert _complete(bash_script, ["ddb-backup", "--json", "restore", "x.json", "--mode", ""]) == {
        "new",
        "overwrite",
        "mirror",
    }
    assert _complete(bash_script, ["ddb-backup", "restore", "--mode", "o"]) == {"overwrite"}
    assert _complete(bash_script, ["ddb-backup", "completion", ""]) == {"bash", "zsh"}  # a positional's choices
    assert _complete(bash_script, ["ddb-backup", "pitr", "en"]) == {"enable"}
    assert "--verbose" in _complete(bash_script, ["ddb-backup", "backup", "--table", "T", "--v"])
