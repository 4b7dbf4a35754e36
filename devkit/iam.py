"""IAM for the local stack: every AWS call a function or state machine makes is checked against its own role.

The roles are the ones SAM generates from template.yaml (aws-sam-translator expands the policy
templates such as ``S3CrudPolicy`` into the statements CloudFormation would create), resolved with the
local deployment's names; each call is mapped to the IAM actions and resource ARNs AWS checks (an S3
object's key, a DynamoDB table or index, a backup, a KMS key when the bucket or table is encrypted with
one) and evaluated with moto's policy engine. A call no policy allows fails with AccessDenied, as on AWS.
Calls made outside any function or state machine (the tests' own setup, the CLI) are not checked.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from moto.iam.access_control import IAMPolicy, PermissionResult

ACCOUNT = "123456789012"
_local = threading.local()


# ------------------------------------------------------------------ who is calling
def current() -> str | None:
    """The logical id of the function or state machine whose code runs on this thread, if any."""
    return getattr(_local, "principal", None)


@contextmanager
def acting_as(principal: str | None) -> Iterator[None]:
    before = current()
    _local.principal = principal
    try:
        yield
    finally:
        _local.principal = before


def carry_principal(submit: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``ThreadPoolExecutor.submit`` so that work a handler hands to a thread keeps its role."""

    def wrapped(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        principal = current()

        def run() -> Any:
            with acting_as(principal):
                return fn(*args, **kwargs)

        return submit(self, run)

    return wrapped


# ------------------------------------------------------------------ roles from the template
def expand(template: dict[str, Any], root: Path) -> dict[str, Any]:
    """template.yaml as CloudFormation receives it after the SAM transform (roles included)."""
    from samtranslator.translator.transform import transform

    tpl = copy.deepcopy(template)
    for res in tpl["Resources"].values():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Serverless::Function":
            props["CodeUri"] = "s3://placeholder/code.zip"
        elif res["Type"] == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = "s3://placeholder/layer.zip"
        elif res["Type"] == "AWS::Serverless::StateMachine" and "DefinitionUri" in props:
            props["Definition"] = json.loads((root / props.pop("DefinitionUri")).read_text())

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    return dict(transform(tpl, {}, NoManagedPolicies()))


def role_documents(expanded: dict[str, Any]) -> dict[str, list[Any]]:
    """Policy documents (unresolved) of each function's and state machine's role, by its logical id."""
    resources = expanded["Resources"]
    by_role: dict[str, list[Any]] = {}
    for logical, res in resources.items():
        if res["Type"] == "AWS::IAM::Role":
            by_role[logical] = [p["PolicyDocument"] for p in res["Properties"].get("Policies", [])]
    for res in resources.values():
        if res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for role in res["Properties"].get("Roles", []):
                by_role.setdefault(role["Ref"], []).append(res["Properties"]["PolicyDocument"])
    owners: dict[str, list[Any]] = {}
    for logical, res in resources.items():
        if res["Type"] in ("AWS::Lambda::Function", "AWS::StepFunctions::StateMachine"):
            role = res["Properties"].get("Role") or res["Properties"].get("RoleArn")
            if isinstance(role, dict) and "Fn::GetAtt" in role:
                owners[logical] = by_role.get(role["Fn::GetAtt"][0], [])
    return owners


class Roles:
    """The resolved policies of every principal of one local deployment."""

    def __init__(self, documents: dict[str, list[Any]], resolve: Callable[[Any], Any]) -> None:
        self.policies = {
            logical: [IAMPolicy({"policy_document": json.dumps(resolve(doc))}) for doc in docs]
            for logical, docs in documents.items()
        }
        self.role_names = {logical: f"{logical}Role" for logical in documents}

    def allows(self, principal: str, action: str, resource: str) -> bool:
        results = [p.is_action_permitted(action, resource) for p in self.policies.get(principal, [])]
        return PermissionResult.DENIED not in results and PermissionResult.PERMITTED in results

    def check(self, principal: str, operation: str, needs: list[tuple[str, str]], code: str) -> None:
        for action, resource in needs:
            if not self.allows(principal, action, resource):
                response: Any = {
                    "Error": {
                        "Code": code,
                        "Message": (
                            f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{self.role_names[principal]}/{principal} "
                            f"is not authorized to perform: {action} on resource: {resource} because no "
                            f"identity-based policy allows the {action} action"
                        ),
                    },
                    "ResponseMetadata": {"HTTPStatusCode": 403},
                }
                raise ClientError(response, operation)


# ------------------------------------------------------------------ enforcement
def _find_kms_key(node: Any) -> str | None:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "KMSMasterKeyID" and v:
                return str(v)
            found = _find_kms_key(v)
            if found:
                return found
    elif isinstance(node, list):
        for v in node:
            found = _find_kms_key(v)
            if found:
                return found
    return None


def bucket_kms_key(bucket: str) -> str | None:
    """The customer KMS key a bucket encrypts new objects with (its default encryption), if any."""
    from moto.s3.models import s3_backends

    try:
        found = s3_backends[ACCOUNT]["aws"].get_bucket(bucket)
    except Exception:  # no such bucket: the call itself will say so
        return None
    key = _find_kms_key(found.encryption)
    return kms_arn(key) if key else None


def kms_arn(key: str) -> str:
    """A key id, alias or ARN as the key ARN IAM evaluates (aliases resolved through moto's KMS)."""
    if key.startswith("arn:aws:kms:") and ":key/" in key:
        return key
    from moto.kms.models import kms_backends

    backend = kms_backends[ACCOUNT]["us-east-1"]
    try:
        return str(backend.describe_key(key).arn)
    except Exception:
        return f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key.rsplit('/', 1)[-1]}"


def enforcing(roles: Roles) -> Callable[..., None]:
    """A botocore ``before-parameter-build`` handler that refuses what the calling role may not do."""
    from devkit.actions import needs_of

    def check(params: dict[str, Any], model: Any, **_: Any) -> None:
        principal = current()
        if principal is None:
            return
        service = model.service_model.signing_name
        needs = needs_of(service, model.name, params, bucket_key=bucket_kms_key, kms_arn=kms_arn)
        roles.check(principal, model.name, needs, "AccessDenied" if service == "s3" else "AccessDeniedException")

    return check
