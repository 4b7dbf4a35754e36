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


def threads_keep_principal() -> Any:
    """Patch ``threading.Thread`` so that a thread started by a function or state machine keeps its role.

    Step Functions runs a task's service call (Lambda invoke, ItemReader's GetObject) on a thread of its
    own; without this those calls carry no principal and go unchecked.
    """
    start, run = threading.Thread.start, threading.Thread.run

    def started(self: threading.Thread) -> None:
        self._devkit_principal = current()  # type: ignore[attr-defined]
        start(self)

    def running(self: threading.Thread) -> None:
        with acting_as(getattr(self, "_devkit_principal", None)):
            run(self)

    return _patch_both(started, running)


@contextmanager
def _patch_both(started: Callable[..., None], running: Callable[..., None]) -> Iterator[None]:
    from unittest import mock

    with mock.patch.object(threading.Thread, "start", started), mock.patch.object(threading.Thread, "run", running):
        yield


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


#: The AWS managed policies SAM attaches itself (logs; X-Ray with ``Tracing``), as AWS defines them.
AWS_MANAGED = {
    # What SAM attaches to a function with an SQS or DynamoDB-stream event source (AWS's own documents).
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": [
        "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
        "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
    ],
    "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole": [
        "dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams",
        "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
    ],
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": [
        "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
    ],
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": [
        "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
        "xray:GetSamplingTargets", "xray:GetSamplingStatisticSummaries",
    ],
}  # fmt: skip


def _conditional(condition: str | None, document: Any) -> Any:
    """``document``, kept only where ``condition`` holds (resolved later, with the deployment's conditions)."""
    return {"Fn::If": [condition, document, {"Ref": "AWS::NoValue"}]} if condition else document


def role_documents(expanded: dict[str, Any]) -> dict[str, list[Any]]:
    """Policy documents (unresolved) of each function's and state machine's role, by its logical id,
    and of each role S3 assumes (replication), by the role's own logical id.

    Inline policies, and ``AWS::IAM::Policy`` / ``ManagedPolicy`` resources attached to the role (by
    ``Roles``, or by the role's ``ManagedPolicyArns``); a policy under a condition (``Fn::If`` or the
    resource's ``Condition``) stays wrapped in ``Fn::If`` and counts only where the condition holds.
    """
    resources = expanded["Resources"]
    by_role: dict[str, list[Any]] = {}
    for logical, res in resources.items():
        if res["Type"] == "AWS::IAM::Role":
            props = res["Properties"]
            by_role[logical] = [_policy_document(p) for p in props.get("Policies", [])]
            for arn in props.get("ManagedPolicyArns", []):
                by_role[logical].append(_managed_document(arn, resources))
    for res in resources.values():
        if res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for role in res["Properties"].get("Roles", []):
                doc = _conditional(res.get("Condition"), res["Properties"]["PolicyDocument"])
                if "Fn::If" in role:  # attached only where the condition holds
                    condition, role = role["Fn::If"][0], role["Fn::If"][1]  # noqa: PLW2901 (the branch stands for the whole)
                    doc = _conditional(condition, doc)
                by_role.setdefault(role["Ref"], []).append(doc)
    owners: dict[str, list[Any]] = {}
    for logical, res in resources.items():
        if res["Type"] in ("AWS::Lambda::Function", "AWS::StepFunctions::StateMachine"):
            role = res["Properties"].get("Role") or res["Properties"].get("RoleArn")
            if isinstance(role, dict) and "Fn::GetAtt" in role:
                owners[logical] = by_role.get(role["Fn::GetAtt"][0], [])
        elif res["Type"] == "AWS::IAM::Role" and _assumed_by_s3(res):  # S3 Replication's role: by its own id
            owners[logical] = [_conditional(res.get("Condition"), doc) for doc in by_role.get(logical, [])]
    return owners


def _assumed_by_s3(role: dict[str, Any]) -> bool:
    trust = role["Properties"].get("AssumeRolePolicyDocument", {})
    return any("s3.amazonaws.com" in json.dumps(st.get("Principal", {})) for st in trust.get("Statement", []) if st)


def _policy_document(policy: Any) -> Any:
    """An inline policy's document; an ``Fn::If`` of policies as the ``Fn::If`` of their documents."""
    if "Fn::If" in policy:
        condition, yes, no = policy["Fn::If"]
        return {"Fn::If": [condition, _policy_document(yes), _policy_document(no)]}
    return policy.get("PolicyDocument", policy)  # {"Ref": "AWS::NoValue"} stays as it is


def _managed_document(arn: Any, resources: dict[str, Any]) -> Any:
    """The document of a managed policy: one the template defines, or one of :data:`AWS_MANAGED` (others refused)."""
    if isinstance(arn, dict) and "Fn::If" in arn:
        condition, yes, no = arn["Fn::If"]
        return {"Fn::If": [condition, _managed_document(yes, resources), _managed_document(no, resources)]}
    if arn == {"Ref": "AWS::NoValue"}:
        return arn
    if isinstance(arn, dict) and "Fn::Sub" in arn:  # SAM writes them as arn:${AWS::Partition}:iam::aws:...
        arn = str(arn["Fn::Sub"]).replace("${AWS::Partition}", "aws")
    if isinstance(arn, str) and arn in AWS_MANAGED:
        return {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": AWS_MANAGED[arn], "Resource": "*"}],
        }
    if isinstance(arn, dict) and resources.get(arn.get("Ref", ""), {}).get("Type") == "AWS::IAM::ManagedPolicy":
        res = resources[arn["Ref"]]
        return _conditional(res.get("Condition"), res["Properties"]["PolicyDocument"])
    raise ValueError(f"managed policy {arn!r} is not defined in the template: the local stack cannot evaluate it")


class Roles:
    """The resolved policies of every principal of one local deployment."""

    def __init__(self, documents: dict[str, list[Any]], resolve: Callable[[Any], Any]) -> None:
        self.policies = {
            logical: [IAMPolicy({"policy_document": json.dumps(doc)}) for doc in map(resolve, docs) if doc]
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
    from devkit.strict.actions import needs_of

    def check(params: dict[str, Any], model: Any, **_: Any) -> None:
        principal = current()
        if principal is None:
            return
        service = model.service_model.signing_name
        needs = needs_of(service, model.name, params, bucket_key=bucket_kms_key, kms_arn=kms_arn)
        roles.check(principal, model.name, needs, "AccessDenied" if service == "s3" else "AccessDeniedException")

    return check
