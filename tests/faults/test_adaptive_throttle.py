"""The adaptive limiter under 30 % injected throttling: a rate-limited backup and restore lose no item.

The same run as ``python -m bench.throttle`` (which times it on dynalite), here on moto and small.
"""

from __future__ import annotations

import boto3
from botocore.config import Config

from bench.throttle import under_throttling
from devkit import sample


def test_rate_limited_backup_and_restore_under_30_percent_throttling_lose_no_item(ddb, tmp_path):
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 400})
    result = under_throttling(
        # botocore does not retry: every throttle reaches our backoff, the limiter and the dead-letter accounting
        lambda: boto3.client("dynamodb", region_name="us-east-1", config=Config(retries={"total_max_attempts": 1})),
        "mystack-GranulesTable",
        tmp_path / "granules.json",
        (400.0, 2000.0),
    )
    assert result["items"] == 400
    assert result["fileMatches"] and result["targetMatches"], result
    for run in result["runs"]:
        # 30 % of the calls, spread evenly (every retry is a call too)
        assert run["throttlesInjected"] == int(run["requests"] * 0.3) > 0, run
