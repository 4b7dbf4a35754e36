"""What AWS authorizes for one API call: the IAM actions and the resource ARN of each.

Only the services and operations the stack uses are mapped precisely; any other operation needs
``<service>:<Operation>`` on ``*``, which a least-privilege role does not grant either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Needs = list[tuple[str, str]]
REGION = "us-east-1"
ACCOUNT = "123456789012"

# S3 operations whose IAM action differs from the operation's name.
_S3_OBJECT = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "GetObjectAttributes": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "DeleteObject": "s3:DeleteObject",
    "CopyObject": "s3:PutObject",
}
_S3_BUCKET = {
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "GetBucketLocation": "s3:GetBucketLocation",
    "GetBucketEncryption": "s3:GetEncryptionConfiguration",
}
_KMS_FOR_WRITE = {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "CopyObject"}
_KMS_FOR_READ = {"GetObject", "CopyObject"}


def table_arn(name: str) -> str:
    if name.startswith("arn:"):
        return name
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"


def s3_needs(operation: str, params: dict[str, Any], bucket_key: Callable[[str], str | None]) -> Needs:
    bucket = params.get("Bucket", "")
    if operation in _S3_BUCKET:
        return [(_S3_BUCKET[operation], f"arn:aws:s3:::{bucket}")]
    if operation == "DeleteObjects":
        keys = [o["Key"] for o in params.get("Delete", {}).get("Objects", [])]
        return [("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{k}") for k in keys]
    action = _S3_OBJECT.get(operation)
    if action is None:
        return [(f"s3:{operation}", f"arn:aws:s3:::{bucket}")]
    if operation == "GetObject" and params.get("VersionId"):
        action = "s3:GetObjectVersion"
    needs = [(action, f"arn:aws:s3:::{bucket}/{params.get('Key', '')}")]
    key = bucket_key(bucket)
    if key and operation in _KMS_FOR_WRITE:
        needs.append(("kms:GenerateDataKey", key))
    if key and operation in _KMS_FOR_READ and operation != "CopyObject":
        needs.append(("kms:Decrypt", key))
    if operation == "CopyObject":
        source = params.get("CopySource")
        src = f"{source['Bucket']}/{source['Key']}" if isinstance(source, dict) else str(source).lstrip("/")
        needs.append(("s3:GetObject", f"arn:aws:s3:::{src.split('?')[0]}"))
        src_key = bucket_key(src.split("/", 1)[0])
        if src_key:
            needs.append(("kms:Decrypt", src_key))
    return needs


def dynamodb_needs(operation: str, params: dict[str, Any], kms_arn: Callable[[str], str]) -> Needs:  # noqa: C901
    action = f"dynamodb:{operation}"
    if operation in ("BatchWriteItem", "BatchGetItem"):
        return [(action, table_arn(t)) for t in params.get("RequestItems", {})]
    if operation in ("DescribeBackup", "DeleteBackup"):
        return [(action, params["BackupArn"])]
    if operation in ("TagResource", "UntagResource", "ListTagsOfResource"):
        return [(action, params["ResourceArn"])]
    if operation == "RestoreTableToPointInTime":
        source = params.get("SourceTableArn") or params.get("SourceTableName", "")
        return [(action, table_arn(source)), (action, table_arn(params["TargetTableName"]))]
    if operation == "RestoreTableFromBackup":
        return [(action, params["BackupArn"]), (action, table_arn(params["TargetTableName"]))]
    if operation == "ImportTable":
        return _import_needs(params)
    if operation == "DescribeImport":
        return [(action, params["ImportArn"])]
    if operation == "ExportTableToPointInTime":
        return [(action, table_arn(params["TableArn"]))]
    if "StreamArn" in params:
        return [(action, params["StreamArn"])]
    if operation == "GetRecords":  # authorized on the stream the iterator reads ("<stream ARN>|1|...")
        return [(action, str(params.get("ShardIterator", "*")).split("|", 1)[0])]
    if "TableName" not in params:
        return [(action, "*")]
    arn = table_arn(params["TableName"])
    if params.get("IndexName"):
        arn += f"/index/{params['IndexName']}"
    needs = [(action, arn)]
    sse = params.get("SSESpecification") or {}
    if operation in ("CreateTable", "UpdateTable") and sse.get("KMSMasterKeyId"):
        key = kms_arn(sse["KMSMasterKeyId"])
        needs += [("kms:DescribeKey", key), ("kms:CreateGrant", key)]
    return needs


#: What ImportTable does as its caller (AWS checks these at the call): log the items it could not import.
IMPORT_LOGS = (
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:DescribeLogGroups",
    "logs:DescribeLogStreams",
    "logs:PutLogEvents",
    "logs:PutRetentionPolicy",
)


def _import_needs(params: dict[str, Any]) -> Needs:
    """ImportTable: the new table, reading the source prefix as the caller, and its CloudWatch log group."""
    source = params["S3BucketSource"]
    bucket, prefix = source["S3Bucket"], source.get("S3KeyPrefix", "")
    group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws-dynamodb/imports:*"
    return [
        ("dynamodb:ImportTable", table_arn(params["TableCreationParameters"]["TableName"])),
        ("s3:ListBucket", f"arn:aws:s3:::{bucket}"),
        ("s3:GetObject", f"arn:aws:s3:::{bucket}/{prefix}*"),
        *((action, group) for action in IMPORT_LOGS),
    ]


def needs_of(
    service: str,
    operation: str,
    params: dict[str, Any],
    *,
    bucket_key: Callable[[str], str | None],
    kms_arn: Callable[[str], str],
) -> Needs:
    """The (action, resource ARN) pairs AWS authorizes for ``operation`` of ``service`` with ``params``."""
    if service == "s3":
        return s3_needs(operation, params, bucket_key)
    if service == "dynamodb":
        return dynamodb_needs(operation, params, kms_arn)
    if service == "lambda" and operation in ("Invoke", "InvokeAsync"):
        name = params["FunctionName"]
        arn = name if name.startswith("arn:") else f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        return [("lambda:InvokeFunction", arn)]
    if service == "states":
        arn = params.get("stateMachineArn") or params.get("executionArn") or params.get("mapRunArn") or "*"
        return [(f"states:{operation}", arn)]
    if service == "kms":
        return [(f"kms:{operation}", kms_arn(params.get("KeyId", "*")))]
    return [(f"{service}:{operation}", "*")]
