"""Alert-time pulls: the sources file, and a source that fails becoming a note, not a failure.
(The pull from a real Prometheus is in test_live_telemetry_end_to_end.py.)"""

import socket
from datetime import UTC, datetime

import pytest

from casebook.executor.errors import UserError
from casebook.executor.pipeline import build_registry, investigate
from casebook.executor.results import ResultsStore
from casebook.executor.runtime.local import LocalRuntime
from casebook.executor.sources import PrometheusSource, SourceQuery, load_sources
from casebook.executor.telemetry_store import TelemetryStore
from casebook.sdk.testing import make_alert


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the probe closes


def test_the_sources_file_is_checked(tmp_path):
    good = tmp_path / "sources.yaml"
    good.write_text("sources:\n  - name: prom\n    url: http://prometheus:9090\n"
                    "    queries:\n      - query: rate(http_requests_total[1m])\n"
                    "        name: http_requests_per_s\n")
    assert load_sources(good) == [PrometheusSource(
        name="prom", url="http://prometheus:9090",
        queries=[SourceQuery(query="rate(http_requests_total[1m])", name="http_requests_per_s")])]
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - name: prom\n    url: http://prometheus:9090\n    queries: []\n"
                   "    step: 15\n")
    with pytest.raises(UserError) as raised:
        load_sources(bad)
    assert str(raised.value) == (
        f"--sources {bad}: sources[0].queries: list should have at least 1 item after "
        "validation, not 0; sources[0].step: extra inputs are not permitted")
    (tmp_path / "none.yaml").write_text("prometheus: {}\n")
    with pytest.raises(UserError, match="expected a YAML mapping with a `sources:` list"):
        load_sources(tmp_path / "none.yaml")


def test_a_source_that_does_not_answer_is_a_note_not_a_failure(tmp_path):
    store = tmp_path / "store"
    TelemetryStore.open(store, create=True)
    source = PrometheusSource(name="prom", url=f"http://127.0.0.1:{closed_port()}",
                              queries=[SourceQuery(query="up")], timeout_s=2)
    alert = make_alert("CheckoutDown", service="checkout",
                       starts_at=datetime.now(UTC))
    with ResultsStore(tmp_path / "results.duckdb") as results:
        record = investigate(alert, telemetry=store, registry=build_registry(),
                             runtime=LocalRuntime(), results=results, sources=[source],
                             narrate=False)
        stored = results.get(record.id)
    assert record.status == "done"
    [pulled] = stored.sources
    assert (pulled["name"], pulled["ok"], pulled["rows"]) == ("prom", False, 0)
    assert pulled["error"].startswith("query 'up': ConnectError")
    assert any(n.startswith("Source prom did not answer in full (query 'up': ConnectError")
               and n.endswith("the analyzers read what the store held") for n in stored.notes)
