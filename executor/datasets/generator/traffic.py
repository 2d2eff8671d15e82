"""Time, traffic and the state of every pod over time: what the faults and the noise change.

The state lives on a 5-second grid. Faults and distractors edit it; the load each service gets
follows from the route rates and the call trees, and a service near its capacity slows down
like a queue does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from casebook.executor.datasets.generator.topology import Call, Topology, expand

TICK = 5.0


@dataclass
class Clock:
    start: datetime
    seconds: float
    interval: float  # metric sample interval

    @property
    def ticks(self) -> int:
        return int(np.ceil(self.seconds / TICK))

    def tick(self, seconds: float) -> int:
        return int(min(self.ticks - 1, max(0, seconds // TICK)))

    def at(self, seconds: float) -> datetime:
        return self.start + timedelta(seconds=float(seconds))

    def ramp(self, begin: float, length: float) -> np.ndarray:
        """0 before `begin`, rising linearly to 1 over `length` seconds, then 1."""
        t = np.arange(self.ticks) * TICK
        return np.clip((t - begin) / max(length, TICK), 0.0, 1.0)

    def after(self, begin: float, end: float = 1e12) -> np.ndarray:
        t = np.arange(self.ticks) * TICK
        return ((t >= begin) & (t < end)).astype(float)


@dataclass
class Failure:
    """A way requests to a service fail: probability per tick, on some pods or ops only."""

    service: str
    p: np.ndarray
    etype: str
    message: str
    status: int = 500
    pods: set[str] | None = None
    ops: set[str] | None = None
    level: str = "error"


@dataclass
class Source:
    """Extra traffic on one route (abuse, a surge): its rate and whose accounts send it."""

    route: str
    rate: np.ndarray  # requests per second per tick
    accounts: list[str]
    heavy: tuple[str, float] | None = None  # (service, work multiplier) for these requests
    failure: Failure | None = None


@dataclass
class World:
    topo: Topology
    clock: Clock
    rate: np.ndarray  # requests per second at the edge per tick (daily curve)
    slow: np.ndarray  # [pod, tick] multiplier on own time
    extra_ms: np.ndarray  # [pod, tick]
    down: np.ndarray  # [pod, tick] bool: restarting, refuses connections
    cpu_extra: np.ndarray  # [pod, tick] CPU used by something else in the container
    failures: list[Failure] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    net_delay: dict[str, np.ndarray] = field(default_factory=dict)
    tls_broken: dict[str, np.ndarray] = field(default_factory=dict)
    hit_ratio: dict[str, np.ndarray] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    logs: list[dict] = field(default_factory=list)
    extra_metrics: list[dict] = field(default_factory=list)
    memory: np.ndarray | None = None  # [pod, tick] working set bytes, set by the writer
    restarts: dict[int, list[float]] = field(default_factory=dict)  # pod index -> restart times
    node_extra: dict[str, np.ndarray] = field(default_factory=dict)  # node -> CPU share used
    trees: dict[str, Call] = field(default_factory=dict)
    load: dict[str, np.ndarray] = field(default_factory=dict)  # service -> requests/s per tick
    gauges: dict[str, np.ndarray] = field(default_factory=dict)  # name -> [pod, tick], NaN: none
    tight: dict[str, float] = field(default_factory=dict)  # service -> usual utilisation

    def pod_array(self, fill: float = 0.0) -> np.ndarray:
        return np.full((len(self.topo.pods), self.clock.ticks), fill)

    def grow(self) -> None:
        """Make room for pods added after the state was made."""
        extra = len(self.topo.pods) - self.slow.shape[0]
        if extra > 0:
            pad = ((0, extra), (0, 0))
            self.slow = np.pad(self.slow, pad, constant_values=1.0)
            self.extra_ms = np.pad(self.extra_ms, pad)
            self.down = np.pad(self.down, pad)
            self.cpu_extra = np.pad(self.cpu_extra, pad)
            for name, values in self.gauges.items():
                self.gauges[name] = np.pad(values, pad, constant_values=np.nan)

    def live(self, service: str) -> np.ndarray:
        """[pod of service, tick] bool: the pod exists and serves."""
        t = np.arange(self.clock.ticks) * TICK
        pods = self.topo.services[service].pods
        return np.array([(t >= p.start) & (t < p.end) for p in pods]) & ~self.down[
            [p.index for p in pods]]


def daily_curve(rng: np.random.Generator, clock: Clock, base_rps: float) -> np.ndarray:
    """Edge traffic: a daily cycle (peak in the afternoon) with slow wander and noise."""
    t = np.arange(clock.ticks) * TICK
    hours = (clock.start.hour + clock.start.minute / 60) + t / 3600
    cycle = 1 + 0.45 * np.sin(2 * np.pi * (hours - 9) / 24)
    wander = np.cumsum(rng.normal(0, 0.004, clock.ticks))
    return base_rps * cycle * np.exp(wander - wander.mean())


def new_world(rng: np.random.Generator, topo: Topology, clock: Clock) -> World:
    n = len(topo.pods)
    world = World(topo=topo, clock=clock, rate=daily_curve(rng, clock, float(rng.uniform(4, 10))),
                  slow=np.ones((n, clock.ticks)), extra_ms=np.zeros((n, clock.ticks)),
                  down=np.zeros((n, clock.ticks), bool), cpu_extra=np.zeros((n, clock.ticks)))
    for s in topo.services.values():
        if s.kind == "cache":
            world.hit_ratio[s.name] = np.clip(rng.uniform(0.85, 0.97) + rng.normal(
                0, 0.01, clock.ticks), 0, 1)
    world.trees = {r.name: expand(topo, r.root) for r in topo.routes}
    return world


def route_rates(world: World) -> dict[str, np.ndarray]:
    rates = {r.name: world.rate * r.share for r in world.topo.routes}
    for source in world.sources:
        rates[source.route] = rates[source.route] + source.rate
    return rates


def expected_load(world: World) -> dict[str, np.ndarray]:
    """Requests per second each service receives, from the route rates and the call trees."""
    load = {s: np.zeros(world.clock.ticks) for s in world.topo.services}
    fail = {s: _failure_share(world, s) for s in world.topo.services}
    for route, rate in route_rates(world).items():
        _visit_load(world, world.trees[route], rate, load, fail)
    return load


def _failure_share(world: World, service: str) -> np.ndarray:
    p = np.zeros(world.clock.ticks)
    for f in world.failures:
        if f.service == service:
            share = 1.0
            if f.pods is not None:
                pods = world.topo.services[service].pods
                share = sum(p.name in f.pods for p in pods) / max(1, len(pods))
            p = p + f.p * share
    if service in world.tls_broken:
        p = p + world.tls_broken[service]
    return np.clip(p, 0, 1)


def _visit_load(world: World, call: Call, rate: np.ndarray, load: dict, fail: dict) -> None:
    if call.on_miss:
        rate = rate * (1 - world.hit_ratio[call.on_miss])
    tries = sum(fail[call.service] ** k for k in range(call.attempts))
    rate = rate * tries
    load[call.service] += rate
    for group in call.steps:
        for child in group:
            _visit_load(world, child, rate, load, fail)


def settle(rng: np.random.Generator, world: World, onset: float) -> None:
    """Size every service for its load before the onset, then slow it down wherever load
    nears capacity (a queue: the closer to full, the longer the wait)."""
    load = expected_load(world)
    before = max(1, world.clock.tick(onset))
    for s in world.topo.services.values():
        pods = max(1, int(world.live(s.name)[:, before - 1].sum()))
        usual = float(np.percentile(load[s.name][:before], 90))
        rho = world.tight.get(s.name) or float(rng.uniform(0.25, 0.5))
        s.capacity = max(usual, 0.05) / (pods * rho)
    world.load = load
    for s in world.topo.services.values():
        live = world.live(s.name).sum(axis=0)
        rho = load[s.name] / (s.capacity * np.maximum(live, 1))
        queue = 1 / (1 - np.minimum(rho, 0.96))
        factor = np.maximum(1.0, queue / 2.0)
        for p in s.pods:
            world.slow[p.index] *= factor


def cpu_ratio(rng: np.random.Generator, world: World) -> np.ndarray:
    """[pod, tick] CPU used over the limit: a base, the share of capacity in use, extras."""
    cpu = world.pod_array()
    for s in world.topo.services.values():
        live = world.live(s.name)
        per_pod = world.load[s.name] / np.maximum(live.sum(axis=0), 1)
        for i, p in enumerate(s.pods):
            busy = 0.04 + 0.85 * per_pod / s.capacity
            cpu[p.index] = np.where(live[i], busy, 0.02)
    cpu += world.cpu_extra + rng.normal(0, 0.015, cpu.shape)
    return np.clip(cpu, 0.005, 1.0)
