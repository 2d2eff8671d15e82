"""Executor benchmark: 10,000 invocations over a 10M-row store, on Ray and against baselines.

    python benchmarks/executor.py --json

Builds (once, cached under benchmarks/.cache) a store of 10M request rows over 2,000 services,
fires an alert at the root and lets a dependency walk plus four per-service checks fan out to
10,000 invocations. Measured in the same run: the Ray runtime with its workers warm, the same
analyzers in-process one after another (`--local`), a naive baseline (one Ray task per
invocation, each opening its own connection and querying the store for its one entity; run on a
sample and scaled to all invocations), and analyzers that do nothing (the executor's own cost).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_pack  # noqa: E402
import synthetic  # noqa: E402

from casebook.executor.investigation import run_investigation, window_for  # noqa: E402
from casebook.executor.planner import Limits  # noqa: E402
from casebook.executor.runtime.local import LocalRuntime  # noqa: E402
from casebook.executor.telemetry_store import TelemetryStore  # noqa: E402
from casebook.sdk.registry import Registry  # noqa: E402

TARGETS = {
    "wall_s": 10.0,
    "speedup_vs_naive": 10.0,
    "speedup_vs_local": 1.5,
    "overhead_us_per_invocation": 100.0,
    "peak_rss_mb": 4096.0,
}
LIMITS = Limits(max_depth=8, max_invocations=50_000)


class PeakMemory:
    """Peak resident memory of this process and everything it started (Ray and its workers)."""

    def __init__(self, every_s: float = 0.1) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)
        self._thread.start()

    def _run(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self.peak_mb = max(self.peak_mb, tree_rss_mb(os.getpid()))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mb


def tree_rss_mb(root: int) -> float:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total / 2**20


def trivial(alert: Any) -> Any:
    name = "TrivialRootErrorRate"
    return alert.model_copy(update={"name": name, "labels": {**alert.labels, "alertname": name}})


def investigate(runtime: Any, alert: Any, registry: Registry, store: Path) -> tuple[float, Any]:
    source = TelemetryStore.open(store).source()
    started = time.perf_counter()
    record = run_investigation(
        alert,
        registry=registry,
        source=source,
        runtime=runtime,
        limits=LIMITS,
        store_path=str(store),
    )
    return time.perf_counter() - started, record


def measure(label: str, repeat: int, run: Any) -> tuple[float, Any]:
    """The median wall time of `repeat` runs, and the last record."""
    walls, record = [], None
    for _ in range(repeat):
        wall, record = run()
        walls.append(wall)
        print(
            f"  {label}: {wall:.2f} s, {len(record.invocations):,} invocations ({record.status})",
            file=sys.stderr,
        )
    return statistics.median(walls), record


def naive(store: Path, record: Any, sample: int) -> dict[str, Any]:
    """One Ray task per invocation: own connection, one query for its entity over the store."""
    import ray

    @ray.remote(num_cpus=1)
    def one_invocation(store_path: str, window: Any, query: str, params: list[Any]) -> int:
        from casebook.executor.telemetry_store import TelemetryStore as Store

        telemetry = Store.open(store_path).source().open(window)
        return len(telemetry.sql(query, params))

    window = record.window
    onset = record.alert.starts_at - bench_pack.ONSET_BEFORE_ALERT
    invocations = [i for i in record.invocations if i.analyzer in bench_pack.PER_ENTITY_SQL]
    step = max(1, len(invocations) // sample) if sample else 1
    chosen = invocations[::step][:sample] if sample else invocations
    # Ray starts its task workers on first use; that start is not the baseline's to pay.
    ray.get([one_invocation.remote(str(store), window, "select 1", []) for _ in range(4)])
    started = time.perf_counter()
    refs = []
    for invocation in chosen:
        service = invocation.params["service"]
        params = [onset, onset, service] if invocation.analyzer == "traffic_shift" else [service]
        refs.append(
            one_invocation.remote(
                str(store), window, bench_pack.PER_ENTITY_SQL[invocation.analyzer], params
            )
        )
    ray.get(refs)
    wall = time.perf_counter() - started
    estimated = wall * len(invocations) / len(chosen)
    print(
        f"  naive: {wall:.2f} s for {len(chosen):,} invocations, "
        f"{estimated:.0f} s for {len(invocations):,}",
        file=sys.stderr,
    )
    return {
        "measured_invocations": len(chosen),
        "measured_wall_s": round(wall, 3),
        "wall_s": round(estimated, 2),
    }


def window_preparation(store: Path, alert: Any) -> dict[str, Any]:
    """The window read from the store, from the prepared (sorted) Parquet file, and from a
    sorted copy in a worker's in-memory DuckDB (the alternative not taken: one copy per worker).
    """
    import tempfile

    from casebook.executor.runtime.window_cache import open_prepared, prepare_window
    from casebook.sdk.telemetry import TelemetrySource

    source = TelemetryStore.open(store).source()
    window = window_for(alert)
    grouped = "select service, avg((status >= 500)::int) from requests group by service"
    one = "select avg((status >= 500)::int) from requests where service = ?"

    def timings(telemetry: Any) -> dict[str, float]:
        started = time.perf_counter()
        telemetry.sql(grouped)
        scan = time.perf_counter() - started
        started = time.perf_counter()
        for index in range(20):
            telemetry.sql(one, [synthetic.service_name(index * 97)])
        return {
            "grouped_scan_ms": round(scan * 1000, 1),
            "one_service_ms": round((time.perf_counter() - started) / 20 * 1000, 2),
        }

    with tempfile.TemporaryDirectory(prefix="casebook-bench-") as directory:
        # `source` stays unsealed (it writes the window); analyzers' handles come from sealed ones.
        prepared = prepare_window(source, window, Path(directory))
        reader = TelemetrySource(
            TelemetryStore.open(store).connect(), readable=(str(store), directory)
        )
        result = {
            "window_rows": prepared.rows,
            "store": timings(TelemetryStore.open(store).source().open(window)),
            "prepared": {
                "prepare_s": round(prepared.seconds, 2),
                **timings(open_prepared(reader, prepared)),
            },
        }
    schema = source.window_schema(window)
    before, started = _rss_mb(), time.perf_counter()
    source.connection.execute("create schema copied")
    source.connection.execute(
        f"create table copied.requests as select * from {schema}.requests order by service"
    )
    built = time.perf_counter() - started
    telemetry = source.handle("copied", window)
    result["memory_copy"] = {
        "prepare_s": round(built, 2),
        "rss_mb_per_worker": round(_rss_mb() - before),
        **timings(telemetry),
    }
    return result


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--services", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument(
        "--naive-sample",
        type=int,
        default=600,
        help="naive invocations to run and scale up (0: all of them)",
    )
    args = parser.parse_args()
    from casebook.executor.runtime.cluster import RayRuntime

    memory = PeakMemory()
    store = synthetic.build_store(
        HERE / ".cache" / f"store-{args.rows}-{args.services}", args.rows, args.services
    )
    registry = Registry()
    registry.load("bench_pack")
    registry.checked()
    alert = synthetic.alert(args.services)
    runtime = RayRuntime(workers=args.workers)
    started = time.perf_counter()
    runtime.warm()
    investigate(runtime, trivial(alert), registry, store)  # workers import the pack once
    warm_s = time.perf_counter() - started
    print(f"Ray warm in {warm_s:.1f} s; {args.workers} workers", file=sys.stderr)

    ray_s, record = measure(
        "ray", args.repeat, lambda: investigate(runtime, alert, registry, store)
    )
    trivial_s, trivial_record = measure(
        "ray, trivial analyzers",
        args.repeat,
        lambda: investigate(runtime, trivial(alert), registry, store),
    )
    local_s, local_record = measure(
        "in-process", args.repeat, lambda: investigate(LocalRuntime(isolate=False), alert, registry, store)
    )
    naive_result = naive(store, record, args.naive_sample)
    runtime.shutdown()
    windows = window_preparation(store, alert)
    peak = memory.stop()

    count = len(record.invocations)
    result = {
        "invocations": count,
        "wall_s": round(ray_s, 3),
        "invocations_per_s": round(count / ray_s),
        "overhead_us_per_invocation": round(trivial_s / len(trivial_record.invocations) * 1e6, 1),
        "speedup_vs_local": round(local_s / ray_s, 2),
        "speedup_vs_naive": round(naive_result["wall_s"] / ray_s, 1),
        "peak_rss_mb": round(peak),
    }
    result["targets_met"] = {
        name: (result[name] >= goal if name.startswith("speedup") else result[name] <= goal)
        for name, goal in TARGETS.items()
    }
    result["details"] = {
        "rows": args.rows,
        "services": args.services,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "repeat": args.repeat,
        "warm_s": round(warm_s, 2),
        "local_wall_s": round(local_s, 3),
        "trivial_wall_s": round(trivial_s, 3),
        "naive": naive_result,
        "window": windows,
        "statuses": _statuses(record),
        "same_findings_as_local": _findings(record) == _findings(local_record),
        "top_cause": _cause(record),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:28} {value}")


def _statuses(record: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for invocation in record.invocations:
        counts[invocation.status] = counts.get(invocation.status, 0) + 1
    return counts


def _findings(record: Any) -> list[str]:
    return sorted(f"{f.analyzer} {f.title}" for f in record.findings)


def _cause(record: Any) -> str:
    if not record.causes:
        return ""
    cause = record.causes[0]
    return f"{cause.entity.name} ({cause.category})"


if __name__ == "__main__":
    main()
