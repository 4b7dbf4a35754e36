"""The local stack's S3 Replication (devkit.strict.replication): the rules S3 applies, on plain moto."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.s3.models import s3_backends

from devkit.cfn import ACCOUNT
from devkit.strict.iam import Roles
from devkit.strict.replication import Replication, bucket_policy_allows

ROLE = f"arn:aws:iam::{ACCOUNT}:role/src-stack-ReplicationRole-ABC"
REPLICATE = ["s3:GetReplicationConfiguration", "s3:ListBucket", "s3:GetObjectVersionForReplication",
             "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging", "s3:ReplicateObject", "s3:ReplicateDelete",
             "s3:ReplicateTags", "s3:ObjectOwnerOverrideToBucketOwner"]  # fmt: skip


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws(), Replication.status_header():
        client = boto3.client("s3", region_name="us-east-1")
        for name in ("src", "one", "two"):
            client.create_bucket(Bucket=name)
            client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        yield client


def _configure(s3: Any, *rules: dict[str, Any]) -> None:
    s3.put_bucket_replication(Bucket="src", ReplicationConfiguration={"Role": ROLE, "Rules": list(rules)})


def _rule(prefix: str, dest: str, priority: int = 1, **extra: Any) -> dict[str, Any]:
    return {"ID": f"{dest}-{priority}", "Priority": priority, "Status": "Enabled", "Filter": {"Prefix": prefix},
            "DeleteMarkerReplication": {"Status": "Disabled"},
            "Destination": {"Bucket": f"arn:aws:s3:::{dest}", **extra}}  # fmt: skip


def _roles(actions: list[str]) -> Roles:
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    return Roles({"ReplicationRole": [doc]}, lambda d: d)


def _put(s3: Any, rep: Replication, key: str, **kwargs: Any) -> None:
    s3.put_object(Bucket="src", Key=key, Body=b"data", **kwargs)
    rep.replicate("src", key)


def _keys(s3: Any, bucket: str) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def test_the_matching_rule_of_highest_priority_copies_with_its_storage_class_tags_and_version(s3: Any) -> None:
    _configure(s3, _rule("a/", "one", 1), _rule("a/b/", "two", 2, StorageClass="STANDARD_IA"))
    rep = Replication(lambda: None)
    for key in ("a/x", "a/b/y", "c/z"):
        _put(s3, rep, key, Tagging="k=v", Metadata={"m": "1"})
    assert (_keys(s3, "one"), _keys(s3, "two")) == ({"a/x"}, {"a/b/y"})  # c/z matches no rule
    copied, source = s3.head_object(Bucket="two", Key="a/b/y"), s3.head_object(Bucket="src", Key="a/b/y")
    assert (copied["StorageClass"], copied["Metadata"], copied["ReplicationStatus"]) == (
        "STANDARD_IA",
        {"m": "1"},
        "REPLICA",
    )
    assert source["ReplicationStatus"] == "COMPLETED" and copied["VersionId"] == source["VersionId"]
    assert s3.get_object_tagging(Bucket="two", Key="a/b/y")["TagSet"] == [{"Key": "k", "Value": "v"}]
    assert "ReplicationStatus" not in s3.head_object(Bucket="src", Key="c/z")


def test_delete_markers_follow_only_when_the_rule_says_and_a_version_deletion_never(s3: Any) -> None:
    rep = Replication(lambda: None)
    _configure(s3, _rule("", "one"))
    _put(s3, rep, "kept")
    s3.delete_object(Bucket="src", Key="kept")
    rep.replicate("src", "kept")
    assert _keys(s3, "one") == {"kept"}  # DeleteMarkerReplication disabled
    marked = _rule("", "two") | {"DeleteMarkerReplication": {"Status": "Enabled"}}
    _configure(s3, marked)
    _put(s3, rep, "marked")
    version = s3.head_object(Bucket="src", Key="marked")["VersionId"]
    s3.delete_object(Bucket="src", Key="marked", VersionId=version)  # a version's deletion: not replicated
    rep.replicate("src", "marked")
    assert _keys(s3, "two") == {"marked"}
    _put(s3, rep, "marked")
    s3.delete_object(Bucket="src", Key="marked")  # a delete marker: replicated
    rep.replicate("src", "marked")
    assert _keys(s3, "two") == set()
    assert len(s3.list_object_versions(Bucket="two", Prefix="marked")["Versions"]) == 2  # the replicas stay


def test_kms_objects_need_the_rule_to_select_them_and_are_re_encrypted_with_the_replica_key(s3: Any) -> None:
    kms = boto3.client("kms", region_name="us-east-1")
    source_key, replica_key = (kms.create_key()["KeyMetadata"]["Arn"] for _ in range(2))
    rep = Replication(lambda: None)
    _configure(s3, _rule("", "one", EncryptionConfiguration={"ReplicaKmsKeyID": replica_key}))
    _put(s3, rep, "skipped", ServerSideEncryption="aws:kms", SSEKMSKeyId=source_key)
    assert _keys(s3, "one") == set()
    selected = _rule("", "one", EncryptionConfiguration={"ReplicaKmsKeyID": replica_key})
    _configure(s3, selected | {"SourceSelectionCriteria": {"SseKmsEncryptedObjects": {"Status": "Enabled"}}})
    _put(s3, rep, "copied", ServerSideEncryption="aws:kms", SSEKMSKeyId=source_key)
    assert s3.head_object(Bucket="one", Key="copied")["SSEKMSKeyId"] == replica_key


def test_what_the_role_does_not_allow_fails_the_object_and_copies_nothing(s3: Any) -> None:
    _configure(s3, _rule("", "one"))
    roles = _roles([a for a in REPLICATE if a != "s3:ReplicateObject"])
    rep = Replication(lambda: roles)
    rep.principals[ROLE] = "ReplicationRole"
    _put(s3, rep, "refused")
    assert _keys(s3, "one") == set()
    assert s3.head_object(Bucket="src", Key="refused")["ReplicationStatus"] == "FAILED"
    assert rep.log[-1].refused == f"s3:ReplicateObject on arn:aws:s3:::one/refused (the role {ROLE})"
    roles.policies = _roles(REPLICATE).policies
    _put(s3, rep, "allowed")
    assert _keys(s3, "one") == {"allowed"}


def test_another_account_s_bucket_must_allow_the_role_in_its_policy(s3: Any) -> None:
    _configure(s3, _rule("", "one", Account="210987654321", AccessControlTranslation={"Owner": "Destination"}))
    rep = Replication(lambda: None)
    _put(s3, rep, "no-policy")
    assert rep.log[-1].status == "FAILED" and "the bucket policy of one" in rep.log[-1].refused
    s3_backends[ACCOUNT]["aws"].get_bucket("one").devkit_policy = json.dumps(_policy("src-stack"))
    _put(s3, rep, "allowed")
    assert _keys(s3, "one") == {"allowed"} and rep.log[-1].owner == "210987654321"


def _policy(stack: str) -> dict[str, Any]:
    allow = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": [
            "s3:ReplicateObject",
            "s3:ReplicateDelete",
            "s3:ReplicateTags",
            "s3:ObjectOwnerOverrideToBucketOwner",
        ],
        "Resource": "arn:aws:s3:::one/*",
        "Condition": {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/{stack}-ReplicationRole-*"}},
    }
    deny = {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::one/*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}  # fmt: skip
    return {"Version": "2012-10-17", "Statement": [deny, allow]}


def test_a_bucket_policy_names_the_role_by_its_stack() -> None:
    resource = "arn:aws:s3:::one/backups/x"
    assert bucket_policy_allows(json.dumps(_policy("src-stack")), ROLE, "s3:ReplicateObject", resource)
    assert not bucket_policy_allows(json.dumps(_policy("other-stack")), ROLE, "s3:ReplicateObject", resource)
    assert not bucket_policy_allows(json.dumps(_policy("src-stack")), ROLE, "s3:PutObject", resource)
    assert not bucket_policy_allows(None, ROLE, "s3:ReplicateObject", resource)


def test_every_kind_of_write_through_boto3_is_replicated(s3: Any) -> None:
    """PutObject, CopyObject, multipart uploads and DeleteObjects, as the botocore handlers see them."""
    from boto3.s3.transfer import TransferConfig

    rep = Replication(lambda: None)
    s3.meta.events.register("before-parameter-build.s3", rep.stash)
    s3.meta.events.register("after-call.s3", rep.after_call)
    _configure(s3, _rule("", "one") | {"DeleteMarkerReplication": {"Status": "Enabled"}})
    s3.put_object(Bucket="src", Key="put", Body=b"p")
    s3.copy_object(Bucket="src", Key="copied", CopySource={"Bucket": "src", "Key": "put"})
    big = io.BytesIO(b"m" * (6 * 1024 * 1024))
    s3.upload_fileobj(big, "src", "multipart", Config=TransferConfig(multipart_threshold=5 * 1024 * 1024))
    assert _keys(s3, "one") == {"put", "copied", "multipart"}
    assert s3.head_object(Bucket="one", Key="multipart")["ContentLength"] == 6 * 1024 * 1024
    s3.delete_objects(Bucket="src", Delete={"Objects": [{"Key": "put"}, {"Key": "copied"}]})
    assert _keys(s3, "one") == {"multipart"}  # their delete markers followed, as the rule says


def test_a_missing_or_unversioned_destination_fails_the_object_not_the_write(s3: Any) -> None:
    s3.create_bucket(Bucket="plain")  # not versioned
    rep = Replication(lambda: None)
    for dest in ("gone", "plain"):
        _configure(s3, _rule("", dest))
        _put(s3, rep, dest)
        assert s3.head_object(Bucket="src", Key=dest)["ReplicationStatus"] == "FAILED"
    assert [r.refused.rsplit(" ", 2)[-2:] for r in rep.log] == [["not", "exist"], ["not", "versioned"]]
    assert _keys(s3, "plain") == set()
