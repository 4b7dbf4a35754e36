"""Four simulated nights on the local stack, every mechanism of ``make soak`` once (tests/soak/run.py):
a killed segment, a table that fails two nights running, a throttled table, a table created and one
deleted, the bucket's lifecycle rules expiring the first night, the alarms evaluated over the metrics."""

from __future__ import annotations

import datetime as dt

from tests.soak.report import soak
from tests.soak.run import ci_config


def test_four_nights_restore_expire_and_alarm_as_they_should():
    figures, problems = soak(ci_config())
    assert problems == []
    assert figures["statuses"] == {"SUCCEEDED": 2, "FAILED": 2}
    assert figures["retention"]["kept"] == [2, 3, 4] and figures["retention"]["expired"] == [1]
    assert figures["orphans"] == 0 and figures["lifecycle"]["expired"] > 0
    assert figures["retention"]["currentBytes"] == figures["retention"]["keptNightsBytes"] > 0
    # kept nights 2-4: Granules; Files on night 4 (it fails on 2 and 3); Pdrs (made before 2); Rules (deleted before 3)
    assert figures["restores"] == 3 + 2 + 3
    assert figures["alarms"]["BackupExecutionsFailedAlarm"] == ["2026-11-02", "2026-11-03"]
    assert figures["alarms"]["StaleBackupAlarm"] == [dt.date(2026, 11, 3).isoformat()]  # Files: 48 h old
