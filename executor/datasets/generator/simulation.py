"""Every request, simulated through its route's call tree at once (arrays over requests).

A call's outcome (which pod, when the server span starts and ends, whether it failed and why)
is computed for all requests of a route together; retries are further visits of the same call
for the requests whose previous attempt failed. Metrics aggregate all requests; spans are kept
for the sampled ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from casebook.executor.datasets.generator.topology import Call
from casebook.executor.datasets.generator.traffic import TICK, World

OK, OWN, UPSTREAM, TIMEOUT, TLS, REFUSED = range(6)
REASONS = ("ok", "error", "upstream", "timeout", "tls_handshake_error", "connection_refused")


@dataclass
class Visit:
    call: Call
    caller: str | None
    parent: int
    attempt: int
    present: np.ndarray
    pod: np.ndarray
    client_start: np.ndarray
    client_end: np.ndarray
    server_start: np.ndarray
    server_end: np.ndarray
    served: np.ndarray  # a server span exists (or the datastore answered)
    reason: np.ndarray  # what the caller saw, REASONS
    failure: np.ndarray  # index into World.failures of the callee's own failure, -1 none
    hit: np.ndarray | None = None


@dataclass
class Batch:
    """The requests of one route."""

    route: str
    ts: np.ndarray  # seconds from the case start
    tick: np.ndarray
    source: np.ndarray  # -1 for usual traffic, else index into World.sources
    account: np.ndarray  # index into the account list of the source (or the usual accounts)
    visits: list[Visit] = field(default_factory=list)
    miss: dict[str, np.ndarray] = field(default_factory=dict)


def arrivals(rng: np.random.Generator, world: World) -> list[Batch]:
    """Poisson arrivals per tick for every route, usual traffic and extra sources."""
    batches = []
    usual = {r.name: world.rate * r.share for r in world.topo.routes}
    for route in world.trees:
        parts = [(usual[route], -1)] + [(s.rate, k) for k, s in enumerate(world.sources)
                                        if s.route == route]
        ts, src = [], []
        for rate, k in parts:
            counts = rng.poisson(rate * TICK)
            starts = np.repeat(np.arange(len(counts)) * TICK, counts)
            ts.append(starts + rng.uniform(0, TICK, len(starts)))
            src.append(np.full(len(starts), k))
        t = np.concatenate(ts)
        order = np.argsort(t, kind="stable")
        t, s = t[order], np.concatenate(src)[order]
        batches.append(Batch(route, t, np.minimum((t // TICK).astype(int), world.clock.ticks - 1),
                             s, np.zeros(len(t), int)))
    return batches


def simulate(rng: np.random.Generator, world: World, batches: list[Batch]) -> None:
    catalog = _Catalog(world)
    for batch in batches:
        n = len(batch.ts)
        _visit(rng, world, catalog, batch, world.trees[batch.route], None, -1, 0,
               np.ones(n, bool), np.zeros(n))


class _Catalog:
    """Per service: the failures that apply, their pod masks; live pods per tick."""

    def __init__(self, world: World) -> None:
        self.by_service: dict[str, list[int]] = {}
        self.pod_mask: dict[int, np.ndarray] = {}
        n_pods = len(world.topo.pods)
        for i, f in enumerate(world.failures):
            self.by_service.setdefault(f.service, []).append(i)
            mask = np.ones(n_pods, bool)
            if f.pods is not None:
                mask = np.array([p.name in f.pods for p in world.topo.pods])
            self.pod_mask[i] = mask
        self.live = {s: world.live(s) for s in world.topo.services}
        t = np.arange(world.clock.ticks) * TICK
        self.exists = {s: np.array([(t >= p.start) & (t < p.end) for p in svc.pods])
                       for s, svc in world.topo.services.items()}


def _pick_pods(rng: np.random.Generator, world: World, catalog: _Catalog, service: str,
               tick: np.ndarray) -> np.ndarray:
    pods = world.topo.services[service].pods
    live = catalog.live[service][:, tick]  # [P, n]
    if not live.any(axis=0).all():
        live = live | (~live.any(axis=0) & catalog.exists[service][:, tick])
    count = live.sum(axis=0)
    k = np.floor(rng.random(len(tick)) * np.maximum(count, 1))
    choice = np.argmax(np.cumsum(live, axis=0) > k, axis=0)
    return np.array([p.index for p in pods])[choice]


def _visit(rng: np.random.Generator, world: World, catalog: _Catalog, batch: Batch, call: Call,
           caller: str | None, parent: int, attempt: int, present: np.ndarray,
           start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Visit `call` for the requests in `present`, starting at `start` (ms after arrival);
    returns when the caller sees the answer and whether the failure reaches the caller."""
    n = len(present)
    tick = batch.tick
    service = world.topo.services[call.service]
    pod = _pick_pods(rng, world, catalog, call.service, tick)
    zero = np.zeros(n)
    net = rng.lognormal(np.log(0.6), 0.4, n) if caller else zero
    out_delay = world.net_delay.get(caller, None) if caller else None
    back_delay = world.net_delay.get(call.service, None) if caller else None
    jitter = lambda d: d[tick] * rng.uniform(0.8, 1.2, n) if d is not None else zero  # noqa: E731
    server_start = start + net / 2 + jitter(out_delay)
    reason = np.full(n, OK)
    failure = np.full(n, -1)
    if caller and call.service in world.tls_broken:
        reason[present & (world.tls_broken[call.service][tick] > 0)] = TLS
    if caller:
        reason[present & (reason == OK) & world.down[pod, tick]] = REFUSED
    served = present & (reason == OK)
    own = rng.lognormal(np.log(service.base_ms), 0.35, n) * world.slow[pod, tick] + \
        world.extra_ms[pod, tick]
    for k, source in enumerate(world.sources):
        if source.heavy and source.heavy[0] == call.service:
            own = np.where(batch.source == k, own * source.heavy[1], own)
    draw = rng.random(n)
    for i in catalog.by_service.get(call.service, []):
        f = world.failures[i]
        if f.ops is not None and call.op not in f.ops:
            continue
        hit = served & (failure < 0) & catalog.pod_mask[i][pod] & (draw < f.p[tick])
        failure[hit] = i
        draw = np.where(hit, 2.0, draw - np.where(catalog.pod_mask[i][pod], f.p[tick], 0))
    for k, source in enumerate(world.sources):
        f = source.failure
        if f is not None and f.service == call.service:
            hit = served & (failure < 0) & (batch.source == k) & (rng.random(n) < f.p[tick])
            failure[hit] = len(world.failures) + k
    index = len(batch.visits)
    visit = Visit(call, caller, parent, attempt, present, pod, start, zero, server_start,
                  zero, served, reason, failure)
    batch.visits.append(visit)
    if call.kind == "cache_get":
        ratio = world.hit_ratio[call.service][tick]
        visit.hit = served & (rng.random(n) < ratio)
        batch.miss[call.service] = present & ~visit.hit
    cursor = server_start + own * 0.6
    upstream = np.zeros(n, bool)
    alive = served & (failure < 0)
    for group in call.steps:
        ends = cursor.copy()
        for child in group:
            mask = alive.copy()
            if child.on_miss:
                mask &= batch.miss.get(child.on_miss, np.zeros(n, bool))
            if not mask.any():
                continue
            child_start = cursor + rng.uniform(0.02, 0.3, n)
            end, failed = _visit(rng, world, catalog, batch, child, call.service, index, 0,
                                 mask, child_start)
            ends = np.where(mask, np.maximum(ends, end), ends)
            upstream |= failed & mask
        cursor = ends + rng.uniform(0.01, 0.2, n)
        alive &= ~upstream
    server_end = np.where(served, cursor + own * 0.4, server_start)
    end = server_end + net / 2 + jitter(back_delay)
    end = np.where(served, end, start + rng.uniform(1, 12, n))
    reason[served & (failure >= 0)] = OWN
    reason[served & (failure < 0) & upstream] = UPSTREAM
    if caller:
        late = present & (end - start > call.timeout_ms)
        reason[late & (reason == OK)] = TIMEOUT
        end = np.where(late, start + call.timeout_ms, end)
    visit.client_end, visit.server_end, visit.reason = end, server_end, reason
    failed = present & (reason != OK)
    if call.kind in ("cache_get", "cache_set"):
        failed = np.zeros(n, bool)
    if attempt + 1 < call.attempts and caller:
        again = failed.copy()
        if again.any():
            backoff = rng.uniform(20, 120, n) * 2 ** attempt
            end2, failed2 = _visit(rng, world, catalog, batch, call, caller, parent,
                                   attempt + 1, again, end + backoff)
            end = np.where(again, end2, end)
            return end, np.where(again, failed2, failed & (rng.random(n) < call.propagate))
    return end, failed & (rng.random(n) < call.propagate)
