from datetime import timedelta

from casebook.analyzers.slices import kpi_drilldown, kpi_slice
from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert, run


def kpi_rows():
    rows = []
    for minutes_before in range(0, 6):
        ts = DEFAULT_START - timedelta(minutes=minutes_before)
        for cdn in ("a", "b", "c"):
            for device in ("ios", "android"):
                failing = minutes_before == 0 and cdn == "b"
                rows.append({"ts": ts, "cdn": cdn, "device": device, "cnt": 1000.0,
                             "value": 400.0 if failing else 990.0 - 3 * minutes_before})
    return rows


def test_the_slice_that_explains_the_drop_is_found():
    alert = make_alert("KpiTotalAnomaly", annotations={"table": "kpi",
                                                       "dimensions": "cdn,device"})
    store = TinyStore().add("kpi", kpi_rows())
    outcome = run(kpi_drilldown, alert=alert, store=store)
    assert outcome.status == "found"
    assert outcome.finding.slices == ["cdn=b"]
    cause = run(kpi_slice, alert=alert, store=store, params={"slice": "cdn=b"},
                upstream={"kpi_drilldown": outcome.finding})
    assert cause.finding.entities[0].kind == "slice"
    assert cause.finding.entities[0].name == "cdn=b"


def test_alerts_without_a_table_do_not_apply():
    from casebook.sdk.analyzer import spec_of

    assert not spec_of(kpi_drilldown).applies_to(make_alert("HighErrorRate", service="api"))
