"""S3 lifecycle rules carried out as S3 carries them out, which moto does not (it only stores them).

:meth:`StrictLifecycle.apply` reads the bucket's lifecycle configuration through the S3 API (the one the
stack put there from template.yaml) and acts on what is due at ``now``, as S3's daily lifecycle run does:

- a rule applies to the keys its filter matches (``Prefix``, ``Tag``, ``And`` of prefix, tags and sizes,
  ``ObjectSizeGreaterThan``/``LessThan``; the legacy rule-level ``Prefix``), and only when ``Enabled``;
- ``Expiration`` ``Days``: a current version is due at midnight UTC after ``LastModified`` + N days (S3
  rounds up to the next midnight); in a versioned bucket expiring adds a delete marker (the version
  becomes noncurrent), in an unversioned one deletes the object; ``Date``: due from that date;
- ``NoncurrentVersionExpiration`` ``NoncurrentDays``: a noncurrent version is removed for good at midnight
  after it became noncurrent (its successor's ``LastModified``) + N days; ``NewerNoncurrentVersions``
  keeps that many newer noncurrent versions;
- ``Expiration`` ``ExpiredObjectDeleteMarker``: a delete marker with no versions left behind it is removed;
- ``AbortIncompleteMultipartUpload`` ``DaysAfterInitiation``: an upload not completed by midnight after
  initiation + N days is aborted and its parts deleted.

Transitions change a storage class, not what exists: they are not modelled.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from botocore.exceptions import ClientError


def due(start: dt.datetime, days: int) -> dt.datetime:
    """Midnight UTC at or after ``start`` + ``days`` days: when S3 acts on a rule of ``days``."""
    moment = start.astimezone(dt.UTC) + dt.timedelta(days=days)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight if midnight == moment else midnight + dt.timedelta(days=1)


@dataclass
class LifecycleReport:
    """What one run of the rules did, counted per action, and the keys it touched."""

    expired: list[str] = field(default_factory=list)  # current versions expired (delete marker or deleted)
    noncurrent_removed: list[tuple[str, str]] = field(default_factory=list)  # (key, version id)
    markers_removed: list[str] = field(default_factory=list)
    uploads_aborted: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "expired": len(self.expired),
            "noncurrentRemoved": len(self.noncurrent_removed),
            "deleteMarkersRemoved": len(self.markers_removed),
            "uploadsAborted": len(self.uploads_aborted),
        }


class StrictLifecycle:
    """The lifecycle of one bucket, run on demand (a soak calls :meth:`apply` at each simulated midnight)."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket

    def rules(self) -> list[dict[str, Any]]:
        try:
            return list(self.s3.get_bucket_lifecycle_configuration(Bucket=self.bucket)["Rules"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchLifecycleConfiguration":
                return []
            raise

    def apply(self, now: dt.datetime) -> LifecycleReport:
        """Carry out every action due at ``now``; expiry first, then noncurrent versions, markers, uploads."""
        report = LifecycleReport()
        rules = [r for r in self.rules() if r.get("Status") == "Enabled"]
        versioned = self.s3.get_bucket_versioning(Bucket=self.bucket).get("Status") in ("Enabled", "Suspended")
        for rule in rules:
            self._expire_current(rule, now, versioned, report)
        for rule in rules:
            self._expire_noncurrent(rule, now, report)
        for rule in rules:
            if rule.get("Expiration", {}).get("ExpiredObjectDeleteMarker"):
                self._remove_lone_markers(rule, report)
        for rule in rules:
            self._abort_uploads(rule, now, report)
        return report

    # -- filters
    def _matches(self, rule: dict[str, Any], key: str, size: int | None) -> bool:
        prefix, tags, bigger, smaller = _filter(rule)
        if not key.startswith(prefix):
            return False
        if bigger is not None and (size is None or size <= bigger):
            return False
        if smaller is not None and (size is None or size >= smaller):
            return False
        if tags:
            have = self.s3.get_object_tagging(Bucket=self.bucket, Key=key)["TagSet"]
            return all({"Key": k, "Value": v} in have for k, v in tags.items())
        return True

    def _versions(self, prefix: str) -> dict[str, list[dict[str, Any]]]:
        """Per key: its versions newest first (delete markers among them, ``marker`` set), as listed."""
        per_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=prefix):
            for version in page.get("Versions", []):
                per_key[version["Key"]].append({**version, "marker": False})
            for marker in page.get("DeleteMarkers", []):
                per_key[marker["Key"]].append({**marker, "marker": True})
        for versions in per_key.values():
            versions.sort(key=lambda v: (v["LastModified"], v.get("IsLatest", False)), reverse=True)
        return per_key

    # -- actions
    def _expire_current(self, rule: dict[str, Any], now: dt.datetime, versioned: bool, report: LifecycleReport) -> None:
        expiration = rule.get("Expiration", {})
        if "Days" not in expiration and "Date" not in expiration:
            return
        per_key = self._versions(_filter(rule)[0])
        for key, versions in per_key.items():
            current = versions[0]
            if current["marker"] or not self._matches(rule, key, current.get("Size")):
                continue
            when = due(current["LastModified"], expiration["Days"]) if "Days" in expiration else expiration["Date"]
            if when > now:
                continue
            if versioned:
                self.s3.delete_object(Bucket=self.bucket, Key=key)  # a delete marker: the version is noncurrent
            else:
                self.s3.delete_object(Bucket=self.bucket, Key=key, VersionId=current["VersionId"])
            report.expired.append(key)

    def _expire_noncurrent(self, rule: dict[str, Any], now: dt.datetime, report: LifecycleReport) -> None:
        action = rule.get("NoncurrentVersionExpiration")
        if not action or "NoncurrentDays" not in action:
            return
        keep_newer = int(action.get("NewerNoncurrentVersions", 0))
        per_key = self._versions(_filter(rule)[0])
        for key, versions in per_key.items():
            kept = 0
            for newer, version in itertools.pairwise(versions):
                if version["marker"]:
                    continue  # noncurrent delete markers: removed by S3 with the versions (not billed)
                if not self._matches(rule, key, version.get("Size")):
                    continue
                if kept < keep_newer:
                    kept += 1
                    continue
                if due(newer["LastModified"], action["NoncurrentDays"]) <= now:
                    self.s3.delete_object(Bucket=self.bucket, Key=key, VersionId=version["VersionId"])
                    report.noncurrent_removed.append((key, version["VersionId"]))

    def _remove_lone_markers(self, rule: dict[str, Any], report: LifecycleReport) -> None:
        per_key = self._versions(_filter(rule)[0])
        for key, versions in per_key.items():
            if len(versions) == 1 and versions[0]["marker"] and self._matches(rule, key, None):
                self.s3.delete_object(Bucket=self.bucket, Key=key, VersionId=versions[0]["VersionId"])
                report.markers_removed.append(key)

    def _abort_uploads(self, rule: dict[str, Any], now: dt.datetime, report: LifecycleReport) -> None:
        action = rule.get("AbortIncompleteMultipartUpload")
        if not action:
            return
        prefix = _filter(rule)[0]
        for page in self.s3.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                if due(upload["Initiated"], action["DaysAfterInitiation"]) <= now:
                    self.s3.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                    report.uploads_aborted.append(upload["Key"])


def _filter(rule: dict[str, Any]) -> tuple[str, dict[str, str], int | None, int | None]:
    """A rule's filter as (prefix, tags, size greater than, size less than)."""
    if "Prefix" in rule:  # the legacy form, rule-level
        return rule["Prefix"], {}, None, None
    spec = rule.get("Filter", {})
    spec = spec.get("And", spec)
    tags = {t["Key"]: t["Value"] for t in spec.get("Tags", [])}
    if "Tag" in spec:
        tags[spec["Tag"]["Key"]] = spec["Tag"]["Value"]
    return spec.get("Prefix", ""), tags, spec.get("ObjectSizeGreaterThan"), spec.get("ObjectSizeLessThan")


def api_rules(cfn_rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """CloudFormation's ``LifecycleConfiguration.Rules`` as PutBucketLifecycleConfiguration takes them."""
    out = []
    for rule in cfn_rules:
        api: dict[str, Any] = {"ID": rule.get("Id", ""), "Status": rule["Status"]}
        conditions: dict[str, Any] = {"Prefix": rule.get("Prefix", "")}
        tags = [{"Key": t["Key"], "Value": t["Value"]} for t in rule.get("TagFilters", [])]
        for size in ("ObjectSizeGreaterThan", "ObjectSizeLessThan"):
            if size in rule:
                conditions[size] = int(rule[size])
        if tags or len(conditions) > 1:
            api["Filter"] = {"And": {**conditions, **({"Tags": tags} if tags else {})}}
        else:
            api["Filter"] = conditions
        if "ExpirationInDays" in rule:
            api["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
        if "ExpirationDate" in rule:
            api["Expiration"] = {"Date": rule["ExpirationDate"]}
        if rule.get("ExpiredObjectDeleteMarker"):
            api["Expiration"] = {"ExpiredObjectDeleteMarker": True}
        noncurrent = rule.get("NoncurrentVersionExpiration")
        if noncurrent is None and "NoncurrentVersionExpirationInDays" in rule:
            noncurrent = {"NoncurrentDays": rule["NoncurrentVersionExpirationInDays"]}
        if noncurrent:
            api["NoncurrentVersionExpiration"] = {k: int(v) for k, v in noncurrent.items()}
        if "AbortIncompleteMultipartUpload" in rule:
            days = int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
            api["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
        out.append(api)
    return out


def configure_bucket(s3: Any, bucket: str, props: dict[str, Any]) -> None:
    """A template bucket's versioning and lifecycle rules (resolved CloudFormation properties), put on ``bucket``."""
    status = props.get("VersioningConfiguration", {}).get("Status")
    if status:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})
    rules = props.get("LifecycleConfiguration", {}).get("Rules")
    if rules:
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": api_rules(rules)})


def lifecycle_patches() -> list[Any]:
    """moto answers every multipart upload's ``Initiated`` as 2010-11-10: stamp each with its real start."""
    from moto.core.utils import utcnow
    from moto.s3 import responses
    from moto.s3.models import FakeMultipart

    real_init = FakeMultipart.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        self.initiated = utcnow()

    stamped = responses.S3_ALL_MULTIPARTS.replace(
        "<Initiated>2010-11-10T20:48:33.000Z</Initiated>",
        '<Initiated>{{ upload.initiated.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] }}Z</Initiated>',
    )
    if stamped == responses.S3_ALL_MULTIPARTS:
        raise RuntimeError("moto's ListMultipartUploads template changed: devkit.strict.lifecycle cannot stamp it")
    return [
        mock.patch.object(FakeMultipart, "__init__", init),
        mock.patch.object(responses, "S3_ALL_MULTIPARTS", stamped),
    ]
