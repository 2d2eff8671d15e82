"""Disks: a volume that fills up, or a service that logs "no space left on device"."""

from datetime import timedelta

from casebook.analyzers.disks import disk_full, disk_services
from casebook.sdk.testing import DEFAULT_START, TinyStore, default_window, log, make_alert, run

ONSET = DEFAULT_START
ALERT = make_alert("WritesFailing", service="api", starts_at=ONSET)


def volumes(fills: bool) -> TinyStore:
    rows = [{"ts": ONSET + timedelta(minutes=m), "name": "pvc_disk_usage_ratio", "service": "db",
             "value": min(1.0, 0.90 + 0.01 * (m + 10)) if fills and m >= -10 else 0.90,
             "labels": {"device": "/var/lib/db"}} for m in range(-50, 5)]
    lines = [log(ONSET + timedelta(seconds=s), "db", "error",
                 "could not write block: No space left on device") for s in (5, 20, 40)]
    return TinyStore().add("metrics", rows).add("logs", lines if fills else [])


def test_a_volume_that_reaches_its_capacity_is_a_full_disk():
    store = volumes(fills=True)
    assert disk_services(store.telemetry(default_window(ALERT))) == ["db"]
    finding = run(disk_full, alert=ALERT, store=store, params={"service": "db"}).finding
    assert finding.title == "Disk full on db (/var/lib/db)"
    assert finding.summary == (
        "pvc_disk_usage_ratio of /var/lib/db rose from 90% to 100% at 11:55 UTC; 3 log line(s) "
        "like \"could not write block: No space left on device\".")
    assert finding.category == "resource" and finding.confidence == 0.9


def test_a_volume_that_stays_at_90_percent_is_not_full():
    store = volumes(fills=False)
    assert run(disk_full, alert=ALERT, store=store, params={"service": "db"}).finding is None
