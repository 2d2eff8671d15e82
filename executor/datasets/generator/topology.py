"""A random system: services in layers, their pods on shared nodes, and the call trees of routes.

Only what docs/telemetry.md describes is modelled: HTTP services with server and client spans,
databases and caches reached by untraced client calls, pods with versions placed on nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NOUNS = (
    "cart", "checkout", "payment", "ledger", "invoice", "catalog", "search", "pricing", "quote",
    "inventory", "shipping", "tracking", "profile", "identity", "session", "auth", "consent",
    "wallet", "refund", "coupon", "promo", "review", "rating", "media", "thumbnail", "upload",
    "notify", "email", "sms", "push", "feed", "timeline", "graph", "recommend", "ranking",
    "ads", "billing", "usage", "metering", "quota", "geo", "address", "tax", "fraud", "risk",
    "kyc", "document", "export", "report", "audit", "webhook", "partner", "booking", "seat",
    "route", "fleet", "driver", "order", "basket", "stock", "warehouse", "label", "locale",
    "currency", "fx", "loyalty", "reward", "gift", "subscription", "plan", "entitlement",
)
SUFFIXES = ("", "", "", "-api", "-svc", "-service", "-backend")
VERBS = ("GET", "GET", "GET", "POST", "PUT")


@dataclass
class Pod:
    name: str
    service: str
    version: str
    node: str
    start: float  # seconds from the case start
    end: float
    index: int = -1  # position in Topology.pods


@dataclass
class Service:
    name: str
    kind: str  # app, db, cache, edge, job
    layer: int
    base_ms: float  # median own processing time
    error_p: float  # background failure probability
    pods: list[Pod] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)
    version: str = ""
    capacity: float = 1.0  # requests per second one pod serves at full CPU
    tls: bool = False
    volume: bool = False
    memory_limit: float = 2 ** 30


@dataclass
class Call:
    """One call site in a route's tree: the callee, how it is called and what it calls in turn."""

    service: str
    op: str
    kind: str = "http"  # http, db, cache_get, cache_set
    steps: list[list[Call]] = field(default_factory=list)  # sequential groups of parallel calls
    on_miss: str | None = None  # only made when this cache missed for the request
    attempts: int = 1
    timeout_ms: float = 5000.0
    propagate: float = 0.9  # chance that this call's failure fails the caller


@dataclass
class Route:
    name: str
    share: float
    root: Call


@dataclass
class Topology:
    services: dict[str, Service]
    nodes: list[str]
    routes: list[Route]
    edge: str
    handlers: dict[tuple[str, str], list[list[Call]]]
    pods: list[Pod] = field(default_factory=list)

    def callers(self, service: str) -> set[str]:
        return {s for (s, _), steps in self.handlers.items()
                for group in steps for c in group if c.service == service}

    def callees(self, service: str) -> set[str]:
        return {c.service for (s, _), steps in self.handlers.items() if s == service
                for group in steps for c in group}

    def ancestors(self, service: str) -> list[str]:
        """Callers, their callers, ... nearest first."""
        seen: list[str] = []
        frontier = [service]
        while frontier:
            nxt = []
            for s in frontier:
                for c in sorted(self.callers(s)):
                    if c not in seen and c != service:
                        seen.append(c)
                        nxt.append(c)
            frontier = nxt
        return seen

    def add_pod(self, pod: Pod) -> Pod:
        pod.index = len(self.pods)
        self.pods.append(pod)
        self.services[pod.service].pods.append(pod)
        return pod

    def apps(self) -> list[str]:
        return [s.name for s in self.services.values() if s.kind == "app"]


def token(rng: np.random.Generator, length: int, alphabet: str = "bcdfghjklmnpqrstvwxz2456789"
          ) -> str:
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), size=length))


def version(rng: np.random.Generator) -> str:
    return f"2026.{int(rng.integers(1, 13)):02d}.{int(rng.integers(0, 30))}-{token(rng, 6, '0123456789abcdef')}"


def pod_name(rng: np.random.Generator, service: Service, ordinal: int, replica_set: str) -> str:
    if service.kind in ("db", "cache"):
        return f"{service.name}-{ordinal}"
    return f"{service.name}-{replica_set}-{token(rng, 5)}"


def build(rng: np.random.Generator, horizon: float) -> Topology:
    """A system of 20 to 60 services; every service is reachable from the edge."""
    n = int(rng.integers(20, 61))
    names = [str(x) for x in rng.permutation(NOUNS)]
    n_db = max(2, int(round(n * rng.uniform(0.08, 0.14))))
    n_cache = max(1, int(round(n * rng.uniform(0.04, 0.08))))
    n_app = n - 1 - n_db - n_cache
    layers = int(rng.integers(3, 5))
    services: dict[str, Service] = {}
    edge_name = str(rng.choice(["api-gateway", "frontend", "edge-proxy", "web-bff", "public-api"]))
    services[edge_name] = Service(edge_name, "edge", 0, float(rng.uniform(1, 4)), 0.0002)
    for i in range(n_app):
        name = names[i] + str(rng.choice(SUFFIXES))
        layer = 1 + min(layers - 1, int(i * layers / n_app))
        services[name] = Service(name, "app", layer, float(rng.lognormal(np.log(8), 0.7)),
                                 float(rng.uniform(0.0002, 0.002)),
                                 tls=bool(rng.random() < 0.5), volume=bool(rng.random() < 0.3))
    for i in range(n_db):
        name = names[n_app + i] + str(rng.choice(["-db", "-postgres", "-pg"]))
        services[name] = Service(name, "db", layers + 1, float(rng.lognormal(np.log(3), 0.5)),
                                 0.0001, volume=True)
    for i in range(n_cache):
        name = names[n_app + n_db + i] + str(rng.choice(["-cache", "-redis"]))
        services[name] = Service(name, "cache", layers + 1, float(rng.uniform(0.3, 1.2)), 0.00005)
    for s in services.values():
        s.version = version(rng)
        s.memory_limit = float(rng.choice([512, 1024, 2048, 4096])) * 2 ** 20
        if s.kind in ("app", "edge"):
            s.ops = [f"{rng.choice(VERBS)} /{s.name.split('-')[0]}/{w}" for w in
                     rng.choice(["items", "list", "detail", "update", "status", "lookup", "batch"],
                                size=int(rng.integers(1, 4)), replace=False)]
        elif s.kind == "db":
            table = s.name.split("-")[0]
            s.ops = [f"SELECT {table}", f"INSERT {table}", f"UPDATE {table}"]
        else:
            s.ops = ["GET", "SET"]
    nodes = [f"ip-10-0-{int(rng.integers(1, 9))}-{int(rng.integers(10, 250))}.ec2.internal"
             for _ in range(int(rng.integers(4, 10)))]
    topo = Topology(services, sorted(set(nodes)), [], edge_name, {})
    _place_pods(rng, topo, horizon)
    _wire(rng, topo, layers)
    return topo


def _place_pods(rng: np.random.Generator, topo: Topology, horizon: float) -> None:
    for s in topo.services.values():
        count = {"db": 1, "cache": 1}.get(s.kind) or int(rng.integers(1, 5))
        replica_set = token(rng, int(rng.integers(8, 11)))
        for ordinal in range(count):
            topo.add_pod(Pod(pod_name(rng, s, ordinal, replica_set), s.name, s.version,
                             str(rng.choice(topo.nodes)), -1e9, 1e12))


def _wire(rng: np.random.Generator, topo: Topology, layers: int) -> None:
    by_layer: dict[int, list[Service]] = {}
    for s in topo.services.values():
        by_layer.setdefault(s.layer, []).append(s)
    calls: dict[tuple[str, str], list[Call]] = {}
    reachable: dict[str, list[str]] = {topo.edge: list(topo.services[topo.edge].ops)}
    apps = [s for s in topo.services.values() if s.kind == "app"]
    # every service gets a caller one or more layers up (the edge for the first layer)
    for s in sorted(topo.services.values(), key=lambda s: s.layer):
        if s.kind == "edge":
            continue
        if s.layer == 1:
            uppers = [topo.services[topo.edge]]
        else:
            uppers = [u for u in apps if u.layer < s.layer] or [topo.services[topo.edge]]
        caller = uppers[int(rng.integers(len(uppers)))]
        _attach(rng, topo, calls, reachable, caller, s)
    # extra edges make a graph, not a tree
    for s in apps:
        for _ in range(int(rng.poisson(1.0))):
            lower = [t for t in topo.services.values() if t.layer > s.layer and t.kind != "cache"]
            if lower:
                _attach(rng, topo, calls, reachable, s, lower[int(rng.integers(len(lower)))])
    for (service, op), flat in calls.items():
        topo.handlers[(service, op)] = _group(rng, flat)
    edge = topo.services[topo.edge]
    routes = []
    for op in edge.ops:
        if (edge.name, op) in topo.handlers:
            routes.append(op)
    shares = rng.dirichlet(np.ones(len(routes)) * 2)
    topo.routes = [Route(op, float(sh), Call(edge.name, op)) for op, sh in zip(routes, shares, strict=True)]


def _attach(rng: np.random.Generator, topo: Topology, calls: dict,
            reachable: dict[str, list[str]], caller: Service, callee: Service) -> None:
    ops = reachable.get(caller.name)
    if not ops:
        return
    op = ops[int(rng.integers(len(ops)))]
    if caller.kind == "edge" and len(caller.ops) < 5 and (caller.name, op) in calls:
        op = f"{rng.choice(VERBS)} /api/{callee.name.split('-')[0]}"
        if op not in caller.ops:
            caller.ops.append(op)
            reachable[caller.name].append(op)
    mine = calls.setdefault((caller.name, op), [])
    if any(c.service == callee.name for c in mine):
        return
    timeout = float(rng.choice([1000, 2000, 3000, 5000]))
    if callee.kind == "cache":
        store = [c for c in topo.services.values() if c.kind == "db"]
        db = store[int(rng.integers(len(store)))]
        mine.append(Call(callee.name, "GET", "cache_get", timeout_ms=200, propagate=0.0))
        mine.append(Call(db.name, db.ops[0], "db", on_miss=callee.name, timeout_ms=timeout))
        mine.append(Call(callee.name, "SET", "cache_set", on_miss=callee.name, timeout_ms=200,
                         propagate=0.0))
        return
    if callee.kind == "db":
        mine.append(Call(callee.name, str(rng.choice(callee.ops)), "db", timeout_ms=timeout))
        return
    callee_op = callee.ops[int(rng.integers(len(callee.ops)))]
    if callee_op not in reachable.setdefault(callee.name, []):
        reachable[callee.name].append(callee_op)
    mine.append(Call(callee.name, callee_op, "http",
                     attempts=int(rng.choice([1, 1, 2])), timeout_ms=timeout,
                     propagate=float(rng.choice([1.0, 1.0, 0.9, 0.5]))))


def _group(rng: np.random.Generator, flat: list[Call]) -> list[list[Call]]:
    """Sequential steps, some of them parallel groups; cache lookups stay in order."""
    steps: list[list[Call]] = []
    for call in flat:
        parallel = (steps and call.kind == "http" and steps[-1][-1].kind == "http"
                    and len(steps[-1]) < 3 and rng.random() < 0.3)
        if parallel:
            steps[-1].append(call)
        else:
            steps.append([call])
    return steps


def expand(topo: Topology, call: Call, depth: int = 0) -> Call:
    """The call with its callee's handler expanded into a full tree (bounded depth)."""
    steps = topo.handlers.get((call.service, call.op), []) if depth < 6 else []
    return Call(call.service, call.op, call.kind,
                [[expand(topo, c, depth + 1) for c in group] for group in steps],
                call.on_miss, call.attempts, call.timeout_ms, call.propagate)
