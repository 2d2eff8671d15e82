"""Who sends the traffic: the account base, and the two classes that are about demand: abuse by
a cohort of new accounts (a burst, or low and slow) and a genuine surge of established ones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from casebook.executor.datasets.casedir import Cause
from casebook.executor.datasets.generator.faults import Fault
from casebook.executor.datasets.generator.traffic import Failure, Source, World


@dataclass
class Accounts:
    ids: list[str]
    created: list[float]  # seconds from the case start (negative: before it)
    weights: np.ndarray  # usual traffic share of the established accounts
    established: int


def account_base(rng: np.random.Generator) -> Accounts:
    n = int(rng.integers(1500, 4000))
    ids = [f"acct-{int(x):07d}" for x in rng.choice(9_000_000, size=n, replace=False)]
    created = list(-rng.uniform(3 * 86400, 900 * 86400, n))
    weights = rng.pareto(1.2, n) + 0.05
    return Accounts(ids, created, weights / weights.sum(), n)


def _cohort(rng: np.random.Generator, accounts: Accounts, size: int, first: float,
            spread: float) -> list[str]:
    ids = [f"acct-{int(x):07d}" for x in rng.choice(range(9_000_000, 9_999_999), size=size,
                                                    replace=False)]
    accounts.ids += ids
    accounts.created += list(first + rng.uniform(0, spread, size))
    return ids


def _first_hop(world: World, route: str) -> str:
    tree = world.trees[route]
    for group in tree.steps:
        for c in group:
            if c.kind == "http":
                return c.service
    return tree.service


def _busy_route(rng: np.random.Generator, world: World) -> str:
    routes = [r for r in world.topo.routes if _first_hop(world, r.name) != world.topo.edge]
    shares = np.array([r.share for r in routes])
    return routes[int(rng.choice(len(routes), p=shares / shares.sum()))].name


def abuse(rng: np.random.Generator, world: World, onset: float, accounts: Accounts) -> Fault:
    route = _busy_route(rng, world)
    target = _first_hop(world, route)
    usual = float(np.mean(world.rate)) * next(r.share for r in world.topo.routes
                                              if r.name == route)
    low_and_slow = rng.random() < 0.4
    if low_and_slow:
        size = int(rng.integers(100, 200))
        cohort = _cohort(rng, accounts, size, onset - float(rng.uniform(3, 48)) * 3600,
                         float(rng.uniform(600, 3600)))
        total = usual * float(rng.uniform(1.2, 2.5))
        heavy = float(rng.uniform(2.0, 4.0))
        failure = None
    else:
        size = int(rng.integers(40, 300))
        cohort = _cohort(rng, accounts, size, onset - float(rng.uniform(600, 5400)),
                         float(rng.uniform(60, 600)))
        total = usual * float(rng.uniform(1.5, 5.0))
        heavy = float(rng.uniform(3.0, 8.0))
        etype = str(rng.choice(["DecompressionBombError", "PayloadTooLargeError",
                                "CardDeclinedError", "ValidationError"]))
        failure = Failure(target, world.clock.after(onset) * float(rng.uniform(0.3, 0.8)), etype,
                          f"{etype}: rejected request from suspicious payload")
    rate = world.clock.ramp(onset, float(rng.uniform(10, 120))) * total
    world.sources.append(Source(route, rate, cohort, (target, heavy), failure))
    world.tight[target] = float(rng.uniform(0.4, 0.55))
    return Fault("abuse", Cause("service", target, "abuse"), onset,
                 [target, world.topo.edge], about={"variant": "low_and_slow" if low_and_slow
                                                   else "burst", "cohort": size,
                                                   "route": route})


def capacity_surge(rng: np.random.Generator, world: World, onset: float,
                   accounts: Accounts) -> Fault:
    route = _busy_route(rng, world)
    target = _first_hop(world, route)
    usual = float(np.mean(world.rate)) * next(r.share for r in world.topo.routes
                                              if r.name == route)
    size = int(rng.integers(150, min(800, accounts.established)))
    clients = [accounts.ids[i] for i in rng.choice(accounts.established, size=size,
                                                   replace=False)]
    rate = world.clock.ramp(onset, float(rng.uniform(60, 360))) * usual * float(
        rng.uniform(1.5, 3.5))
    world.sources.append(Source(route, rate, clients))
    world.tight[target] = float(rng.uniform(0.45, 0.6))
    return Fault("capacity_surge", Cause("service", target, "capacity"), onset,
                 [target, world.topo.edge], about={"route": route, "clients": size})


def created_at(world: World, accounts: Accounts) -> list:
    return [world.clock.start + timedelta(seconds=float(s)) for s in accounts.created]
