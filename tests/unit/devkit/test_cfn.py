"""The local stack refuses the parameters CloudFormation would refuse (devkit/cfn.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddb_backup.errors import DdbBackupError
from devkit.cfn import CfnLoader, Resolver

TEMPLATE = CfnLoader.load((Path(__file__).parents[3] / "template.yaml").read_text())


BASE = {"TableNamePattern": "mystack-*", "RestoreTableNamePattern": "restore-*"}


def _resolve(**parameters: str) -> Resolver:
    return Resolver(TEMPLATE, {**BASE, **parameters}, "ddb-backup", "us-east-1")


def test_the_default_parameters_pass_every_rule_and_constraint() -> None:
    assert _resolve().refusals() == []


def test_managed_tables_without_a_pattern_are_refused_by_the_templates_rule() -> None:
    with pytest.raises(DdbBackupError, match="With ManagedTableNames, set ManagedTableNamePattern"):
        _resolve(ManagedTableNames="mystack-GranulesTable")
    assert _resolve(ManagedTableNames="mystack-GranulesTable", ManagedTableNamePattern="mystack-*").refusals() == []


def test_a_parameter_outside_its_allowed_values_or_pattern_is_refused_by_name() -> None:
    with pytest.raises(DdbBackupError, match=r"Parameter 'LogLevel' must be one of AllowedValues"):
        _resolve(LogLevel="LOUD")
    with pytest.raises(DdbBackupError, match=r"Parameter 'ReplicaAccountId' must match pattern"):
        _resolve(ReplicaAccountId="12345")


def test_a_refused_rule_is_reported_without_raising_when_unchecked() -> None:
    resolver = Resolver(TEMPLATE, {**BASE, "ManagedTableNames": "t"}, "ddb-backup", "us-east-1", checked=False)
    assert resolver.refusals() == ["With ManagedTableNames, set ManagedTableNamePattern to a pattern covering them."]
