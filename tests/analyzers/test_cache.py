"""Cache loss: dated by the cache's restart or its first low sample, not by the minute its
per-minute average crossed the line, so it precedes the database trouble it causes."""

from datetime import timedelta

from casebook.analyzers.cache import cache_collapse
from casebook.analyzers.capacity import TrafficSurge
from casebook.sdk import Entity
from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert, run

ONSET = DEFAULT_START
ALERT = make_alert("CheckoutLatency", service="checkout", starts_at=ONSET + timedelta(minutes=5))


def hit_ratios(low: float = 0.05) -> list[dict]:
    """kv-cache hits 90% every minute; the sample after its restart (12:00:20) covers most of
    a minute of misses (0.4), then it hits `low`."""
    rows = []
    for minute in range(-40, 10):
        value = 0.9 if minute <= 0 else 0.4 if minute == 1 else low
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


def surge(ratio: float) -> TrafficSurge:
    """Traffic to web up `ratio` times from ten minutes before the cache's dip."""
    return TrafficSurge(
        title=f"Traffic to web up {ratio}x", summary="", severity="warning", confidence=0.55,
        category="capacity", entities=[Entity.service("web")],
        onset=ONSET - timedelta(minutes=10), service="web", baseline_per_min=100.0,
        level_per_min=100.0 * ratio, ratio=ratio, new_client_share=0.0, new_clients=0)


def test_a_cache_emptied_deeper_than_new_traffic_could_is_not_the_surges_effect():
    def after(ratio: float, low: float):
        return run(cache_collapse, alert=ALERT, store=TinyStore().add("metrics", hit_ratios(low)),
                   params={"cache": "kv-cache"},
                   upstream={"traffic_surge": surge(ratio), "compute_saturation": None}).finding

    # 1.5x the requests, all of them new keys, bring 90% hits down to 60% at most, not 5%.
    assert after(1.5, low=0.05).title == "kv-cache hit ratio collapsed"
    # 3x the requests can bring it to 30%: the dip follows the traffic.
    assert after(3.0, low=0.3) is None
