"""Intake benchmark: how fast `casebook serve` accepts alerts, how many it investigates a second,
and how long an alert waits for its report under a steady stream.

    python benchmarks/intake.py            # a table
    python benchmarks/intake.py --json     # one JSON object
    python benchmarks/intake.py --ray --concurrency 2 --rate 10 --duration 60 --no-storm
    python benchmarks/intake.py --ray-address HOST:PORT ...   # on a running Ray cluster

The telemetry is the kv_cache seed incident padded with unrelated metrics to 1,000,000 rows over
a day; every alert is that incident's alert with its own fingerprint, so each one is a full
investigation by the built-in analyzer pack. The service runs as its own process, as deployed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

KV_LABELS = {
    "alertname": "HighRequestVolume",
    "service": "inference-api",
    "severity": "page",
    "team": "inference",
}
INCIDENT_START = datetime(2026, 3, 14, 14, 10, tzinfo=UTC)
NOISE_SERVICES = 60
NOISE_METRICS = ("cpu_seconds", "memory_bytes", "open_connections", "queue_length")


def build_store(path: Path, rows: int) -> int:
    """The kv_cache incident plus unrelated metrics, `rows` rows in all; returns the count."""
    from casebook.examples.seeds import kv_cache
    from casebook.executor.ingest import ingest
    from casebook.executor.telemetry_store import TelemetryStore

    case = kv_cache.generate(path.parent / "case")
    store = TelemetryStore.open(path, create=True)
    ingest(sorted((case / "telemetry").glob("*.parquet")), store)
    have = sum(store.row_counts().values())
    series = [(f"svc-{s:02d}", f"noise_{m}") for s in range(NOISE_SERVICES) for m in NOISE_METRICS]
    per_series = max(1, -(-(rows - have) // len(series)))  # rounded up: at least `rows`
    day = INCIDENT_START.replace(hour=0, minute=0, tzinfo=None)
    step_us = int(86_400e6 / per_series)
    ticks = np.arange(per_series, dtype=np.int64) * step_us
    rng = np.random.default_rng(7)
    stamps = np.tile(ticks, len(series)) + np.datetime64(day, "us").astype(np.int64)
    order = np.argsort(stamps, kind="stable")  # time-sorted, as an ingest of live data is
    services = np.repeat([s for s, _ in series], per_series)[order]
    names = np.repeat([n for _, n in series], per_series)[order]
    table = pa.table(
        {
            "ts": pa.array(stamps[order], type=pa.int64()).cast(pa.timestamp("us")),
            "name": pa.array(names),
            "service": pa.array(services),
            "value": pa.array(rng.gamma(2.0, 10.0, len(stamps))),
            "labels": pa.array(
                [[] for _ in range(len(stamps))], type=pa.map_(pa.string(), pa.string())
            ),
        }
    )
    store.append("metrics", table)
    return sum(store.row_counts().values())


def cpu_seconds(roots: list[int], descendants: bool = True) -> float:
    """CPU time (user + system) of these processes and all their descendants, from /proc.

    On a shared machine the wall-clock rate depends on everyone's load; the CPU the service
    itself spends per investigation does not.
    """
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    chosen = set(roots)
    grew = descendants
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in chosen and pid not in chosen:
                chosen.add(pid)
                grew = True
    return sum(used.get(pid, 0.0) for pid in chosen)


def cluster_roots(temp_dirs: list[str]) -> list[int]:
    """Processes of the Ray nodes started with these temp dirs (their raylets and more)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if any(d in command for d in temp_dirs):
            found.append(int(entry.name))
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Service:
    """`casebook serve` as a subprocess with its own results and queue files."""

    def __init__(
        self,
        store: Path,
        work: Path,
        ray: bool,
        concurrency: int | None = None,
        ray_address: str | None = None,
    ):
        self.port = free_port()
        self.db = work / f"results-{self.port}.duckdb"
        self.queue = self.db.with_name(f"{self.db.stem}.queue.db")
        command = [
            sys.executable,
            "-c",
            "from casebook.executor.cli import main; main()",
            "serve",
            "--telemetry",
            str(store),
            "--db",
            str(self.db),
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--queue-size",
            "100000",
        ]
        if not ray:
            command.append("--local")
        if concurrency:
            command += ["--concurrency", str(concurrency)]
        if ray_address:
            command += ["--ray-address", ray_address]
        self.log = (work / f"serve-{self.port}.log").open("w")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while not self._healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"casebook serve did not start; see {self.log.name}")
            time.sleep(0.2)

    def _healthy(self) -> bool:
        try:
            return self.request("GET", "/healthz")[0] == 200
        except OSError:
            return False

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        connection: http.client.HTTPConnection | None = None,
    ) -> tuple[int, bytes]:
        own = connection is None
        connection = connection or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        payload = json.dumps(body).encode() if body is not None else None
        connection.request(
            method,
            path,
            body=payload,
            headers={"Content-Type": "application/json"} if payload else {},
        )
        answer = connection.getresponse()
        data = answer.read()
        if own:
            connection.close()
        return answer.status, data

    def finished(self) -> list[tuple[float, float, str]]:
        """(received_at, finished_at, outcome) of every finished alert, from the queue file."""
        with sqlite3.connect(self.queue, timeout=10) as db:
            return db.execute(
                "select received_at, finished_at, outcome from alerts "
                "where state in ('done', 'failed')"
            ).fetchall()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


STAGGER_S = 0.0  # --stagger: seconds between the start times of successive alerts


def alert(index: int, tag: str) -> dict:
    # With a stagger every alert has its own window, so no query is answered from the answers
    # kept for an earlier alert's window (executor/telemetry_store/answers.py).
    starts = INCIDENT_START + timedelta(seconds=index * STAGGER_S)
    return {
        "status": "firing",
        "labels": {**KV_LABELS, "replica": f"{tag}-{index}"},
        "annotations": {},
        "startsAt": starts.isoformat().replace("+00:00", "Z"),
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": f"{tag}-{index:07d}",
    }


def webhook(alerts: list[dict]) -> dict:
    return {
        "version": "4",
        "status": "firing",
        "receiver": "casebook",
        "groupKey": '{}:{alertname="HighRequestVolume"}',
        "alerts": alerts,
    }


def burst(service: Service, alerts: int, per_request: int, tag: str, threads: int = 4) -> float:
    """Post `alerts` alerts from several clients at once; alerts accepted per second."""
    requests = [
        [alert(i, tag) for i in range(start, min(start + per_request, alerts))]
        for start in range(0, alerts, per_request)
    ]
    failures: list[int] = []

    def client(share: list[list[dict]]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=60)
        for group in share:
            status, _ = service.request("POST", "/webhook/alertmanager", webhook(group), connection)
            if status != 202:
                failures.append(status)
        connection.close()

    workers = [
        threading.Thread(target=client, args=(requests[i::threads],)) for i in range(threads)
    ]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} requests were refused (status {failures[0]})")
    return alerts / elapsed


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="casebook-intake-bench-") as folder:
        return measure(args, Path(folder))


def measure(args: argparse.Namespace, work: Path) -> dict:
    store = work / "store"
    rows = build_store(store, args.rows)
    ray = args.ray or bool(args.ray_address)

    def service() -> Service:
        return Service(store, work, ray, args.concurrency, args.ray_address)

    # 1. An alert storm: acceptance while the workers investigate what came first; then
    # how many investigations a second the backlog drains at.
    storm: dict = {}
    if args.storm:
        running = service()
        try:
            single = burst(running, args.burst // 4, 1, "single")
            grouped = burst(running, args.burst, 10, "grouped")
            window_start = time.time()
            time.sleep(args.drain_seconds)
            window_end = time.time()
            drained = [r for r in running.finished() if window_start <= r[1] <= window_end]
            storm = {
                "alerts_per_s_one_per_request": round(single, 1),
                "alerts_per_s_ten_per_request": round(grouped, 1),
                "while_investigating": True,
                "drain_investigations_per_s": round(
                    len(drained) / (window_end - window_start), 2),
            }
        finally:
            running.stop()

    # 2. A steady stream on a fresh service: throughput and alert-to-report latency.
    running = service()
    try:
        load_before = os.getloadavg()
        roots = [running.process.pid, *cluster_roots(args.ray_temp_dir or [])]
        cpu_before = cpu_seconds(roots)
        driver_before = cpu_seconds([running.process.pid], descendants=False)
        sent = int(args.rate * args.duration)
        begun = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=30)
        for i in range(sent):
            pause = begun + i / args.rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            status, _ = running.request(
                "POST", "/webhook/alertmanager", webhook([alert(i, "steady")]), connection
            )
            if status != 202:
                raise SystemExit(f"the steady stream was refused: {status}")
        sending_s = time.perf_counter() - begun
        deadline = time.monotonic() + args.drain_timeout
        while len(running.finished()) < sent and time.monotonic() < deadline:
            time.sleep(0.5)
        finished = running.finished()
        cpu_used = cpu_seconds(roots) - cpu_before
        driver_used = cpu_seconds([running.process.pid], descendants=False) - driver_before
        load_after = os.getloadavg()
        _, listing = running.request("GET", f"/api/investigations?limit={sent + 10}")
    finally:
        running.stop()
    latencies = [end - start for start, end, _ in finished]
    investigations = json.loads(listing)["investigations"]
    right = sum(1 for r in investigations if r["entity_name"] == "kv-cache")
    # Throughput while the stream lasted and its backlog drained: from the first alert in to
    # the last report out.
    span_s = (max(e for _, e, _ in finished) - min(s for s, _, _ in finished)) if finished else 0
    sustained = len(finished) / span_s if span_s else 0.0
    return {
        "benchmark": "intake",
        "store_rows": rows,
        "runtime": "ray" if ray else "local",
        "ray_address": args.ray_address,
        "concurrency": args.concurrency,
        "accept": storm or None,
        "sustained_investigations_per_s": round(sustained, 2),
        # What two dedicated cores would sustain, from the CPU the service's processes spent.
        "cpu_s_per_investigation": round(cpu_used / len(finished), 3) if finished else None,
        "investigations_per_cpu_s": round(len(finished) / cpu_used, 2) if cpu_used else None,
        # Of which the service's own process (planning, records, ranking, narration, storing).
        "driver_cpu_s_per_investigation": (
            round(driver_used / len(finished), 3) if finished else None
        ),
        "steady": {
            "rate_per_s": args.rate,
            "stagger_s": args.stagger,
            "alerts": sent,
            "sending_s": round(sending_s, 1),
            "investigated": len(finished),
            "not_investigated_in_time": sent - len(finished),
            "failed": sum(1 for *_, outcome in finished if outcome == "failed"),
            "stored_investigations": len(investigations),
            "top_cause_kv_cache": right,
            "latency_p50_s": round(percentile(latencies, 50), 3),
            "latency_p95_s": round(percentile(latencies, 95), 3),
            "latency_max_s": round(max(latencies), 3) if latencies else None,
        },
        "targets": {
            "sustained_at_least_4_per_s": sustained >= 4.0,
            "all_investigated_in_time": len(finished) == sent,
            # Judged only once every alert is done: before that, the ones still queued or
            # running are neither lost nor stored yet.
            "nothing_lost_or_duplicated": (
                len(finished) == sent == len(investigations) if len(finished) == sent else None
            ),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rows", type=int, default=1_000_000, help="telemetry rows in the store")
    parser.add_argument("--burst", type=int, default=2000, help="alerts in the storm")
    parser.add_argument(
        "--drain-seconds", type=float, default=30.0, help="how long to watch the backlog drain"
    )
    parser.add_argument("--rate", type=float, default=1.0, help="steady alerts per second")
    parser.add_argument("--duration", type=float, default=60.0, help="steady stream seconds")
    parser.add_argument("--ray", action="store_true", help="investigate on Ray, not in process")
    parser.add_argument(
        "--ray-address", help="investigate on this running Ray cluster (implies --ray)"
    )
    parser.add_argument(
        "--concurrency", type=int, help="investigations in flight (serve's --concurrency)"
    )
    parser.add_argument(
        "--ray-temp-dir", action="append",
        help="temp dir of a node of the --ray-address cluster (repeatable): its processes' CPU "
        "counts as the service's",
    )
    parser.add_argument(
        "--storm", action=argparse.BooleanOptionalAction, default=True,
        help="measure acceptance under an alert storm first",
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=600.0,
        help="seconds to wait, after the stream, for its backlog to be investigated",
    )
    parser.add_argument(
        "--stagger", type=float, default=0.0,
        help="seconds between successive alerts' start times (each its own window; default: "
        "all start together, as one incident's alerts do)",
    )
    args = parser.parse_args()
    global STAGGER_S
    STAGGER_S = args.stagger
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    steady = result["steady"]
    print(
        f"store: {result['store_rows']:,} rows · runtime {result['runtime']}"
        f"{' at ' + result['ray_address'] if result['ray_address'] else ''} · concurrency "
        f"{result['concurrency'] or 'default'} · {result['machine']['cpus']} CPUs · load "
        f"{result['machine']['load_average_before'][0]:.1f} → "
        f"{result['machine']['load_average_after'][0]:.1f}"
    )
    accept = result["accept"]
    if accept:
        print(
            f"accepted while investigating: {accept['alerts_per_s_one_per_request']:.0f}"
            f" alerts/s one per request, {accept['alerts_per_s_ten_per_request']:.0f} "
            f"alerts/s ten per request; backlog drained at "
            f"{accept['drain_investigations_per_s']:.2f}/s"
        )
    print(
        f"sustained: {result['sustained_investigations_per_s']:.2f} investigations/s; "
        f"{result['cpu_s_per_investigation']} CPU-s per investigation "
        f"({result['investigations_per_cpu_s']} per CPU-second)"
    )
    print(
        f"steady {steady['rate_per_s']:g}/s for {steady['alerts']} alerts: p50 "
        f"{steady['latency_p50_s']:.2f} s, p95 {steady['latency_p95_s']:.2f} s, max "
        f"{steady['latency_max_s']:.2f} s; {steady['investigated']} investigated "
        f"({steady['failed']} failed), {steady['top_cause_kv_cache']} with kv-cache as the "
        "top cause"
    )


if __name__ == "__main__":
    main()
