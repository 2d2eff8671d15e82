"""Every snippet of docs/helpers.md runs here and does what the page says."""

import re
from datetime import timedelta
from pathlib import Path

import pytest

from casebook.examples import helpers_tour as tour
from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert, run

ROOT = Path(__file__).parents[2]


def test_series_resampled_to_five_minutes():
    series = tour.latency_series()
    assert len(series) == 12 and series.step == 300.0
    assert all(v < 150 for v in series.values[:8]) and all(v > 280 for v in series.values[8:])


def test_onset_of_the_latency_step():
    onset = tour.latency_onset()
    assert onset is not None
    assert onset.at == tour.minutes(40) and onset.direction == "up"
    assert onset.ratio == pytest.approx(2.5, abs=0.1) and onset.ended is None


def test_deploy_comparison():
    result = tour.deploy_comparison()
    assert result.direction == "up" and result.significant
    assert result.relative_change == pytest.approx(1.9, abs=0.05)


def test_error_rate_drill_down():
    result = tour.error_rate_drill_down()
    assert result.names == ["region=eu&version=v2"]
    assert tour.slice_label() == "region=eu&version=v2"


def test_cache_leads_latency():
    result = tour.cache_leads_latency()
    assert result.leader == "cause" and result.lag == timedelta(minutes=3)


def test_suspect_changes():
    ranked = tour.suspect_changes()
    assert [e.summary for e in ranked] == ["checkout v2.3.1", "new_pricing on", "raise timeout"]


def test_new_log_templates():
    changes = tour.new_log_templates()
    assert changes[0].status == "new"
    assert changes[0].template == "payment <UUID> failed: upstream timeout after <NUM> ms"
    assert changes[1].status == "steady"


def test_error_and_latency_origin():
    result = tour.error_and_latency_origin()
    assert result.error_origin.service == result.latency_origin.service == "orders-db"
    assert result.latency_origin.added_ms == pytest.approx(235.0)


def test_requests_by_account():
    result = tour.requests_by_account()
    assert result.top[0].key == "acct-big" and result.top[0].share == pytest.approx(0.9)
    assert result.score > 0.75


def test_signup_burst():
    found = tour.signup_burst()
    assert found is not None and found.count == 60 and found.p_value < 1e-20
    assert found.keys[0] == "user-60"


def test_latency_shift_analyzer_through_the_testing_kit():
    alert = make_alert("HighLatency", service="checkout")
    rows = [
        {
            "ts": DEFAULT_START - timedelta(minutes=m),
            "name": "latency_p95_ms",
            "service": "checkout",
            "value": 400.0 if m <= 20 else 100.0 + (m % 5),
        }
        for m in range(1, 120)
    ]
    outcome = run(tour.latency_shift, alert=alert, store=TinyStore().add("metrics", rows))
    finding = outcome.finding
    assert finding is not None
    assert finding.title == "checkout p95 latency rose 3.9x"
    assert finding.summary == "p95 latency went from 102 ms to 400 ms at 11:40."
    assert finding.onset == DEFAULT_START - timedelta(minutes=20)
    assert len(finding.evidence[0].series["p95_ms"]) == 60  # the window: 11:00 to 12:00


def test_docs_quote_the_tour_verbatim():
    doc = (ROOT / "docs" / "helpers.md").read_text()
    source = (ROOT / "examples" / "helpers_tour.py").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    assert len(blocks) >= 12, "docs/helpers.md lost its snippets"
    for block in blocks:
        assert block.startswith("# from examples/helpers_tour.py"), block[:60]
        body = block.split("\n", 1)[1].rstrip()
        for part in body.split("\n\n\n"):
            assert part in source, f"docs/helpers.md quotes code not in the tour: {part[:60]}"
