"""Live telemetry end to end, with real Prometheus and Alertmanager (Debian packages): Prometheus
scrapes a tiny exporter, either remote-writes to `casebook serve` (push) or is queried by it at
alert time (pull); its alert rule fires through Alertmanager, and the investigation's findings
cite the samples that came from Prometheus. All on 127.0.0.1."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from casebook.executor.sources import load_sources
from casebook.executor.sources.prometheus import pull_sources
from casebook.executor.telemetry_store import TelemetryStore
from casebook.sdk.models import TimeWindow

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (Path("/usr/bin/prometheus").exists()
             and Path("/usr/bin/prometheus-alertmanager").exists()),
        reason="needs Debian's prometheus and prometheus-alertmanager (make system-deps)",
    ),
]

TOKEN = "live-token"
REMOTE_WRITE = Path(__file__).parents[2] / "examples" / "telemetry" / "prometheus-remote-write.yml"
BASELINE_SAMPLES = 40  # at a 500 ms scrape interval: 20 s of normal CPU before the incident


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.2)


def answers(url: str, **options) -> bool:
    try:
        return httpx.get(url, timeout=1, **options).status_code == 200
    except httpx.HTTPError:
        return False


class Process:
    """A service in a subprocess whose output goes to a log file in the test's folder."""

    def __init__(self, tmp: Path, name: str, command: list[str], env: dict | None = None):
        self.log_path = tmp / f"{name}.log"
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **(env or {})})

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def serve(tmp: Path, store: Path, port: int, *extra: str) -> Process:
    served = Process(tmp, f"serve-{port}", [
        sys.executable, "-c", "from casebook.executor.cli import main; main()", "serve",
        "--telemetry", str(store), "--db", str(tmp / "results.duckdb"), "--port", str(port),
        "--local", "--token", TOKEN, *extra])
    wait_for(lambda: served.process.poll() is None and answers(
        f"http://127.0.0.1:{port}/healthz") or served.process.poll() is not None,
        60, "casebook serve answering /healthz")
    assert served.process.poll() is None, served.log_path.read_text()
    return served


def prometheus_config(exporter: int, alertmanager: int, serve_port: int, push: bool) -> str:
    config = {
        "global": {"scrape_interval": "500ms", "evaluation_interval": "500ms"},
        "scrape_configs": [{"job_name": "checkout",
                            "static_configs": [{"targets": [f"127.0.0.1:{exporter}"]}]}],
        "rule_files": ["rules.yml"],
        "alerting": {"alertmanagers": [
            {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager}"]}]}]},
    }
    if push:  # the block docs/telemetry.md gives, here with a short batch deadline
        [block] = yaml.safe_load(REMOTE_WRITE.read_text())["remote_write"]
        block["url"] = block["url"].replace("casebook:9095", f"127.0.0.1:{serve_port}")
        block["authorization"]["credentials"] = TOKEN
        block["queue_config"] = {"batch_send_deadline": "500ms", "min_backoff": "100ms"}
        config["remote_write"] = [block]
    return json.dumps(config)  # YAML reads JSON


RULES = json.dumps({"groups": [{"name": "checkout", "rules": [{
    "alert": "CheckoutCpuSaturated",
    "expr": 'cpu_usage_ratio{service="checkout"} > 0.9',
    "labels": {"severity": "page"},
    "annotations": {"summary": "checkout CPU above 90%"},
}]}]})


def alertmanager_config(serve_port: int) -> str:
    return json.dumps({
        "route": {"receiver": "casebook", "group_by": ["alertname"], "group_wait": "2s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "casebook", "webhook_configs": [{
            "url": f"http://127.0.0.1:{serve_port}/webhook/alertmanager",
            "http_config": {"authorization": {"type": "Bearer", "credentials": TOKEN}}}]}],
    })


def cpu_rows(store: Path) -> int:
    with TelemetryStore.open(store).connect() as con:
        return con.execute("select count(*) from raw.metrics where name = 'cpu_usage_ratio' "
                           "and service = 'checkout'").fetchone()[0]


@pytest.mark.parametrize("mode", ["push", "pull"])
def test_a_prometheus_alert_is_investigated_from_prometheus_samples(tmp_path, mode):
    store = tmp_path / "store"
    TelemetryStore.open(store, create=True)
    registry = CollectorRegistry()
    cpu = Gauge("cpu_usage_ratio", "CPU used, as a share of the limit", ["service", "pod"],
                registry=registry)
    cpu.labels("checkout", "checkout-1").set(0.1)
    exporter_port = free_port()
    exporter, _ = start_http_server(exporter_port, addr="127.0.0.1", registry=registry)
    serve_port, am_port, prom_port = free_port(), free_port(), free_port()
    prom_url = f"http://127.0.0.1:{prom_port}"
    extra = []
    if mode == "pull":
        sources = tmp_path / "sources.yaml"
        sources.write_text(json.dumps({"sources": [{
            "name": "prometheus", "url": prom_url, "step_s": 0.5,
            "queries": [{"query": "cpu_usage_ratio"}]}]}))
        extra = ["--sources", str(sources)]
    (tmp_path / "alertmanager.yml").write_text(alertmanager_config(serve_port))
    (tmp_path / "prometheus.yml").write_text(
        prometheus_config(exporter_port, am_port, serve_port, push=mode == "push"))
    (tmp_path / "rules.yml").write_text(RULES)
    started: list[Process] = []
    try:
        started.append(serve(tmp_path, store, serve_port, *extra))
        started.append(Process(tmp_path, "alertmanager", [
            "/usr/bin/prometheus-alertmanager", f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=", "--log.level=warn"]))
        started.append(Process(tmp_path, "prometheus", [
            "/usr/bin/prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"]))
        wait_for(lambda: answers(f"{prom_url}/-/ready"), 30, "Prometheus ready")

        def scraped() -> int:
            if mode == "push":
                return cpu_rows(store)
            found = httpx.get(f"{prom_url}/api/v1/query",
                              params={"query": "count_over_time(cpu_usage_ratio[1m])"}).json()
            result = found["data"]["result"]
            return int(float(result[0]["value"][1])) if result else 0

        wait_for(lambda: scraped() >= BASELINE_SAMPLES, 40, "a baseline of normal CPU samples")
        cpu.labels("checkout", "checkout-1").set(0.97)  # the incident

        def investigated():
            listing = httpx.get(f"http://127.0.0.1:{serve_port}/api/investigations",
                                headers={"Authorization": f"Bearer {TOKEN}"}).json()
            done = [r for r in listing["investigations"] if r["status"] == "done"]
            return done and done[0]

        row = wait_for(investigated, 60, "the Prometheus alert investigated")
        record = httpx.get(f"http://127.0.0.1:{serve_port}/api/investigations/{row['id']}",
                           headers={"Authorization": f"Bearer {TOKEN}"}).json()
        if mode == "pull":
            # A second alert over the same window pulls only what Prometheus scraped since.
            window = TimeWindow(**record["window"])
            [again] = pull_sources(load_sources(sources), window, TelemetryStore.open(store))
    finally:
        for process in reversed(started):
            process.stop()
        exporter.shutdown()

    assert record["alert"]["name"] == "CheckoutCpuSaturated"
    [shortage] = [f for f in record["findings"] if f["analyzer"] == "cpu_contention"]
    assert shortage["title"] == "checkout short of CPU (checkout-1)"
    assert shortage["summary"].startswith("cpu_usage_ratio of checkout-1 rose from a usual 0.1 "
                                          "to 0.97 (97% of its limit)")
    [evidence] = shortage["evidence"]
    assert evidence["rows"][0][:2] == ["checkout", "checkout-1"]
    assert record["causes"][0]["entity"] == {"kind": "service", "name": "checkout"}
    if mode == "pull":
        [source] = record["sources"]
        assert (source["name"], source["ok"], source["error"]) == ("prometheus", True, None)
        assert source["rows"] >= BASELINE_SAMPLES
        # The second pull adds only what was not stored yet, however long after it comes
        # (checked below: no sample is stored twice).
        assert again.ok
        assert cpu_rows(store) == source["rows"] + again.rows
        with TelemetryStore.open(store).connect() as con:
            doubled = con.execute("select count(*) from (select ts, name, service, labels "
                                  "from raw.metrics group by all having count(*) > 1)").fetchone()
        assert doubled == (0,)
    else:
        assert record["sources"] == []
