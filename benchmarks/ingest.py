"""Receiver benchmark: spans, log lines and samples a second through `casebook serve`'s
receivers, its memory, and an investigation's latency while it ingests at half that rate.

    python benchmarks/ingest.py            # a table
    python benchmarks/ingest.py --json     # one JSON object

The service runs as its own process (in-process runtime), as deployed; the clients run in this
process on the same machine, so on 2 cores they take CPU from the service and the figures are
a floor; `rows_per_service_cpu_s` (rows per second of the service's own CPU time) does not
depend on what else runs. Requests are shaped like the real clients': 8 clients send OTLP/HTTP
protobuf requests of 512 spans or log records (the SDK's batch size) and remote-write requests
of 2,000 samples (Prometheus' max_samples_per_send), each request distinct so none is taken for a re-send. A rate counts a
row when it is in the store (the spool drained), not when it was acknowledged. The received
rows are stamped with the present, so the timed investigation (the kv_cache incident) reads the
same window whether the store is idle or taking data.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from intake import INCIDENT_START, KV_LABELS, Service, build_store  # noqa: E402

BATCH = 512
SAMPLES_PER_REQUEST = 2000


def otlp_bodies(signal: str, count: int) -> list[bytes]:
    """`count` distinct OTLP protobuf requests of BATCH spans or log records."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    start = time.time_ns()  # live data: now, outside the timed investigation's window
    message = ExportTraceServiceRequest() if signal == "traces" else ExportLogsServiceRequest()
    resources = message.resource_spans if signal == "traces" else message.resource_logs
    resource = resources.add()
    for key, value in (("service.name", "checkout"), ("k8s.pod.name", "checkout-1")):
        attribute = resource.resource.attributes.add()
        attribute.key, attribute.value.string_value = key, value
    scope = resource.scope_spans.add() if signal == "traces" else resource.scope_logs.add()
    for i in range(BATCH):
        if signal == "traces":
            span = scope.spans.add(trace_id=(i // 8).to_bytes(16, "big"),
                                   span_id=(i + 1).to_bytes(8, "big"), name="GET /cart",
                                   kind=2, start_time_unix_nano=start + i * 1000,
                                   end_time_unix_nano=start + i * 1000 + 4_000_000)
            if i % 8:
                span.parent_span_id = (i // 8 * 8 + 1).to_bytes(8, "big")
            items = span.attributes
        else:
            record = scope.log_records.add(time_unix_nano=start + i * 1000, severity_number=9,
                                           severity_text="INFO", trace_id=i.to_bytes(16, "big"))
            record.body.string_value = f"served /cart for account a-{i % 97} in 4 ms"
            items = record.attributes
        for key, value in (("http.route", "/cart"), ("http.method", "GET")):
            attribute = items.add()
            attribute.key, attribute.value.string_value = key, value
        attribute = items.add()
        attribute.key, attribute.value.int_value = "http.status_code", 200
    base = message.SerializeToString()
    bodies = []
    for n in range(count):
        # Concatenated protobuf messages merge: an extra, empty resource makes each distinct.
        extra = type(message)()
        marker = (extra.resource_spans if signal == "traces" else extra.resource_logs).add()
        attribute = marker.resource.attributes.add()
        attribute.key, attribute.value.string_value = "bench.request", str(n)
        bodies.append(base + extra.SerializeToString())
    return bodies


def remote_write_bodies(count: int) -> list[bytes]:
    """`count` distinct remote-write requests of SAMPLES_PER_REQUEST samples (2,000 series)."""
    import cramjam

    from casebook.executor.ingest.remote_write import WriteRequest

    stamp = time.time_ns() // 1_000_000
    bodies = []
    for n in range(count):
        request = WriteRequest()
        for i in range(SAMPLES_PER_REQUEST):
            series = request.timeseries.add()
            for name, value in (("__name__", f"bench_metric_{i % 20}"), ("instance", f"pod-{i}"),
                                ("job", "checkout"), ("service", f"svc-{i % 50}")):
                series.labels.add(name=name, value=value)
            series.samples.add(timestamp=stamp + n * 15_000, value=float(i))
        bodies.append(bytes(cramjam.snappy.compress_raw(request.SerializeToString())))
    return bodies


ROUTES = {
    "traces": ("/v1/traces", "application/x-protobuf", {}),
    "logs": ("/v1/logs", "application/x-protobuf", {}),
    "metrics": ("/api/v1/write", "application/x-protobuf", {"Content-Encoding": "snappy"}),
}


def push(service: Service, signal: str, bodies: list[bytes], rows_per_body: int,
         threads: int = 4, rate: float | None = None, stop: threading.Event | None = None
         ) -> dict:
    """Send the bodies from several clients (at `rate` rows/s if given); what was acknowledged."""
    path, kind, extra = ROUTES[signal]
    headers = {"Content-Type": kind, **extra}
    acked, refused = [0], [0]
    lock = threading.Lock()
    started = time.perf_counter()

    def client(share: list[bytes], index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=60)
        for n, body in enumerate(share):
            if stop is not None and stop.is_set():
                break
            if rate:
                due = started + (n * threads + index) * rows_per_body / rate
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
            while True:
                connection.request("POST", path, body=body, headers=headers)
                answer = connection.getresponse()
                answer.read()
                if answer.status in (200, 204):
                    with lock:
                        acked[0] += rows_per_body
                    break
                if answer.status != 503:
                    raise SystemExit(f"{path} answered {answer.status}")
                with lock:
                    refused[0] += 1
                time.sleep(float(answer.getheader("Retry-After") or 1) / 10)
        connection.close()

    workers = [threading.Thread(target=client, args=(bodies[i::threads], i))
               for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return {"rows": acked[0], "seconds": time.perf_counter() - started, "busy_503": refused[0]}


def pending_bytes(service: Service) -> float:
    _, text = service.request("GET", "/metrics")
    found = re.search(rb"^casebook_spool_pending_bytes (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def peak_rss_mib(service: Service) -> float:
    status = Path(f"/proc/{service.process.pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def cpu_seconds(service: Service) -> float:
    """CPU time the service has used so far (user and system, all threads), its decoder
    processes and any other process it started included."""
    ticks: dict[int, int] = {}
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        pid = int(stat.parent.name)
        parents[pid], ticks[pid] = int(fields[1]), int(fields[11]) + int(fields[12])
    family, grew = {service.process.pid}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in family} - family
        family |= more
        grew = bool(more)
    return sum(ticks.get(pid, 0) for pid in family) / os.sysconf("SC_CLK_TCK")


def throughput(service: Service, signal: str, bodies: list[bytes], rows_per_body: int) -> dict:
    """Rows a second into the store: from the first request until the spool is drained."""
    cpu_before = cpu_seconds(service)
    sent = push(service, signal, bodies, rows_per_body, threads=8)
    started_at = time.perf_counter() - sent["seconds"]
    while pending_bytes(service) > 0:
        time.sleep(0.05)
    stored = time.perf_counter() - started_at
    used = cpu_seconds(service) - cpu_before
    return {
        "rows": sent["rows"],
        "acknowledged_per_s": round(sent["rows"] / sent["seconds"]),
        "stored_per_s": round(sent["rows"] / stored),
        "busy_503": sent["busy_503"],
        # Independent of what else the machine runs: rows per second of the service's CPU.
        "rows_per_service_cpu_s": round(sent["rows"] / used) if used else None,
        "service_cpu_s": round(used, 2),
        "peak_rss_mib": round(peak_rss_mib(service), 1),
        "load_average_1m": round(os.getloadavg()[0], 2),  # others' work on the machine then
    }


def investigation_seconds(service: Service, tag: str) -> float:
    """Seconds from posting the kv_cache alert to its stored report."""
    alert = {"status": "firing", "labels": {**KV_LABELS, "replica": tag},
             "startsAt": INCIDENT_START.isoformat().replace("+00:00", "Z"), "fingerprint": tag}
    started = time.perf_counter()
    status, body = service.request("POST", "/api/investigations",
                                   {"version": "4", "status": "firing", "alerts": [alert]})
    if status != 202:
        raise SystemExit(f"manual investigation refused: {status} {body[:200]!r}")
    [ident] = json.loads(body)["investigations"]
    while True:
        status, body = service.request("GET", f"/api/investigations/{ident}")
        if status == 200 and json.loads(body)["status"] in ("done", "partial"):
            return time.perf_counter() - started
        time.sleep(0.02)


def measure(args: argparse.Namespace, work: Path) -> dict:
    load_before = os.getloadavg()[0]
    store = work / "store"
    rows = build_store(store, args.rows)
    requests = max(4, int(args.requests))
    bodies = {
        "traces": otlp_bodies("traces", requests),
        "logs": otlp_bodies("logs", requests),
        "metrics": remote_write_bodies(requests),
    }
    sizes = {"traces": BATCH, "logs": BATCH, "metrics": SAMPLES_PER_REQUEST}
    service = Service(store, work, ray=False)
    try:
        rates = {signal: throughput(service, signal, bodies[signal], sizes[signal])
                 for signal in ("traces", "logs", "metrics")}
        idle = [investigation_seconds(service, f"idle-{n}") for n in range(args.investigations)]
        # Half the measured rates of spans and samples at once, while investigating.
        stop = threading.Event()
        load = [
            threading.Thread(target=push, args=(service, signal, bodies[signal] * 20,
                                                sizes[signal]),
                             kwargs={"threads": 2, "rate": rates[signal]["stored_per_s"] / 2,
                                     "stop": stop})
            for signal in ("traces", "metrics")
        ]
        for thread in load:
            thread.start()
        time.sleep(1.0)
        busy = [investigation_seconds(service, f"busy-{n}") for n in range(args.investigations)]
        stop.set()
        for thread in load:
            thread.join()
        memory = peak_rss_mib(service)
    finally:
        service.stop()
    spans, samples = rates["traces"]["stored_per_s"], rates["metrics"]["stored_per_s"]
    return {
        "benchmark": "ingest",
        "store_rows": rows,
        "spans_per_s": spans,
        "log_lines_per_s": rates["logs"]["stored_per_s"],
        "samples_per_s": samples,
        "signals": rates,
        "investigation_s": {
            "idle_median": round(statistics.median(idle), 3),
            "ingesting_half_rate_median": round(statistics.median(busy), 3),
            "idle": [round(s, 3) for s in idle],
            "ingesting_half_rate": [round(s, 3) for s in busy],
        },
        "peak_rss_mib": round(memory, 1),
        "targets": {
            "spans_at_least_50000_per_s": spans >= 50_000,
            "samples_at_least_200000_per_s": samples >= 200_000,
            "memory_under_1_gib": memory < 1024,
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(),
                    # Others' work on a shared machine lowers every figure; this says how much.
                    "load_average_1m_before": round(load_before, 2),
                    "load_average_1m_after": round(os.getloadavg()[0], 2)},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rows", type=int, default=200_000, help="telemetry rows in the store")
    parser.add_argument("--requests", type=int, default=400,
                        help="requests per signal")
    parser.add_argument("--investigations", type=int, default=3,
                        help="investigations timed idle and while ingesting")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="casebook-ingest-bench-") as folder:
        result = measure(args, Path(folder))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    machine = result["machine"]
    print(f"{machine['cpus']} CPUs (load average {machine['load_average_1m_before']:.1f} before, "
          f"{machine['load_average_1m_after']:.1f} after) · store {result['store_rows']:,} rows")
    for signal, figures in result["signals"].items():
        print(f"{signal:8} {figures['stored_per_s']:>9,} rows/s stored "
              f"({figures['acknowledged_per_s']:,}/s acknowledged, "
              f"{figures['rows_per_service_cpu_s']:,} per CPU-second, {figures['busy_503']} "
              f"answered 503), peak RSS {figures['peak_rss_mib']:.0f} MiB, "
              f"load average {figures['load_average_1m']:.1f}")
    times = result["investigation_s"]
    print(f"investigation: {times['idle_median']:.2f} s idle, "
          f"{times['ingesting_half_rate_median']:.2f} s while ingesting at half rate")


if __name__ == "__main__":
    main()
