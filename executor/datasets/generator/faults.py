"""The fault classes: each edits the world from its onset, with random magnitude and timing,
and says what the true cause is (entity and category) and which services may page."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from casebook.executor.datasets.casedir import Cause
from casebook.executor.datasets.generator import changes
from casebook.executor.datasets.generator.topology import NOUNS, Pod, Service, token
from casebook.executor.datasets.generator.traffic import TICK, Failure, World

EXCEPTIONS = (
    ("NullPointerException", "java.lang.NullPointerException: Cannot invoke \"{obj}.getId()\" "
     "because \"{obj}\" is null"),
    ("KeyError", "KeyError: '{obj}_id' while building response"),
    ("TypeError", "TypeError: Cannot read properties of undefined (reading '{obj}')"),
    ("IllegalStateException", "java.lang.IllegalStateException: {obj} not initialised"),
    ("SerializationError", "failed to serialize {obj}: unknown field \"{obj}_v2\""),
    ("ValueError", "ValueError: invalid literal for int() with base 10: '{obj}'"),
)


@dataclass
class Fault:
    klass: str
    cause: Cause
    onset: float
    alert_on: list[str]  # services whose alerts may page, the fault's own first
    horizon: float = 1800.0  # seconds to simulate after the onset
    about: dict[str, Any] = field(default_factory=dict)


def _pick(rng: np.random.Generator, names: list[str]) -> str:
    return names[int(rng.integers(len(names)))]


def _apps(world: World, **need: bool) -> list[str]:
    topo = world.topo
    out = []
    for s in topo.apps():
        svc = topo.services[s]
        if not topo.callers(s):
            continue
        if need.get("tls") and not svc.tls or need.get("volume") and not svc.volume:
            continue
        out.append(s)
    return out or [s for s in topo.apps() if topo.callers(s)]


def _exception(rng: np.random.Generator, service: str) -> tuple[str, str]:
    etype, text = EXCEPTIONS[int(rng.integers(len(EXCEPTIONS)))]
    return etype, text.format(obj=service.split("-")[0] + str(rng.choice(["Ctx", "Item", "Ref"])))


def _faces(world: World, service: str) -> list[str]:
    return [service, *world.topo.ancestors(service)]


def change_regression(rng: np.random.Generator, world: World, onset: float) -> Fault:
    """A deploy, flag or config push on S, then new errors or latency in S."""
    s = _pick(rng, _apps(world))
    kind = str(rng.choice(["deploy", "deploy", "flag", "config"]))
    at = onset - float(rng.uniform(0, 60))
    pods = None
    if kind == "deploy":
        new = changes.rolling_deploy(rng, world, s, at)
        pods = {p.name for p in new}
        onset = min(p.start for p in new)
    elif kind == "flag":
        changes.flag_push(rng, world, s, at)
        onset = at + float(rng.uniform(2, 20))
    else:
        changes.config_push(rng, world, s, at)
        onset = at + float(rng.uniform(2, 20))
    _regress(rng, world, s, onset, pods)
    if rng.random() < 0.5:  # a harmless push on the same service, nearer the alert
        changes.config_push(rng, world, s, onset + float(rng.uniform(60, 180)))
    return Fault("change_regression", Cause("service", s, kind), onset, _faces(world, s),
                 about={"change": kind})


def _regress(rng: np.random.Generator, world: World, s: str, onset: float,
             pods: set[str] | None) -> None:
    effect = str(rng.choice(["errors", "latency", "both"]))
    on = world.clock.after(onset)
    if effect in ("errors", "both"):
        etype, message = _exception(rng, s)
        world.failures.append(Failure(s, on * float(rng.uniform(0.08, 0.6)), etype, message,
                                      pods=pods))
    if effect in ("latency", "both"):
        extra = float(rng.uniform(150, 1200))
        for p in world.topo.services[s].pods:
            if pods is None or p.name in pods:
                world.extra_ms[p.index] += on * extra


def slow_release(rng: np.random.Generator, world: World, onset: float) -> Fault:
    """A release leaks connections: its pool fills over 10-35 minutes, then requests wait
    and time out."""
    s = _pick(rng, [a for a in _apps(world) if _has_db(world, a)] or _apps(world))
    new = changes.rolling_deploy(rng, world, s, onset)
    build = float(rng.uniform(600, 2100))
    pool = world.gauges["connection_pool_usage_ratio"]
    exhausted = np.zeros(world.clock.ticks)
    for p in new:
        ramp = world.clock.ramp(p.start, build * float(rng.uniform(0.9, 1.1)))
        base = float(rng.uniform(0.1, 0.3))
        pool[p.index] = np.clip(base + (1 - base) * ramp, 0, 1)
        full = (ramp >= 1).astype(float)
        world.extra_ms[p.index] += full * float(rng.uniform(300, 2000))
        exhausted = np.maximum(exhausted, full)
    p_fail = float(rng.uniform(0.15, 0.6))
    world.failures.append(Failure(s, exhausted * p_fail, "PoolTimeoutError",
                                  "timed out waiting for a connection from pool after 5000 ms",
                                  pods={p.name for p in new}))
    return Fault("slow_release", Cause("service", s, "deploy"), min(p.start for p in new),
                 _faces(world, s), horizon=build * 1.1 + 900, about={"build_up_s": round(build)})


def _has_db(world: World, service: str) -> bool:
    return any(world.topo.services[c].kind == "db" for c in world.topo.callees(service))


def canary_release(rng: np.random.Generator, world: World, onset: float) -> Fault:
    s = _pick(rng, _apps(world))
    new = changes.rolling_deploy(rng, world, s, onset - float(rng.uniform(5, 40)), canary=True)
    _regress(rng, world, s, new[0].start, {p.name for p in new})
    for f in world.failures[-1:]:
        if f.service == s:
            f.p = np.minimum(1.0, f.p * 1.6)
    return Fault("canary_release", Cause("service", s, "deploy"), new[0].start,
                 _faces(world, s), about={"canary_pod": new[0].name})


def network_delay(rng: np.random.Generator, world: World, onset: float) -> Fault:
    """Packets leaving S's pods are delayed; S sits beside a sequential sibling (a trap)."""
    topo = world.topo
    with_sibling = [c.service for steps in topo.handlers.values() if len(steps) > 1
                    for group in steps for c in group
                    if c.kind == "http" and c.service in _apps(world)]
    s = _pick(rng, with_sibling or _apps(world))
    delay = float(rng.uniform(80, 450))
    world.net_delay[s] = world.clock.after(onset) * delay
    return Fault("network_delay", Cause("service", s, "network"), onset, _faces(world, s)[1:] or
                 [s], about={"delay_ms": round(delay)})


def memory_leak(rng: np.random.Generator, world: World, onset: float) -> Fault:
    """The working set climbs to the limit; the container is OOM-killed and starts again."""
    s = _pick(rng, _apps(world))
    svc = world.topo.services[s]
    memory = world.gauges["container_memory_working_set_bytes"]
    fill = float(rng.uniform(360, 1200))  # seconds from base to the limit
    t = np.arange(world.clock.ticks) * TICK
    for p in [p for p in svc.pods if p.end > 1e11]:
        base = memory[p.index].copy()
        rate = (svc.memory_limit - np.nanmean(base)) / (fill * float(rng.uniform(0.8, 1.25)))
        since = onset + float(rng.uniform(0, 60))
        for _ in range(6):
            level = base + np.clip(t - since, 0, None) * rate
            over = np.nonzero((level >= svc.memory_limit) & (t >= since))[0]
            memory[p.index] = np.where(t >= since, np.minimum(level, svc.memory_limit),
                                       memory[p.index])
            if not len(over):
                break
            kill = float(t[over[0]])
            changes.restart(world, p, kill, "OOMKilled", float(rng.uniform(10, 30)))
            since = kill + 20
        ratio = memory[p.index] / svc.memory_limit
        world.slow[p.index] *= 1 + 4 * np.clip((ratio - 0.85) / 0.15, 0, 1)
    return Fault("memory_leak", Cause("service", s, "resource"), onset, _faces(world, s),
                 horizon=fill * 1.3 + 900, about={"fill_s": round(fill)})


def disk_full(rng: np.random.Generator, world: World, onset: float) -> Fault:
    s = _pick(rng, _apps(world, volume=True))
    svc = world.topo.services[s]
    svc.volume = True
    disk = world.gauges["disk_usage_ratio"]
    t = np.arange(world.clock.ticks) * TICK
    victims = set()
    for i, p in enumerate(svc.pods):
        full_at = onset + (0 if i == 0 else float(rng.uniform(0, 900)))
        start = float(rng.uniform(0.6, 0.85))
        slope = (1 - start) / max(full_at, 60)
        disk[p.index] = np.clip(start + t * slope, 0, 1)
        victims.add(p.name)
    ops = [op for op in svc.ops if not op.startswith("GET")] or svc.ops
    mount = f"/var/lib/{s.split('-')[0]}"
    full = np.array([(disk[p.index] >= 0.999) for p in svc.pods]).any(axis=0).astype(float)
    world.failures.append(Failure(
        s, full * float(rng.uniform(0.4, 0.95)), "ENOSPC",
        f"write {mount}/data/segment-{int(rng.integers(1000, 99999))}.log: no space left on device",
        pods={p.name for p in svc.pods}, ops=set(ops)))
    world.failures[-1].p = np.array(world.failures[-1].p)
    return Fault("disk_full", Cause("service", s, "resource"), onset, _faces(world, s),
                 about={"mountpoint": mount})


def cert_expiry(rng: np.random.Generator, world: World, onset: float) -> Fault:
    s = _pick(rng, _apps(world, tls=True))
    world.topo.services[s].tls = True
    world.tls_broken[s] = world.clock.after(onset)
    expiry = world.gauges.setdefault("ssl_certificate_expiry_seconds", world.pod_array(np.nan))
    t = np.arange(world.clock.ticks) * TICK
    for p in world.topo.services[s].pods:
        expiry[p.index] = onset - t
    return Fault("cert_expiry", Cause("service", s, "security"), onset,
                 world.topo.ancestors(s) or [s])


def noisy_neighbour(rng: np.random.Generator, world: World, onset: float) -> Fault:
    """A cron job lands on the nodes of the victim's pods and saturates their CPU."""
    topo = world.topo
    victim = _pick(rng, _apps(world))
    nodes = sorted({p.node for p in topo.services[victim].pods})
    nodes = nodes[: int(rng.integers(1, len(nodes) + 1))]
    name = f"{str(rng.choice(NOUNS))}-{rng.choice(['reindex', 'nightly-report', 'backfill', 'compaction', 'export-job'])}"
    topo.services[name] = Service(name, "job", 9, 1.0, 0.0, version=changes.version(rng))
    length = float(rng.uniform(1200, 2700))
    job = token(rng, 8, "0123456789")
    for i, node in enumerate(nodes):
        pod = topo.add_pod(Pod(f"{name}-{job}-{changes.token(rng, 5)}", name,
                               topo.services[name].version, node, onset + i * 5,
                               onset + length))
        world.grow()
        world.cpu_extra[pod.index] = world.clock.after(pod.start, pod.end) * 0.95
    steal = float(rng.uniform(2.0, 5.0))
    for node in nodes:
        world.node_extra[node] = world.clock.after(onset, onset + length) * float(
            rng.uniform(0.55, 0.75))
        for p in topo.pods:
            if p.node == node and topo.services[p.service].kind != "job":
                world.slow[p.index] *= 1 + (steal - 1) * world.clock.after(onset, onset + length)
    world.logs.append({"ts": world.clock.at(onset + 3), "service": name, "level": "info",
                       "message": f"{name} starting: {int(rng.integers(2, 90))}M rows to process",
                       "attributes": {}})
    return Fault("noisy_neighbour", Cause("service", name, "resource"), onset,
                 _faces(world, victim), about={"victim": victim, "nodes": nodes})


def retry_storm(rng: np.random.Generator, world: World, onset: float) -> Fault:
    """A small dependency fails; its callers retry and multiply its load."""
    topo = world.topo
    small = sorted(_apps(world), key=lambda a: float(world.load[a][:world.clock.tick(onset)].mean()
                                                     if a in world.load else 0))
    d = _pick(rng, small[: max(3, len(small) // 3)])
    attempts = int(rng.integers(3, 6))
    for steps in topo.handlers.values():
        for group in steps:
            for c in group:
                if c.service == d:
                    c.attempts, c.propagate = attempts, 1.0
    p = float(rng.uniform(0.3, 0.85))
    etype = str(rng.choice(["ServiceUnavailable", "UpstreamConnectError", "QuotaExceeded"]))
    world.failures.append(Failure(d, world.clock.after(onset) * p, etype,
                                  f"{etype}: {d} rejected request: backend unavailable",
                                  status=503))
    return Fault("retry_storm", Cause("service", d, "dependency"), onset,
                 topo.ancestors(d) or [d], about={"attempts": attempts})


def cache_restart(rng: np.random.Generator, world: World, onset: float) -> Fault:
    """The cache restarts empty; misses go to the database, which slows everyone down."""
    caches = [s.name for s in world.topo.services.values()
              if s.kind == "cache" and world.topo.callers(s.name)]
    c = _pick(rng, caches)
    for p in world.topo.services[c].pods:
        changes.restart(world, p, onset, str(rng.choice(["Error", "OOMKilled"])),
                        float(rng.uniform(10, 30)))
    warm = float(rng.uniform(600, 1800))
    t = np.arange(world.clock.ticks) * TICK
    usual = world.hit_ratio[c]
    recovered = 1 - np.exp(-np.clip(t - onset, 0, None) / warm)
    world.hit_ratio[c] = np.where(t >= onset, usual * (0.03 + 0.97 * recovered), usual)
    faces = sorted({a for caller in world.topo.callers(c) for a in _faces(world, caller)})
    return Fault("cache_restart", Cause("service", c, "cache"), onset, faces or [c],
                 about={"warm_up_s": round(warm)})


def cpu_hog(rng: np.random.Generator, world: World, onset: float) -> Fault:
    s = _pick(rng, _apps(world))
    pods = [p for p in world.topo.services[s].pods if p.end > 1e11]
    if rng.random() < 0.4:
        pods = pods[:1]
    on = world.clock.ramp(onset, float(rng.uniform(5, 60)))
    slow = float(rng.uniform(2.0, 6.0))
    for p in pods:
        world.cpu_extra[p.index] += on * float(rng.uniform(0.6, 0.95))
        world.slow[p.index] *= 1 + (slow - 1) * on
    return Fault("cpu_hog", Cause("service", s, "resource"), onset, _faces(world, s),
                 about={"pods": len(pods)})
