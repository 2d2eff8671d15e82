"""Metric rows from the simulated requests and the pods' state, the way exporters report them:
per-pod counters (cumulative or per interval), per-service latency percentiles, container,
node, datastore, disk, certificate and pool gauges."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from casebook.executor.datasets.generator.simulation import OWN, UPSTREAM, Batch
from casebook.executor.datasets.generator.traffic import TICK, World, cpu_ratio


@dataclass
class Counts:
    """Per pod and per sample interval; latency percentiles per service and interval."""

    samples: np.ndarray  # seconds of each sample (end of its interval)
    requests: np.ndarray  # [pod, sample]
    errors: np.ndarray
    hits: np.ndarray
    p95: dict[str, np.ndarray]  # service -> [sample], NaN when no request
    p99: dict[str, np.ndarray]


def count(world: World, batches: list[Batch]) -> Counts:
    step = world.clock.interval
    n = int(world.clock.seconds // step)
    shape = (len(world.topo.pods), n)
    requests, errors, hits = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    durations: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for batch in batches:
        for v in batch.visits:
            served = v.served & v.present
            if not served.any():
                continue
            at = batch.ts[served] + v.server_start[served] / 1000
            slot = np.minimum((at // step).astype(int), n - 1)
            pod = v.pod[served]
            np.add.at(requests, (pod, slot), 1)
            failed = np.isin(v.reason[served], (OWN, UPSTREAM))
            np.add.at(errors, (pod[failed], slot[failed]), 1)
            if v.hit is not None:
                np.add.at(hits, (pod, slot), v.hit[served].astype(float))
            took = (v.server_end - v.server_start)[served]
            if v.call.kind in ("db", "cache_get", "cache_set"):
                took = took + 0.0
            durations.setdefault(v.call.service, []).append((slot, took))
    p95, p99 = {}, {}
    for service, parts in durations.items():
        slots = np.concatenate([p[0] for p in parts])
        took = np.concatenate([p[1] for p in parts])
        order = np.argsort(slots, kind="stable")
        slots, took = slots[order], took[order]
        bounds = np.searchsorted(slots, np.arange(n + 1))
        a, b = np.full(n, np.nan), np.full(n, np.nan)
        for i in range(n):
            chunk = took[bounds[i]:bounds[i + 1]]
            if len(chunk):
                a[i], b[i] = np.percentile(chunk, [95, 99])
        p95[service], p99[service] = a, b
    return Counts((np.arange(n) + 1) * step, requests, errors, hits, p95, p99)


def base_gauges(rng: np.random.Generator, world: World) -> None:
    """Memory, disk, certificate and pool gauges before any fault touches them."""
    ticks = world.clock.ticks
    t = np.arange(ticks) * TICK
    memory = world.pod_array(np.nan)
    disk = world.pod_array(np.nan)
    expiry = world.pod_array(np.nan)
    pool = world.pod_array(np.nan)
    for s in world.topo.services.values():
        days = float(rng.uniform(12, 200)) * 86400
        for p in s.pods:
            level = s.memory_limit * float(rng.uniform(0.25, 0.6))
            memory[p.index] = level * (1 + np.cumsum(rng.normal(0, 0.0015, ticks)))
            if s.volume:
                disk[p.index] = float(rng.uniform(0.2, 0.7)) + t * float(rng.uniform(0, 2e-6))
            if s.tls:
                expiry[p.index] = days - t
            if s.kind in ("app", "edge") and any(world.topo.services[c].kind == "db"
                                                for c in world.topo.callees(s.name)):
                pool[p.index] = np.clip(float(rng.uniform(0.05, 0.35)) +
                                        rng.normal(0, 0.02, ticks), 0.01, 1)
    world.gauges.update({"container_memory_working_set_bytes": memory, "disk_usage_ratio": disk,
                         "ssl_certificate_expiry_seconds": expiry,
                         "connection_pool_usage_ratio": pool})


def rows(rng: np.random.Generator, world: World, counts: Counts, end: float) -> list[dict]:
    """Every metric row up to `end` seconds."""
    topo, clock = world.topo, world.clock
    cumulative = {name: bool(rng.random() < 0.6) for name in
                  ("http_requests_total", "http_errors_total", "db_queries_total")}
    cpu = cpu_ratio(rng, world)
    out: list[dict] = []
    keep = counts.samples <= end
    samples = counts.samples[keep]
    ticks = np.minimum((samples // TICK).astype(int), clock.ticks - 1)
    stamps = [clock.at(s) for s in samples]

    def emit(name: str, service: str, values: np.ndarray, labels: dict, mask=None) -> None:
        for i, value in enumerate(values):
            if (mask is None or mask[i]) and np.isfinite(value):
                out.append({"ts": stamps[i], "name": name, "service": service,
                            "value": round(float(value), 6), "labels": labels})

    for s in topo.services.values():
        counters = {"app": ("http_requests_total", "http_errors_total"),
                    "edge": ("http_requests_total", "http_errors_total"),
                    "db": ("db_queries_total",)}.get(s.kind, ())
        for p in s.pods:
            exists = (samples > p.start) & (samples - clock.interval < p.end)
            if not exists.any():
                continue
            labels = {"pod": p.name, "version": p.version}
            restarts = np.array([sum(r <= x for r in world.restarts.get(p.index, []))
                                 for x in samples])
            for name, series in zip(counters, (counts.requests, counts.errors), strict=False):
                values = series[p.index][keep]
                if cumulative[name]:
                    values = _cumulative(values, samples, p.start,
                                         world.restarts.get(p.index, []))
                emit(name, s.name, values, labels, exists)
            emit("cpu_usage_ratio", s.name, cpu[p.index][ticks], labels, exists)
            ws = world.gauges["container_memory_working_set_bytes"][p.index][ticks]
            emit("container_memory_working_set_bytes", s.name, np.round(ws), labels, exists)
            emit("memory_usage_ratio", s.name, ws / s.memory_limit, labels, exists)
            emit("container_spec_memory_limit_bytes", s.name,
                 np.full(len(samples), s.memory_limit), {"pod": p.name}, exists)
            emit("kube_pod_container_status_restarts_total", s.name, restarts.astype(float),
                 {"pod": p.name}, exists)
            kind = {"db": "StatefulSet", "cache": "StatefulSet", "job": "Job"}.get(
                s.kind, "ReplicaSet")
            owner = s.name if kind != "ReplicaSet" else p.name.rsplit("-", 1)[0]
            emit("kube_pod_info", s.name, np.ones(len(samples)),
                 {"pod": p.name, "node": p.node, "namespace": "prod", "created_by_kind": kind,
                  "created_by_name": owner}, exists)
            reasons = [e["attributes"]["reason"] for e in world.events
                       if e["kind"] == "restart" and e["attributes"].get("pod") == p.name]
            if reasons:
                emit("kube_pod_container_status_last_terminated_reason", s.name,
                     np.ones(len(samples)), {"pod": p.name, "reason": reasons[-1]},
                     exists & (restarts > 0))
            for gauge, extra in (("disk_usage_ratio", {"mountpoint": f"/var/lib/{s.name.split('-')[0]}"}),
                                 ("ssl_certificate_expiry_seconds", {"cn": f"{s.name}.prod.svc"}),
                                 ("connection_pool_usage_ratio", {"pool": "primary"})):
                values = world.gauges[gauge][p.index][ticks]
                lab = {"pod": p.name, **extra} if gauge != "ssl_certificate_expiry_seconds" \
                    else extra
                if gauge == "ssl_certificate_expiry_seconds" and p is not s.pods[0]:
                    continue
                emit(gauge, s.name, values, lab, exists)
            if s.kind == "cache":
                lookups = counts.requests[p.index][keep]
                ratio = np.where(lookups > 0, counts.hits[p.index][keep] / np.maximum(lookups, 1),
                                 world.hit_ratio[s.name][ticks])
                emit("cache_hit_ratio", s.name, ratio, {"pod": p.name}, exists)
                keys = 250_000 * world.hit_ratio[s.name][ticks] / max(
                    float(np.median(world.hit_ratio[s.name])), 0.01)
                emit("cache_keys", s.name, np.round(keys), {"pod": p.name}, exists)
        if s.kind in ("app", "edge") and s.name in counts.p95:
            emit("latency_p95_ms", s.name, counts.p95[s.name][keep], {})
            emit("latency_p99_ms", s.name, counts.p99[s.name][keep], {})
        if s.kind == "db" and s.name in counts.p95:
            emit("db_query_latency_p95_ms", s.name, counts.p95[s.name][keep], {})
    for node in topo.nodes:
        on = [p for p in topo.pods if p.node == node]
        busy = 0.08 + sum(cpu[p.index] * 0.12 for p in on) / max(1.0, len(on) / 4)
        busy = busy + world.node_extra.get(node, 0)
        emit("node_cpu_utilization", "node-exporter", np.clip(busy[ticks], 0, 1), {"node": node})
        mem = float(rng.uniform(0.35, 0.7)) + rng.normal(0, 0.01, len(samples))
        emit("node_memory_utilization", "node-exporter", mem, {"node": node})
    return out


def _cumulative(values: np.ndarray, samples: np.ndarray, start: float,
                restarts: list[float]) -> np.ndarray:
    """Prometheus style: running sum from the pod's start, back to 0 at every restart."""
    out = np.zeros(len(values))
    total = 0.0
    marks = sorted(restarts)
    for i, (v, at) in enumerate(zip(values, samples, strict=True)):
        while marks and marks[0] <= at:
            marks.pop(0)
            total = 0.0
        if at > start:
            total += v
        out[i] = total
    return out
