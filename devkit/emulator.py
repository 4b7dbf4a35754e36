"""The application, stood up on moto in this process, from ``template.yaml`` itself.

Functions get the handler, environment and timeout the template gives them;
state machines get their ASL with ``DefinitionSubstitutions`` resolved; moto's
Step Functions interpreter runs the real ASL and its Lambda invoke calls our
handlers in-process (errors come back in Lambda's ``errorType``/``errorMessage``
shape with ``x-amz-function-error``, so Retry and Catch behave as on AWS).

Used by the tests, ``make demo`` and ``ddb-backup demo``. Needs the ``local``
extra (moto, PyYAML) and a source checkout (template.yaml, functions/).
"""

from __future__ import annotations

import io
import json
import os
import re
import time
import uuid
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from ddb_backup.aws.clients import client
from ddb_backup.errors import DdbBackupError
from devkit.cfn import ACCOUNT, CfnLoader, Resolver
from devkit.executions import Executions
from devkit.invoke import FunctionSpec, LambdaContext, ResponseCatcher, make_invoke
from devkit.motofixes import Endings, ScaledTime, item_count, share_backend_deepcopy, tag_replacing
from devkit.strict.enforce import Enforcement, Rules
from devkit.strict.iam import acting_as
from devkit.strict.imports import import_patches
from devkit.strict.lifecycle import configure_bucket, lifecycle_patches
from devkit.strict.streams import StrictStreams

__all__ = [
    "ACCOUNT",
    "LOCAL_ENV",
    "LOCAL_PARAMETERS",
    "ROOT",
    "CfnLoader",
    "FunctionSpec",
    "LambdaContext",
    "LocalStack",
    "local_stack",
]

ROOT = Path(__file__).resolve().parents[1]

#: Parameters the local stack deploys with unless told otherwise: the template gives the table name
#: patterns no default (a deployer must choose), and the tests use tables of many names.
LOCAL_PARAMETERS = {"TableNamePattern": "*", "RestoreTableNamePattern": "*"}

#: Environment the local stack adds on top of the template's: no X-Ray daemon, no EMF on stdout.
#: The functions log at the template's LogLevel (INFO), as deployed: a log call that fails only when
#: its level is on (``extra=`` naming a LogRecord attribute) fails here too.
LOCAL_ENV = {
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_DEV": "false",
    "IMPORT_POLL_SECONDS": "1",  # moto imports in a thread within a second: look again after one, not thirty
}


# ------------------------------------------------------------------ the stack
class LocalStack(Executions):
    """``template.yaml`` deployed on moto, in this process. Use as a context manager."""

    def __init__(
        self,
        root: Path | str = ROOT,
        *,
        parameters: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        stack_name: str = "ddb-backup-local",
        region: str = "us-east-1",
        retry_time_scale: float = 1.0,
        rules: Rules | None = None,
        before_deploy: Callable[[], None] | None = None,
        customer_key: tuple[str, ...] = (),
        streams: StrictStreams | None = None,
    ) -> None:
        self.root = Path(root)
        template_path = self.root / "template.yaml"
        if not template_path.is_file():
            raise DdbBackupError(f"{template_path} not found: the local stack runs from a source checkout")
        self.template = CfnLoader.load(template_path.read_text())
        self.parameters = {**LOCAL_PARAMETERS, **(parameters or {})}
        #: Parameters (e.g. KmsKeyArn) given the ARN of a customer managed key made in moto before the deploy.
        self.customer_key = customer_key
        self.customer_key_arn: str | None = None
        self.extra_env = {**LOCAL_ENV, **(env or {})}
        self.stack_name = stack_name
        self.region = region
        #: Step Functions Retry waits (IntervalSeconds, BackoffRate) run this many times faster (tests).
        self.retry_time_scale = retry_time_scale
        self.functions: dict[str, FunctionSpec] = {}
        self.outputs: dict[str, Any] = {}
        self.physical: dict[str, str] = {}
        self._patches: list[Any] = []
        self._mock: Any = None
        self.schedules: dict[tuple[str, str], dict[str, Any]] = {}  # (logical id, event) -> properties
        self.custom_resources: dict[str, dict[str, Any]] = {}
        #: AWS's rules that moto lacks (IAM, KMS, throughput, Step Functions quotas), all on by default.
        self.enforcement = Enforcement(rules or Rules())
        self.machines: dict[str, str] = {}  # state machine name -> logical id
        self.endings = Endings()  # wakes wait() when an execution ends
        #: Runs on moto before the template is deployed (e.g. the table whose stream a parameter names).
        self.before_deploy = before_deploy
        #: Tables' streams as strict as DynamoDB Streams (shards that split, empty pages, trims, at-least-once
        #: concurrent delivery to the mappings: :meth:`StrictStreams.deliver` feeds them).
        self.streams = streams or StrictStreams()

    # -- lifecycle
    def __enter__(self) -> LocalStack:
        try:
            self.start()
        except BaseException:
            self.stop()  # a failed deploy (e.g. a custom resource's FAILED) leaves no mock or patch running
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        from moto import mock_aws
        from moto.awslambda.models import LambdaFunction

        base_env = {
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
        }
        env_patch = mock.patch.dict(os.environ, base_env)
        env_patch.start()
        self._patches.append(env_patch)
        for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3"):
            os.environ.pop(var, None)
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start()
        registry = self.functions
        from moto.dynamodb.models import DynamoDBBackend
        from moto.dynamodb.models.table import Table
        from moto.stepfunctions.models import StateMachine

        for patch in (
            *self.endings.patches(),  # wait() wakes when an execution ends; each definition is parsed once
            mock.patch.object(LambdaFunction, "invoke", make_invoke(registry)),
            # moto deep-copies a state machine at every StartExecution, and with it the
            # backend and every earlier execution's worker (threads, locks): share those.
            mock.patch.object(StateMachine, "__deepcopy__", share_backend_deepcopy, create=True),
            # DescribeTable counts a table's items while parallel children write to it (not on AWS).
            mock.patch.object(Table, "__len__", item_count),
            mock.patch.object(DynamoDBBackend, "tag_resource", tag_replacing),  # a key tagged again is replaced
            mock.patch(
                "moto.stepfunctions.parser.asl.component.common.retry.retrier_decl.time",
                ScaledTime(self.retry_time_scale),
            ),
            *self.streams.patches(),  # DynamoDB Streams as strict as AWS's (devkit.strict.streams)
            *import_patches(),  # ImportTable refuses and counts as AWS does
            *lifecycle_patches(),  # multipart uploads keep when they started (the lifecycle aborts old ones)
        ):
            patch.start()
            self._patches.append(patch)
        self.enforcement.start()
        client.cache_clear()
        if self.customer_key:
            self.customer_key_arn = self._create_customer_key()
            self.parameters.update(dict.fromkeys(self.customer_key, self.customer_key_arn))
        # Powertools complains about empty metric sets on every local invocation.
        warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
        if self.before_deploy is not None:
            self.before_deploy()
        self._deploy()

    def stop(self) -> None:
        self.enforcement.stop()
        client.cache_clear()
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        while self._patches:
            self._patches.pop().stop()

    # -- deployment
    def _deploy(self) -> None:
        resolver = Resolver(self.template, self.parameters, self.stack_name, self.region)
        resources = self.template["Resources"]
        function_globals = self.template.get("Globals", {}).get("Function", {})
        role = self._role()
        self.enforcement.replication.deploy_roles(resolver, resources, self.stack_name)  # S3 Replication's role
        # Resources in dependency order: buckets, layers, functions, then state machines.
        order = [
            "AWS::S3::Bucket",
            "AWS::SNS::Topic",
            "AWS::SQS::Queue",
            "AWS::Serverless::LayerVersion",
            "AWS::Serverless::Function",
            "AWS::Serverless::StateMachine",
        ]
        for kind in order:
            for logical_id, resource in resources.items():
                if resource["Type"] != kind or not self._condition_holds(resolver, resource):
                    continue
                if kind == "AWS::S3::Bucket":
                    self._bucket(resolver, logical_id)
                elif kind == "AWS::SNS::Topic":
                    arn = client("sns").create_topic(Name=f"{self.stack_name}-{logical_id}")["TopicArn"]
                    resolver.refs[logical_id] = self.physical[logical_id] = arn
                elif kind == "AWS::SQS::Queue":
                    self._queue(resolver, logical_id)
                elif kind == "AWS::Serverless::LayerVersion":
                    resolver.refs[logical_id] = f"arn:aws:lambda:{self.region}:{ACCOUNT}:layer:{logical_id}:1"
                elif kind == "AWS::Serverless::Function":
                    self._function(resolver, logical_id, resource, function_globals, role)
                else:
                    self._state_machine(resolver, logical_id, resource, role)
        # One process holds every function, so their environments are merged; the
        # template keeps shared settings in Globals, and the values agree.
        merged: dict[str, str] = {}
        for fn in self.functions.values():
            merged.update(fn.environment)
        merged.update(self.extra_env)
        env_patch = mock.patch.dict(os.environ, merged)
        env_patch.start()
        self._patches.append(env_patch)
        client.cache_clear()
        self.enforcement.deployed(self.template, self.root, resolver, self.machines, set(resolver.refs))
        client.cache_clear()
        self._record_schedules(resolver)
        self._event_source_mappings(resolver)
        self._run_custom_resources(resolver)
        for name, output in self.template.get("Outputs", {}).items():
            if self._condition_holds(resolver, output):
                self.outputs[name] = resolver(output["Value"])

    @staticmethod
    def _condition_holds(resolver: Resolver, resource: dict[str, Any]) -> bool:
        return "Condition" not in resource or resolver.conditions[resource["Condition"]]

    def _role(self) -> str:
        iam = client("iam")
        doc = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        )
        return str(iam.create_role(RoleName=f"{self.stack_name}-role", AssumeRolePolicyDocument=doc)["Role"]["Arn"])

    def _create_customer_key(self) -> str:
        """A customer managed key in moto's KMS, as a deployer would pass in KmsKeyArn."""
        key = client("kms").create_key(Description=f"{self.stack_name} customer key")["KeyMetadata"]
        return str(key["Arn"])

    def _bucket(self, resolver: Resolver, logical_id: str) -> None:
        name = f"{self.stack_name}-{logical_id}".lower()
        s3 = client("s3")
        if self.region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region})
        # The template's default encryption (SSE-S3, or the customer key) decides what S3 calls need of KMS.
        props = resolver(self.template["Resources"][logical_id].get("Properties", {}))
        if "BucketEncryption" in props:
            rules = [  # CloudFormation's property names, as the S3 API spells them
                {"BucketKeyEnabled": r.get("BucketKeyEnabled", False), "ApplyServerSideEncryptionByDefault": d}
                for r in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
                for d in [r["ServerSideEncryptionByDefault"]]
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        configure_bucket(s3, name, props)  # versioning, lifecycle rules (devkit.strict.lifecycle carries them out)
        self.enforcement.replication.configure(name, props)  # replication rules (devkit.strict.replication)
        resolver.refs[logical_id] = name
        resolver.attrs[(logical_id, "Arn")] = f"arn:aws:s3:::{name}"
        self.physical[logical_id] = name

    def _queue(self, resolver: Resolver, logical_id: str) -> None:
        url = client("sqs").create_queue(QueueName=f"{self.stack_name}-{logical_id}")["QueueUrl"]
        arn = client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        resolver.refs[logical_id] = self.physical[logical_id] = url
        resolver.attrs[(logical_id, "Arn")] = arn
        resolver.attrs[(logical_id, "QueueName")] = f"{self.stack_name}-{logical_id}"

    def _event_source_mappings(self, resolver: Resolver) -> None:
        """A function's DynamoDB and SQS events as event source mappings: moto then invokes the
        function (in-process, see devkit.invoke) on each stream record or queue message."""
        for logical_id, resource in self.template["Resources"].items():
            if logical_id not in resolver.refs or resource["Type"] != "AWS::Serverless::Function":
                continue
            for event in (resource.get("Properties") or {}).get("Events", {}).values():
                props = resolver(event.get("Properties", {}))
                if event.get("Type") in ("DynamoDB", "SQS"):
                    source = props.get("Stream") or props["Queue"]
                    extra = {"StartingPosition": props["StartingPosition"]} if "StartingPosition" in props else {}
                    client("lambda").create_event_source_mapping(
                        EventSourceArn=source,
                        FunctionName=resolver.refs[logical_id],
                        BatchSize=int(props.get("BatchSize", 100)),
                        **extra,
                    )

    def _function(
        self,
        resolver: Resolver,
        logical_id: str,
        resource: dict[str, Any],
        globals_: dict[str, Any],
        role: str,
    ) -> None:
        props = {**globals_, **resource.get("Properties", {})}
        env = {
            **globals_.get("Environment", {}).get("Variables", {}),
            **resource.get("Properties", {}).get("Environment", {}).get("Variables", {}),
        }
        environment = {k: str(v) for k, v in resolver(env).items()}
        name = resolver(props.get("FunctionName")) or f"{self.stack_name}-{logical_id}"
        code_dir = (self.root / props["CodeUri"]).resolve()
        timeout = int(resolver(props.get("Timeout", 3)))
        zipped = io.BytesIO()
        with zipfile.ZipFile(zipped, "w") as zf:
            zf.writestr("app.py", "# runs in-process under the local stack\n")
        arn = client("lambda").create_function(
            FunctionName=name,
            Runtime=props.get("Runtime", "python3.13"),
            Role=role,
            Handler=props["Handler"],
            Code={"ZipFile": zipped.getvalue()},
            Timeout=timeout,
            Environment={"Variables": environment},
        )["FunctionArn"]
        self.functions[name] = FunctionSpec(logical_id, name, code_dir, props["Handler"], environment, timeout)
        resolver.refs[logical_id] = name
        resolver.attrs[(logical_id, "Arn")] = arn
        self.physical[logical_id] = name

    def _state_machine(self, resolver: Resolver, logical_id: str, resource: dict[str, Any], role: str) -> None:
        props = resource["Properties"]
        definition = (self.root / props["DefinitionUri"]).read_text()
        substitutions = resolver(props.get("DefinitionSubstitutions", {}))
        for key, value in substitutions.items():
            definition = definition.replace("${" + key + "}", str(value))
        leftover = re.findall(r"\$\{[A-Za-z0-9_]+\}", definition)
        if leftover:
            raise DdbBackupError(f"{props['DefinitionUri']}: no substitution for {sorted(set(leftover))}")
        name = resolver(props.get("Name")) or f"{self.stack_name}-{logical_id}"
        arn = client("stepfunctions").create_state_machine(
            name=name, definition=definition, roleArn=role, type=props.get("Type", "STANDARD")
        )["stateMachineArn"]
        resolver.refs[logical_id] = arn
        resolver.attrs[(logical_id, "Name")] = name
        self.machines[name] = logical_id
        self.physical[logical_id] = arn

    # -- deploy-time custom resources, and schedules a test can fire
    def _run_custom_resources(self, resolver: Resolver) -> None:
        """Send every custom resource its Create request, as CloudFormation does once the functions exist."""
        for logical_id, resource in self.template["Resources"].items():
            kind = resource["Type"]
            if kind != "AWS::CloudFormation::CustomResource" and not kind.startswith("Custom::"):
                continue
            if not self._condition_holds(resolver, resource):
                continue
            self.custom_resources[logical_id] = {"type": kind, "properties": resolver(resource.get("Properties", {}))}
            body = self.custom_resource(logical_id, "Create")
            resolver.refs[logical_id] = self.physical[logical_id] = body["PhysicalResourceId"]
            for key, value in (body.get("Data") or {}).items():
                resolver.attrs[(logical_id, key)] = value

    def custom_resource(self, logical_id: str, request_type: str = "Update") -> dict[str, Any]:
        """Send a custom resource's function a CloudFormation request, in-process; returns the response it PUT.

        Fails, as the deploy would, when the function answers FAILED, or returns (or raises) without
        answering at all (on AWS the stack would wait for the resource's ServiceTimeout).
        """
        resource = self.custom_resources[logical_id]
        props = resource["properties"]
        fn = self.functions[str(props["ServiceToken"]).rsplit(":", 1)[-1]]
        event: dict[str, Any] = {
            "RequestType": request_type,
            "ServiceToken": props["ServiceToken"],
            "StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT}:stack/{self.stack_name}/"
            + str(uuid.uuid5(uuid.NAMESPACE_URL, self.stack_name)),
            "RequestId": str(uuid.uuid4()),
            "LogicalResourceId": logical_id,
            "ResourceType": resource["type"],
            "ResourceProperties": props,
        }
        if "physical" in resource:
            event["PhysicalResourceId"] = resource["physical"]
        if request_type == "Update":
            event["OldResourceProperties"] = props
        with ResponseCatcher() as catcher:
            event["ResponseURL"] = catcher.url
            try:
                with acting_as(fn.logical_id):  # CloudFormation invokes the function: its own role
                    fn.entry()(event, LambdaContext(fn))
            except Exception as exc:
                if not catcher.bodies:
                    raise DdbBackupError(
                        f"custom resource {logical_id}: {fn.name} raised before answering: {exc}"
                    ) from exc
        if not catcher.bodies:
            raise DdbBackupError(f"custom resource {logical_id}: {fn.name} returned without answering CloudFormation")
        body = catcher.bodies[-1]
        for key in ("StackId", "RequestId", "LogicalResourceId"):
            if body.get(key) != event[key]:
                raise DdbBackupError(f"custom resource {logical_id}: the response's {key} is {body.get(key)!r}")
        if body.get("Status") != "SUCCESS" or not body.get("PhysicalResourceId"):
            raise DdbBackupError(f"custom resource {logical_id} {request_type} FAILED: {body.get('Reason')}")
        resource["physical"] = body["PhysicalResourceId"]
        return body

    def _record_schedules(self, resolver: Resolver) -> None:
        """Remember the Schedule/ScheduleV2 events of functions and state machines, for :meth:`fire`."""
        for logical_id, resource in self.template["Resources"].items():
            if logical_id not in self.physical:
                continue
            for name, event in (resource.get("Properties") or {}).get("Events", {}).items():
                if event.get("Type") in ("Schedule", "ScheduleV2"):
                    self.schedules[(logical_id, name)] = resolver(event.get("Properties", {}))

    def fire(self, logical_id: str, event_name: str) -> Any:
        """Do what EventBridge does when schedule ``event_name`` of ``logical_id`` comes due.

        A function's handler runs in-process with the event's Input (the result is returned, an error
        raised); a state machine gets an execution started with it (the execution ARN is returned).
        """
        props = self.schedules.get((logical_id, event_name))
        if props is None:
            raise DdbBackupError(f"{logical_id} has no schedule event {event_name!r} in this deployment")
        if props.get("State") == "DISABLED" or str(props.get("Enabled", True)).lower() == "false":
            raise DdbBackupError(f"schedule {logical_id}.{event_name} is disabled")
        payload = (
            json.loads(props["Input"])
            if "Input" in props
            else {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": ACCOUNT,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "region": self.region,
                "resources": [
                    f"arn:aws:events:{self.region}:{ACCOUNT}:rule/{self.stack_name}-{logical_id}{event_name}"
                ],
                "detail": {},
            }
        )
        if self.template["Resources"][logical_id]["Type"] == "AWS::Serverless::StateMachine":
            return self.start_execution(logical_id, payload)
        fn = self.functions[self.physical[logical_id]]
        with acting_as(fn.logical_id):  # EventBridge invokes the function: its own role
            return fn.entry()(payload, LambdaContext(fn))


@contextmanager
def local_stack(**kwargs: Any) -> Iterator[LocalStack]:
    """A started :class:`LocalStack` (keyword arguments as its constructor's), stopped on exit."""
    with LocalStack(**kwargs) as stack:
        yield stack
