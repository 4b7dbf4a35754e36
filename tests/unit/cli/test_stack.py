"""What ``start-backup`` / ``start-restore --wait`` say when the execution fails or the wait is interrupted
(issue 24 point 9): the error, in the command line's words, and where to go next; no Lambda stack trace."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ddb_backup_cli import stack
from ddb_backup_cli.main import main

ARN = "arn:aws:states:us-east-1:123456789012:execution:ddb-backup-Restore:restore-20261207T000000Z-abcdef"
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:ddb-backup-Restore"

#: A Lambda's failure as Step Functions records it: the cause is the function's error document.
LAMBDA_CAUSE = json.dumps(
    {
        "errorMessage": "table restore-RulesTable is not empty (3 items): restore into a new or empty table, "
        "or choose mode 'overwrite' to upsert into it",
        "errorType": "TargetNotEmpty",
        "requestId": "5f3a0c1e-0000-0000-0000-000000000000",
        "stackTrace": [f'  File "/var/task/ddb_backup/restore/target.py", line {n}, in check\n' for n in range(15)],
    }
)


class FakeSfn:
    """Step Functions as ``_start`` and ``_follow`` use it; ``describe`` answers (or raises) each poll."""

    def __init__(self, describe: Any) -> None:
        self.describe = describe

    def start_execution(self, **kwargs: Any) -> dict[str, str]:
        return {"executionArn": ARN}

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        return self.describe()


def _run(monkeypatch, capsys, describe: Any, *argv: str) -> tuple[int, str, str]:
    monkeypatch.setattr(stack, "client", lambda service: FakeSfn(describe))
    code = main([*argv, "--state-machine-arn", MACHINE, "--wait", "--poll", "0", "--region", "us-east-1"])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_failed_restore_prints_the_error_type_and_message_in_flags_and_where_the_cause_is(monkeypatch, capsys):
    failed = {"status": "FAILED", "error": "TargetNotEmpty", "cause": LAMBDA_CAUSE}
    code, _, err = _run(
        monkeypatch, capsys, lambda: failed, "start-restore", "--backup", "s3://b/p/T/", "--table", "restore-RulesTable"
    )
    assert code == 1
    assert "stackTrace" not in err and "File " not in err and "requestId" not in err, err
    assert "execution FAILED: TargetNotEmpty: table restore-RulesTable is not empty (3 items)" in err, err
    assert "choose --mode overwrite to upsert" in err and "mode 'overwrite'" not in err, err
    assert f"aws stepfunctions describe-execution --execution-arn {ARN}" in err, err
    assert len(err.strip().splitlines()) == 2, err


def test_a_cause_that_is_no_json_is_printed_as_it_is():
    desc = {"status": "TIMED_OUT", "error": "States.Timeout", "cause": "the state timed out"}
    assert (
        stack.execution_failure(desc, ARN).splitlines()[0] == "execution TIMED_OUT: States.Timeout: the state timed out"
    )
    assert stack.execution_failure({"status": "ABORTED"}, ARN).splitlines()[0] == "execution ABORTED: no error recorded"


@pytest.mark.parametrize(
    ("said", "meant"),
    [
        (
            "rerun the restore with mode 'overwrite' to finish it",
            "rerun the restore with --mode overwrite to finish it",
        ),
        (
            "or allow the source explicitly (allowSource / --allow-source)",
            "or allow the source explicitly (--allow-source)",
        ),
        (
            "'table' names one target: with a set of backups (backupId) give 'map' instead",
            "--table names one target: with a set of backups (--backup-id) give --map instead",
        ),
        ("give 'writeRate' or 'writePercent', not both", "give --write-rate or --write-percent, not both"),
        ("the item 'pk' is missing", "the item 'pk' is missing"),  # not a field of the request: left alone
    ],
)
def test_the_request_fields_are_named_as_the_commands_flags(said, meant):
    assert stack.as_flags(said) == meant


def test_ctrl_c_while_following_a_backup_says_it_goes_on_and_how_to_stop_it(monkeypatch, capsys):
    def interrupted() -> dict[str, Any]:
        raise KeyboardInterrupt

    code, _, err = _run(monkeypatch, capsys, interrupted, "start-backup", "--table", "mystack-RulesTable")
    assert code == 130
    assert "the execution goes on" in err and ARN in err, err
    assert f"aws stepfunctions stop-execution --execution-arn {ARN}" in err, err
