"""Executor benchmark: one investigation of 1,000 to 100,000 invocations over a request store.

    python benchmarks/executor.py --json                         # 10,000 invocations, 10M rows
    python benchmarks/executor.py --services 20000 --json        # 100,000 invocations
    python benchmarks/executor.py --services 200 --naive --json  # 1,000, with the naive baseline

Builds (once, cached under --cache) a store of request rows over a tree of services, fires an
alert at the root and lets a dependency walk plus four per-service checks fan out to five
invocations per service. Measured in one run, each the median of --repeat investigations:

- the Ray runtime with its workers warm, and the same analyzers in-process (`--local`):
  the end-to-end ratio;
- the same plan with analyzers that read nothing, on both runtimes: the executor-only ratio
  and the executor's overhead per invocation;
- with --naive, the same analyzer code run as one Ray task per invocation (each opens its own
  connection, so its grouped query runs once per invocation), all of them, not a sample;
- the driver's memory: its resident peak, sampled from a sidecar process, and the Python heap
  of one more investigation traced with tracemalloc (not timed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import synthetic  # noqa: E402
from memory_sampler import MemorySampler  # noqa: E402

from casebook.executor.investigation import run_investigation  # noqa: E402
from casebook.executor.planner import Limits  # noqa: E402
from casebook.executor.runtime.local import LocalRuntime  # noqa: E402
from casebook.executor.telemetry_store import TelemetryStore  # noqa: E402
from casebook.sdk.registry import Registry  # noqa: E402

TARGETS = {
    "speedup_vs_local": 1.5,
    "overhead_us_per_invocation": 50.0,
    "driver_kb_per_invocation": 2.0,
}
LIMITS = Limits(max_depth=8, max_invocations=200_000, max_fan_out=200_000)
DEFAULT_CACHE = Path(os.environ.get("CASEBOOK_BENCH_CACHE", HERE / ".cache"))


def trivial(alert: Any, services: int) -> Any:
    name = "TrivialRootErrorRate"
    labels = {**alert.labels, "alertname": name, "services": str(services)}
    return alert.model_copy(update={"name": name, "labels": labels})


CPU_SECONDS: list[float] = []  # this process's CPU time of each investigation, in order


def investigate(
    runtime: Any, alert: Any, registry: Registry, store: Path, shift: int = 0
) -> tuple[float, Any]:
    """One investigation; `shift` moves the alert that many minutes earlier.

    Each repeat of a measurement gets its own window, as a stream of different alerts would:
    the same window again would be answered from the query answers a store snapshot keeps
    (executor/telemetry_store/answers.py), by the Ray runtime's long-lived workers and scans
    actor but not by a fresh in-process runtime, which would flatter Ray.
    """
    if shift:
        alert = alert.model_copy(update={"starts_at": alert.starts_at - timedelta(minutes=shift)})
    source = TelemetryStore.open(store).source()
    started, cpu = time.perf_counter(), time.process_time()
    record = run_investigation(
        alert,
        registry=registry,
        source=source,
        runtime=runtime,
        limits=LIMITS,
        store_path=str(store),
    )
    CPU_SECONDS.append(time.process_time() - cpu)
    return time.perf_counter() - started, record


def measure(label: str, repeat: int, run: Any, memory: MemorySampler) -> dict[str, Any]:
    """The median wall time of `repeat` runs, the driver's resident peak, and the last record."""
    walls, record, peaks, cpus = [], None, [], []
    for shift in range(repeat):
        before, _ = memory.phase()
        record = None  # the last run's record is not held while the next one runs
        wall, record = run(shift)
        peak, _ = memory.peak()
        walls.append(wall)
        cpus.append(CPU_SECONDS[-1])
        peaks.append(peak - before)
        print(
            f"  {label}: {wall:.2f} s, {len(record.invocations):,} invocations "
            f"({record.status}), driver +{peak - before:.0f} MB",
            file=sys.stderr,
        )
    return {
        "wall_s": statistics.median(walls),
        "walls": [round(w, 3) for w in walls],
        "driver_growth_mb": round(max(peaks)),
        "driver_cpu_s": statistics.median(cpus),
        "record": record,
    }


def traced_heap(run: Any) -> tuple[float, int]:
    """The peak of the Python heap over one run, above what was allocated before it."""
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    try:
        _, record = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20, len(record.invocations)


def naive_invocation(bench_dir: str, store_path: str, alert: Any, window: Any, name: str,
                     params: dict[str, Any], timeout_s: float) -> str:
    """One invocation as a Ray task: import the pack, open the store, run the analyzer."""
    if bench_dir not in sys.path:
        sys.path.insert(0, bench_dir)
    import bench_pack as pack

    from casebook.executor.telemetry_store import TelemetryStore as Store
    from casebook.sdk.analyzer import spec_of
    from casebook.sdk.invocation import run_invocation

    source = Store.open(store_path).source()
    try:
        outcome = run_invocation(
            spec_of(getattr(pack, name)),
            params,
            alert=alert,
            window=window,
            telemetry=source.open(window),
            timeout_s=timeout_s,
        )
    finally:
        source.connection.close()
    return outcome.status.value


def naive(store: Path, record: Any) -> dict[str, Any]:
    """Every invocation of the plan as its own Ray task, all submitted at once."""
    import ray

    task = ray.remote(num_cpus=1)(naive_invocation)
    alert, window = record.alert, record.window
    # Ray starts its task workers on first use; that start is not the baseline's to pay.
    ray.get([ray.remote(num_cpus=1)(lambda: 0).remote() for _ in range(4)])
    started = time.perf_counter()
    refs = [
        task.remote(str(HERE), str(store), alert, window, i.analyzer, i.params, 30.0)
        for i in record.invocations
    ]
    statuses = ray.get(refs)
    wall = time.perf_counter() - started
    print(f"  naive: {wall:.2f} s for {len(refs):,} invocations", file=sys.stderr)
    return {"wall_s": round(wall, 3), "invocations": len(refs),
            "statuses": {s: statuses.count(s) for s in sorted(set(statuses))}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--services", type=int, default=2_000, help="invocations = 5 x services")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--naive", action="store_true",
                        help="also run every invocation as its own Ray task (slow: ~0.1 s each)")
    parser.add_argument("--skip-local", action="store_true", help="no in-process runs")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where stores are kept")
    args = parser.parse_args()
    from casebook.executor.runtime.cluster import RayRuntime

    memory = MemorySampler(os.getpid())
    load_before = os.getloadavg()
    store = synthetic.build_store(
        args.cache / f"store-{args.rows}-{args.services}", args.rows, args.services
    )
    registry = Registry()
    registry.load("bench_pack")
    registry.checked()
    alert = synthetic.alert(args.services)
    empty = trivial(alert, args.services)
    runtime = RayRuntime(workers=args.workers)
    started = time.perf_counter()
    runtime.warm()
    investigate(runtime, empty, registry, store)  # workers import the pack once
    warm_s = time.perf_counter() - started
    print(f"Ray warm in {warm_s:.1f} s; {args.workers} workers", file=sys.stderr)

    def on_ray(which: Any) -> Any:
        return lambda shift=0: investigate(runtime, which, registry, store, shift)

    def in_process(which: Any) -> Any:
        return lambda shift=0: investigate(
            LocalRuntime(isolate=False), which, registry, store, shift
        )

    ray_run = measure("ray", args.repeat, on_ray(alert), memory)
    trivial_run = measure("ray, trivial analyzers", args.repeat, on_ray(empty), memory)
    heap_mb, heap_invocations = traced_heap(on_ray(empty))
    local_run = trivial_local = None
    if not args.skip_local:
        local_run = measure("in-process", args.repeat, in_process(alert), memory)
        trivial_local = measure("in-process, trivial", args.repeat, in_process(empty), memory)
    naive_result = naive(store, ray_run["record"]) if args.naive else None
    runtime.shutdown()
    peak = memory.close()

    record = ray_run["record"]
    count = len(record.invocations)
    trivial_count = len(trivial_run["record"].invocations)
    result: dict[str, Any] = {
        "invocations": count,
        "rows": args.rows,
        "wall_s": round(ray_run["wall_s"], 3),
        "invocations_per_s": round(count / ray_run["wall_s"]),
        "overhead_us_per_invocation": round(trivial_run["wall_s"] / trivial_count * 1e6, 1),
        # The driver's own CPU time per invocation does not grow with the machine's other load.
        "driver_cpu_us_per_invocation": round(trivial_run["driver_cpu_s"] / trivial_count * 1e6, 1),
        "speedup_vs_local": round(local_run["wall_s"] / ray_run["wall_s"], 2)
        if local_run else None,
        "executor_speedup_vs_local": round(trivial_local["wall_s"] / trivial_run["wall_s"], 2)
        if trivial_local else None,
        "speedup_vs_naive": round(naive_result["wall_s"] / ray_run["wall_s"], 1)
        if naive_result else None,
        "driver_kb_per_invocation": round(heap_mb * 1024 / heap_invocations, 2),
        "driver_rss_growth_kb_per_invocation": round(
            trivial_run["driver_growth_mb"] * 1024 / trivial_count, 2
        ),
        "peak_rss_mb": round(peak),
    }
    result["targets_met"] = {
        name: (result[name] >= goal if name.startswith("speedup") else result[name] <= goal)
        for name, goal in TARGETS.items()
        if result[name] is not None
    }
    result["details"] = {
        "services": args.services,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "repeat": args.repeat,
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "warm_s": round(warm_s, 2),
        "ray_walls": ray_run["walls"],
        "local_walls": local_run["walls"] if local_run else None,
        "trivial_walls": trivial_run["walls"],
        "trivial_local_walls": trivial_local["walls"] if trivial_local else None,
        "driver_cpu_s": {"ray": round(ray_run["driver_cpu_s"], 2),
                         "ray_trivial": round(trivial_run["driver_cpu_s"], 2)},
        "driver_heap_peak_mb": round(heap_mb, 1),
        "driver_rss_growth_mb": ray_run["driver_growth_mb"],
        "naive": naive_result,
        "statuses": record.status_counts(),
        "same_findings_as_local": _findings(record) == _findings(local_run["record"])
        if local_run else None,
        "top_cause": _cause(record),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:36} {value}")


def _findings(record: Any) -> list[str]:
    return sorted(f"{f.analyzer} {f.title}" for f in record.findings)


def _cause(record: Any) -> str:
    if not record.causes:
        return ""
    cause = record.causes[0]
    return f"{cause.entity.name} ({cause.category})"


if __name__ == "__main__":
    main()
