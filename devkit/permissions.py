"""The permissions of every function and state machine, as SAM expands template.yaml, without deploying.

``python -m devkit.permissions`` prints them as the markdown table docs/deploy.md carries between its
``permissions`` markers; ``--write`` puts it there. :func:`deployment_roles` gives the same roles
resolved for one deployment's parameters, for :meth:`devkit.strict.iam.Roles.allows` (the security tests).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any
from unittest import mock

from devkit.cfn import ACCOUNT, CfnLoader, Resolver
from devkit.strict import iam

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- permissions:begin (python -m devkit.permissions --write) -->", "<!-- permissions:end -->"
#: Parameters that turn every optional permission on, for the table (each row names its condition).
ALL_ON = {
    "TableNamePattern": "t",
    "RestoreTableNamePattern": "t",
    "KmsKeyArn": "k",
    "TableKmsKeyArns": "k",
    "RestoreSourceArns": "s",
    "ManagedCumulusPrefix": "p",
    "ObjectLockMode": "GOVERNANCE",
    "ReplicaBucketArn": "arn:aws:s3:::replica",
    "ReplicaAccountId": "210987654321",
    "ReplicaKmsKeyArn": "r",
}


def template() -> dict[str, Any]:
    return CfnLoader.load((ROOT / "template.yaml").read_text())


def _physical(stack: str, logical: str, kind: str) -> tuple[str, str | None]:
    """(Ref, Arn) of a resource, named as the local stack names it."""
    name = f"{stack}-{logical}"
    if kind == "AWS::S3::Bucket":
        return name.lower(), f"arn:aws:s3:::{name.lower()}"
    if kind == "AWS::Serverless::Function":
        return name, f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"
    if kind == "AWS::Serverless::StateMachine":
        return f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:{name}", None
    return name, f"arn:aws:{kind}:{name}"


def resolver(parameters: dict[str, str], stack: str = "ddb-backup") -> Resolver:
    """A resolver for one deployment: every resource named as the local stack names it."""
    tpl = template()
    resolve = Resolver(tpl, parameters, stack, "us-east-1")
    for logical, res in tpl["Resources"].items():
        ref, arn = _physical(stack, logical, res["Type"])
        resolve.refs[logical] = ref
        if arn:
            resolve.attrs[(logical, "Arn")] = arn
    return resolve


def documents(tpl: dict[str, Any]) -> dict[str, list[Any]]:
    """Each principal's policy documents as SAM expands ``tpl`` (unresolved; see ``iam.role_documents``)."""
    with mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": "us-east-1"}):
        return iam.role_documents(iam.expand(tpl, ROOT))


def deployment_roles(parameters: dict[str, str], stack: str = "ddb-backup") -> iam.Roles:
    """The roles of every function and state machine, resolved for ``parameters``."""
    return iam.Roles(documents(template()), resolver(parameters, stack))


class _Symbolic(Resolver):
    """Resolves parameters and resources to ``<Name>``, pseudo parameters to ``${AWS::...}``."""

    symbolic = False

    def ref(self, name: str) -> Any:
        if not self.symbolic:
            return super().ref(name)
        return "${" + name + "}" if name.startswith("AWS::") else f"<{name}>"

    def sub(self, text: str, variables: dict[str, Any]) -> str:
        if self.symbolic:
            text = text.replace("${AWS::Partition}", "aws")
        return super().sub(text, variables)


def rows() -> list[tuple[str, str, str, str]]:
    """(principal, condition, actions, resources) for every statement of every role."""
    tpl = template()
    resolve = _Symbolic(tpl, ALL_ON, "STACK", "us-east-1")
    resolve.symbolic = True
    for logical in tpl["Resources"]:
        resolve.attrs[(logical, "Arn")] = f"<{logical}.Arn>"
    out = []
    for principal, docs in sorted(documents(tpl).items()):
        for doc in docs:
            condition = ""
            while "Fn::If" in doc:
                condition, doc = doc["Fn::If"][0], doc["Fn::If"][1]  # noqa: PLW2901 (the branch stands for the whole)
            for raw in doc.get("Statement") or resolve(doc)["Statement"]:  # a statement's own condition, if any
                only = condition
                if isinstance(raw, dict) and "Fn::If" in raw:
                    only, raw = raw["Fn::If"][0], raw["Fn::If"][1]  # noqa: PLW2901 (a statement's own condition)
                st = resolve(raw)
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                out.append((principal, only, "<br>".join(actions), "<br>".join(map(str, resources))))
    return out


def table() -> str:
    lines = [
        "| Function, state machine or role | Only when | Actions | Resources |",
        "| --- | --- | --- | --- |",
    ]
    last = None
    for principal, condition, actions, resources in rows():
        name = principal if principal != last else ""
        last = principal
        lines.append(f"| {name} | {condition} | `{actions}` | `{resources}` |")
    return "\n".join(lines).replace("<br>", "`<br>`")


def readme_with_table(readme: str) -> str:
    """docs/deploy.md's text with the generated table between the markers."""
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"docs/deploy.md has no {BEGIN} ... {END} markers")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    if argv[1:] == ["--write"]:
        path = ROOT / "docs" / "deploy.md"
        path.write_text(readme_with_table(path.read_text()))
        return 0
    if argv[1:] == ["--json"]:
        print(json.dumps(rows(), indent=1))
        return 0
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
