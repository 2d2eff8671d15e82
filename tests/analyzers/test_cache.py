"""Cache loss: dated by the cache's restart or its first low sample, not by the minute its
per-minute average crossed the line, so it precedes the database trouble it causes."""

from datetime import timedelta

from casebook.analyzers.cache import cache_collapse
from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert, run

ONSET = DEFAULT_START
ALERT = make_alert("CheckoutLatency", service="checkout", starts_at=ONSET + timedelta(minutes=5))


def hit_ratios() -> list[dict]:
    """kv-cache hits 90% every minute; the sample after its restart (12:00:20) covers most of
    a minute of misses (0.4), then it hits 5%."""
    rows = []
    for minute in range(-40, 10):
        value = 0.9 if minute <= 0 else 0.4 if minute == 1 else 0.05
        rows.append({"ts": ONSET + timedelta(minutes=minute), "name": "cache_hit_ratio",
                     "service": "kv-cache", "value": value, "labels": {"pod": "kv-cache-0"}})
    return rows


def collapse(store: TinyStore):
    return run(cache_collapse, alert=ALERT, store=store, params={"cache": "kv-cache"},
               upstream={"traffic_surge": None, "compute_saturation": None}).finding


def test_the_cache_restart_dates_the_loss():
    restart = {"ts": ONSET + timedelta(seconds=20), "kind": "restart", "service": "kv-cache",
               "summary": "container kv-cache in pod kv-cache-0 restarted (OOMKilled)"}
    finding = collapse(TinyStore().add("metrics", hit_ratios()).add("events", [restart]))
    assert finding.onset == ONSET + timedelta(seconds=20)
    assert "cpu_contention" in finding.explains  # the database's CPU burns on the misses


def test_without_a_restart_the_loss_began_after_the_last_good_sample():
    finding = collapse(TinyStore().add("metrics", hit_ratios()))
    assert finding.onset == ONSET
    assert finding.summary.startswith("kv-cache hit ratio fell from 0.90 to 0.05 at 12:00 UTC")
