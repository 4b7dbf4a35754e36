"""S3 Replication for the local stack: moto stores a bucket's replication configuration and copies nothing.

After every write into a bucket that has a replication configuration (PutObject, CopyObject,
CompleteMultipartUpload, DeleteObject, DeleteObjects, made through boto3: the functions', the state
machines' and the CLI's), the key's current version is copied as the configuration says, as S3 does
(there within seconds; here at once):

- by the enabled rule of highest priority whose filter (``Prefix``, ``Filter.Prefix``, ``Filter.And``
  with its tags) matches the key;
- an object encrypted with a KMS key only under ``SourceSelectionCriteria.SseKmsEncryptedObjects``,
  re-encrypted with the destination's ``ReplicaKmsKeyID``; an SSE-S3 object stays SSE-S3;
- in the destination's ``StorageClass``, with the source's metadata, tags and version id, owned by the
  destination account under ``AccessControlTranslation``, under the destination bucket's default
  Object Lock retention (or the source object's own);
- a delete marker only with ``DeleteMarkerReplication`` enabled; the deletion of a version never (S3
  does not replicate it, so a replica survives whoever empties the source); a replica is not
  replicated again;
- as the configuration's role: every action S3 performs with it (``s3:GetObjectVersionForReplication``,
  ``s3:ReplicateObject``, ``kms:Decrypt`` ...) is checked against the role as the template defines it
  (:mod:`devkit.strict.iam`), and, for a destination in another account, against the destination
  bucket's policy. What is refused leaves the source object's status FAILED and copies nothing.

HeadObject and GetObject answer ``ReplicationStatus`` (COMPLETED, FAILED, or REPLICA on a replica).

:func:`deploy_replica` stands up ``replica.yaml`` (the destination bucket a deployer makes in the
other account or region) in the same moto, for the local stack to replicate to.
"""

from __future__ import annotations

import fnmatch
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from moto.s3.models import FakeDeleteMarker, FakeKey, s3_backends

from ddb_backup.aws.clients import client
from ddb_backup.errors import DdbBackupError
from devkit.cfn import ACCOUNT, CfnLoader, Resolver
from devkit.strict import iam

_WRITES = {"PutObject", "CopyObject", "CompleteMultipartUpload", "DeleteObject", "DeleteObjects"}
_STASH = "devkit_replicate"


@dataclass(frozen=True)
class Replicated:
    """One object (or delete marker) S3 Replication handled: what, where to, and how it ended."""

    bucket: str
    key: str
    version: str
    destination: str
    status: str  # COMPLETED or FAILED
    owner: str = ""  # the account that owns the replica
    refused: str = ""  # the action and resource refused, when FAILED


class Replication:
    """The replication rules of the local stack's buckets, carried out as S3 would."""

    def __init__(self, roles: Callable[[], iam.Roles | None]) -> None:
        self._roles = roles
        self._lock = threading.RLock()
        self.principals: dict[str, str] = {}  # role ARN -> the logical id its policies are known by
        self.log: list[Replicated] = []
        self._done: set[tuple[str, str, str]] = set()  # (bucket, key, version) replicated or refused

    # -- deployment
    def deploy_roles(self, resolver: Resolver, resources: dict[str, Any], stack: str) -> None:
        """Create the template's roles that S3 assumes (the replication role), named as CloudFormation would."""
        for logical, res in resources.items():
            if res["Type"] != "AWS::IAM::Role":
                continue
            if "Condition" in res and not resolver.conditions[res["Condition"]]:
                continue
            if "s3.amazonaws.com" not in json.dumps(res["Properties"].get("AssumeRolePolicyDocument", {})):
                continue
            trust = json.dumps(resolver(res["Properties"]["AssumeRolePolicyDocument"]))
            name = f"{stack}-{logical}-LOCAL"
            arn = str(client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"])
            resolver.refs[logical], resolver.attrs[(logical, "Arn")] = name, arn
            self.principals[arn] = logical

    @staticmethod
    def configure(bucket: str, props: dict[str, Any]) -> None:
        """A bucket's replication configuration, and the versioning S3 requires of it, as the template gives them."""
        config = props.get("ReplicationConfiguration")
        if not config:
            return
        if props.get("VersioningConfiguration", {}).get("Status") != "Enabled":
            raise DdbBackupError(
                f"bucket {bucket}: S3 replicates only a versioned bucket: give it VersioningConfiguration Status Enabled"
            )
        s3 = client("s3")
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        rules = [{("ID" if k == "Id" else k): v for k, v in rule.items()} for rule in config["Rules"]]
        for rule in rules:
            rule["Priority"] = int(rule.get("Priority", 0))
        s3.put_bucket_replication(Bucket=bucket, ReplicationConfiguration={"Role": config["Role"], "Rules": rules})

    # -- botocore handlers and the status header
    def stash(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        """``before-parameter-build.s3``: remember which keys a write touches."""
        if model.name not in _WRITES:
            return
        keys = [o["Key"] for o in params.get("Delete", {}).get("Objects", [])] or [params.get("Key", "")]
        context[_STASH] = (params.get("Bucket", ""), keys)

    def after_call(self, http_response: Any, model: Any, context: dict[str, Any], **_: Any) -> None:
        """``after-call.s3``: once a write succeeded, replicate what it changed."""
        pending = context.pop(_STASH, None)
        if pending and http_response.status_code < 300:
            bucket, keys = pending
            for key in keys:
                self.replicate(bucket, key)

    @staticmethod
    @contextmanager
    def status_header() -> Iterator[None]:
        """HeadObject/GetObject answer ``x-amz-replication-status`` as S3 does."""
        original = FakeKey.response_dict

        def response_dict(self: FakeKey) -> dict[str, Any]:
            res = dict(original.fget(self))  # type: ignore[attr-defined]
            status = getattr(self, "_devkit_replication", None)
            if status:
                res["x-amz-replication-status"] = status
            return res

        with mock.patch.object(FakeKey, "response_dict", property(response_dict)):
            yield

    # -- replicating
    def replicate(self, bucket: str, key: str) -> None:
        """Carry out the bucket's replication rules for ``key``'s current version (or delete marker)."""
        backend = s3_backends[ACCOUNT]["aws"]
        with self._lock:
            source: Any = backend.buckets.get(bucket)
            config: dict[str, Any] | None = getattr(source, "replication", None)
            versions = source.keys.getlist(key, []) if config else []
            if not config or not versions:
                return
            current = versions[-1]
            replica = getattr(current, "_devkit_replication", "") == "REPLICA"
            if replica or (bucket, key, current.version_id) in self._done:
                return
            rule = _rule_for(config, key, backend.tagger.get_tag_dict_for_resource(getattr(current, "arn", "")))
            if rule is None:
                return
            if isinstance(current, FakeDeleteMarker):
                if rule.get("DeleteMarkerReplication", {}).get("Status") == "Enabled":
                    self._copy_delete_marker(backend, config, rule, bucket, current)
                return
            if current.encryption == "aws:kms" and _kms_objects_excluded(rule):
                return  # S3 skips SSE-KMS objects unless the rule selects them
            self._copy(backend, config, rule, bucket, current)

    def _copy(self, backend: Any, config: dict[str, Any], rule: dict[str, Any], bucket: str, src: FakeKey) -> None:
        dest = rule["Destination"]
        target = dest["Bucket"].split(":::", 1)[-1]
        self._done.add((bucket, src.name, src.version_id))
        refused = _unwritable(backend, target) or self._refused(backend, config, rule, bucket, src)
        owner = dest.get("Account", ACCOUNT) if dest.get("AccessControlTranslation") else ACCOUNT
        if refused:
            src._devkit_replication = "FAILED"  # type: ignore[attr-defined]
            self.log.append(Replicated(bucket, src.name, src.version_id, target, "FAILED", refused=refused))
            return
        replica_key = dest.get("EncryptionConfiguration", {}).get("ReplicaKmsKeyID")
        encryption, key_id = ("aws:kms", replica_key) if src.encryption == "aws:kms" else (src.encryption, None)
        lock = _lock_of(src, backend.get_bucket(target))
        replica = backend.put_object(
            target, src.name, src.value, storage=dest.get("StorageClass") or src.storage_class,
            encryption=encryption, kms_key_id=key_id, **lock, disable_notification=True,
        )  # fmt: skip
        replica.set_metadata(src.metadata)
        if backend.get_bucket(target).is_versioned:
            replica._version_id = src.version_id  # a replica keeps its source's version id
        backend.tagger.copy_tags(src.arn, replica.arn)  # (the ARN names the version)
        replica._devkit_replication = "REPLICA"
        src._devkit_replication = "COMPLETED"  # type: ignore[attr-defined]
        self.log.append(Replicated(bucket, src.name, src.version_id, target, "COMPLETED", owner=owner))

    def _copy_delete_marker(
        self, backend: Any, config: dict[str, Any], rule: dict[str, Any], bucket: str, marker: Any
    ) -> None:
        target = rule["Destination"]["Bucket"].split(":::", 1)[-1]
        self._done.add((bucket, marker.name, marker.version_id))
        needs = [("s3:ReplicateDelete", f"arn:aws:s3:::{target}/{marker.name}")]
        refused = _unwritable(backend, target) or self._denied(backend, config, rule, needs)
        if not refused and marker.name in backend.get_bucket(target).keys:
            backend.delete_object(target, marker.name)
        status = "FAILED" if refused else "COMPLETED"
        self.log.append(Replicated(bucket, marker.name, marker.version_id, target, status, refused=refused))

    def _refused(self, backend: Any, config: dict[str, Any], rule: dict[str, Any], bucket: str, src: FakeKey) -> str:
        """The first action S3 would be refused in replicating ``src`` as the configuration's role ("" if none)."""
        dest = rule["Destination"]
        source_arn, obj = f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/{src.name}"
        replica = f"{dest['Bucket']}/{src.name}"
        needs = [("s3:GetReplicationConfiguration", source_arn), ("s3:ListBucket", source_arn)]
        needs += [(f"s3:{a}", obj) for a in ("GetObjectVersionForReplication", "GetObjectVersionAcl")]
        needs.append(("s3:GetObjectVersionTagging", obj))
        if backend.get_bucket(bucket).object_lock_enabled:
            needs += [("s3:GetObjectRetention", obj), ("s3:GetObjectLegalHold", obj)]
        if src.encryption == "aws:kms" and src.kms_key_id:
            needs.append(("kms:Decrypt", iam.kms_arn(src.kms_key_id)))
        needs.append(("s3:ReplicateObject", replica))
        if backend.tagger.get_tag_dict_for_resource(src.arn):
            needs.append(("s3:ReplicateTags", replica))
        if dest.get("AccessControlTranslation"):
            needs.append(("s3:ObjectOwnerOverrideToBucketOwner", replica))
        replica_key = dest.get("EncryptionConfiguration", {}).get("ReplicaKmsKeyID")
        if replica_key and src.encryption == "aws:kms":
            needs.append(("kms:Encrypt", iam.kms_arn(replica_key)))
        return self._denied(backend, config, rule, needs)

    def _denied(self, backend: Any, config: dict[str, Any], rule: dict[str, Any], needs: list[tuple[str, str]]) -> str:
        roles, principal = self._roles(), self.principals.get(config["Role"])
        target = rule["Destination"]["Bucket"].split(":::", 1)[-1]
        other_account = bool(rule["Destination"].get("Account"))
        policy = getattr(backend.get_bucket(target), "devkit_policy", None)  # see deploy_replica
        for action, resource in needs:
            if roles is not None and principal is not None and not roles.allows(principal, action, resource):
                return f"{action} on {resource} (the role {config['Role']})"
            on_target = resource.startswith(f"arn:aws:s3:::{target}")
            if other_account and on_target and not bucket_policy_allows(policy, config["Role"], action, resource):
                return f"{action} on {resource} (the bucket policy of {target})"
        return ""


def _unwritable(backend: Any, target: str) -> str:
    """Why S3 could not replicate into ``target`` at all ("" if it can): it must exist and be versioned."""
    found = backend.buckets.get(target)
    if found is None:
        return f"the destination bucket {target} does not exist"
    return "" if found.is_versioned else f"the destination bucket {target} is not versioned"


def _rule_for(config: dict[str, Any], key: str, tags: dict[str, str]) -> dict[str, Any] | None:
    """The enabled rule of highest priority whose filter matches ``key`` (and the object's tags)."""
    matching = []
    for rule in config["Rule"]:
        if rule.get("Status") != "Enabled":
            continue
        spec = rule.get("Filter", {})
        spec = spec.get("And", spec)
        prefix = spec.get("Prefix", rule.get("Prefix")) or ""
        wanted = spec.get("Tag", [])
        wanted = [wanted] if isinstance(wanted, dict) else wanted
        if key.startswith(prefix) and all(tags.get(t["Key"]) == t["Value"] for t in wanted):
            matching.append(rule)
    return max(matching, key=lambda r: int(r.get("Priority", 0)), default=None)


def _kms_objects_excluded(rule: dict[str, Any]) -> bool:
    selected = rule.get("SourceSelectionCriteria", {}).get("SseKmsEncryptedObjects", {}).get("Status")
    return selected != "Enabled"


def _lock_of(src: FakeKey, target: Any) -> dict[str, Any]:
    """The replica's Object Lock: the source object's own retention, else the destination's default."""
    if src.lock_mode:
        return {"lock_mode": src.lock_mode, "lock_until": src.lock_until, "lock_legal_status": src.lock_legal_status}
    if target.object_lock_enabled and target.default_lock_mode:
        return {"lock_mode": target.default_lock_mode, "lock_until": target.default_retention()}
    return {}


# ------------------------------------------------------------------ the destination bucket's policy
def bucket_policy_allows(policy: str | bytes | None, role_arn: str, action: str, resource: str) -> bool:
    """Whether a bucket policy allows ``role_arn`` ``action`` on ``resource`` (and denies it nothing)."""
    if not policy:
        return False
    context = {
        "aws:PrincipalArn": role_arn,
        "aws:PrincipalAccount": role_arn.split(":")[4],
        "aws:SecureTransport": "true",
    }
    allowed = False
    for st in json.loads(policy).get("Statement", []):
        if not _applies(st, role_arn, action, resource, context):
            continue
        if st["Effect"] == "Deny":
            return False
        allowed = True
    return allowed


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _applies(st: dict[str, Any], role_arn: str, action: str, resource: str, context: dict[str, str]) -> bool:
    principal = st.get("Principal", {})
    who = _listed(principal.get("AWS", [])) if isinstance(principal, dict) else [principal]
    account = role_arn.split(":")[4]
    if not any(p in ("*", role_arn, account, f"arn:aws:iam::{account}:root") for p in who):
        return False
    if not any(fnmatch.fnmatchcase(action, a) for a in _listed(st.get("Action", []))):
        return False
    if not any(fnmatch.fnmatchcase(resource, r) for r in _listed(st.get("Resource", []))):
        return False
    return all(_condition_holds(op, tests, context) for op, tests in st.get("Condition", {}).items())


def _condition_holds(operator: str, tests: dict[str, Any], context: dict[str, str]) -> bool:
    """The operators a replica bucket's policy uses; an unknown one or key does not hold (the statement is skipped)."""
    for key, wanted in tests.items():
        value = context.get(key)
        if value is None:
            return False
        if operator in ("StringEquals", "ArnEquals", "Bool"):
            ok = (
                value.lower() in [str(w).lower() for w in _listed(wanted)]
                if operator == "Bool"
                else value in _listed(wanted)
            )
        elif operator in ("StringLike", "ArnLike"):
            ok = any(fnmatch.fnmatchcase(value, str(w)) for w in _listed(wanted))
        else:
            return False
        if not ok:
            return False
    return True


# ------------------------------------------------------------------ replica.yaml, locally
def deploy_replica(root: Path, parameters: dict[str, str], stack: str = "ddb-backup-replica") -> dict[str, str]:
    """``replica.yaml`` stood up in moto (its KMS key, bucket and bucket policy); returns its outputs.

    The bucket gets what S3 would enforce of it: versioning, Object Lock and its default retention,
    default encryption; its policy is what replication into it is checked against (lifecycle rules
    are left out: moto applies none).
    """
    template = CfnLoader.load((root / "replica.yaml").read_text())
    resolver = Resolver(template, parameters, stack, "us-east-1")
    for logical, res in template["Resources"].items():
        if "Condition" in res and not resolver.conditions[res["Condition"]]:
            continue
        props = resolver(res.get("Properties", {}))
        if res["Type"] == "AWS::KMS::Key":
            arn = client("kms").create_key(Description=props.get("Description", logical))["KeyMetadata"]["Arn"]
            resolver.refs[logical], resolver.attrs[(logical, "Arn")] = arn, arn
        elif res["Type"] == "AWS::S3::Bucket":
            name = f"{stack}-{logical}".lower()
            _replica_bucket(name, props)
            resolver.refs[logical], resolver.attrs[(logical, "Arn")] = name, f"arn:aws:s3:::{name}"
        elif res["Type"] == "AWS::S3::BucketPolicy":  # kept beside the bucket, not given to moto: moto applies
            # a bucket policy without its conditions (DenyInsecureTransport would refuse every request)
            target: Any = s3_backends[ACCOUNT]["aws"].get_bucket(props["Bucket"])
            target.devkit_policy = json.dumps(props["PolicyDocument"])
    outputs = template.get("Outputs", {}).items()
    return {k: str(resolver(v["Value"])) for k, v in outputs if resolver.conditions.get(v.get("Condition", ""), True)}


def _replica_bucket(name: str, props: dict[str, Any]) -> None:
    s3 = client("s3")
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=bool(props.get("ObjectLockEnabled")))
    if props.get("VersioningConfiguration", {}).get("Status") == "Enabled":
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    lock = props.get("ObjectLockConfiguration", {}).get("Rule", {}).get("DefaultRetention")
    if lock:
        retention = {"Mode": lock["Mode"], "Days": int(lock["Days"])}
        s3.put_object_lock_configuration(
            Bucket=name,
            ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": retention}},
        )
    for rule in props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", []):
        default = rule["ServerSideEncryptionByDefault"]
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": default,
                        "BucketKeyEnabled": bool(rule.get("BucketKeyEnabled")),
                    }
                ]
            },
        )
