"""Generated incidents: random systems, realistic noise and one injected fault per case.

    paths = generate(Path("/tmp/cases"), seed=1000, cases=13)

Case `seed` holds fault class CLASSES[seed % len(CLASSES)]; everything else (topology, traffic,
magnitudes, timing, distractors) comes from the seed, so one seed is one case, always the same.
The generator knows only the conventions of docs/telemetry.md. Seeds 1000-1999 are for
development; 5000-5999 are held out for evaluation (`make backtest` uses 5000-5059).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from casebook.executor.datasets.casedir import Case, rows_table, write_case
from casebook.executor.datasets.generator import demand, faults, metrics, noise, traces
from casebook.executor.datasets.generator.alerting import first_firing
from casebook.executor.datasets.generator.simulation import arrivals, simulate
from casebook.executor.datasets.generator.topology import build
from casebook.executor.datasets.generator.traffic import Clock, new_world, settle
from casebook.sdk.models import Alert

CLASSES = ("change_regression", "slow_release", "canary_release", "network_delay",
           "memory_leak", "disk_full", "cert_expiry", "noisy_neighbour", "retry_storm",
           "cache_restart", "cpu_hog", "abuse", "capacity_surge")
SLOW = {"slow_release": 3300.0, "memory_leak": 2700.0}
DEVELOPMENT_SEEDS = range(1000, 2000)
EVALUATION_SEEDS = range(5000, 6000)

__all__ = ["CLASSES", "DEVELOPMENT_SEEDS", "EVALUATION_SEEDS", "generate", "generate_case"]


def generate(out: Path, seed: int = 1000, cases: int = 13,
             on_case: Callable[[int, int, str], None] | None = None) -> list[Path]:
    """Write cases for seeds seed .. seed+cases-1 under OUT; `on_case(done, total, name)`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(cases):
        case = generate_case(seed + k)
        paths.append(write_case(out, case))
        if on_case is not None:
            on_case(k + 1, cases, case.name)
    return paths


def generate_case(seed: int) -> Case:
    """One case; a fault too weak to page anyone is drawn again from the same seed."""
    klass = CLASSES[seed % len(CLASSES)]
    for attempt in range(6):
        case = _attempt(np.random.default_rng([seed, attempt]), seed, klass)
        if case is not None:
            return case
    raise RuntimeError(f"seed {seed} ({klass}): no alert fired in 6 draws")


def _attempt(rng: np.random.Generator, seed: int, klass: str) -> Case | None:
    history = float(rng.uniform(50, 90)) * 60
    after = SLOW.get(klass, 1500.0)
    seconds = history + after
    interval = float(rng.choice([15.0, 30.0])) if seconds <= 80 * 60 else float(
        rng.choice([30.0, 60.0]))
    day = datetime(2026, 1, 5, tzinfo=UTC) + timedelta(days=int(rng.integers(0, 300)),
                                                       minutes=int(rng.integers(0, 1440)))
    clock = Clock(day.replace(second=0), seconds, interval)
    topo = build(rng, seconds)
    world = new_world(rng, topo, clock)
    metrics.base_gauges(rng, world)
    accounts = demand.account_base(rng)
    onset = history
    world.load = {}
    if klass in ("abuse", "capacity_surge"):
        fault = getattr(demand, klass)(rng, world, onset, accounts)
    else:
        if klass == "retry_storm":
            from casebook.executor.datasets.generator.traffic import expected_load
            world.load = expected_load(world)
        fault = getattr(faults, klass)(rng, world, onset)
    made = noise.add_noise(rng, world, fault, fault.about.get("victim", fault.cause.name))
    world.trees = {r.name: _expand(topo, r) for r in topo.routes}
    settle(rng, world, fault.onset)
    batches = arrivals(rng, world)
    simulate(rng, world, batches)
    counts = metrics.count(world, batches)
    firing = first_firing(rng, world, counts, fault.alert_on, fault.onset)
    if firing is None or firing.at > seconds - 120:
        return None
    end = min(seconds, firing.at + float(rng.uniform(600, 900)))
    traces.assign_accounts(rng, world, batches, accounts)
    requests = traces.access_log(world, batches, accounts, end, rng)
    total = sum(int((b.ts < end).sum()) for b in batches)
    sample = float(np.clip(rng.uniform(150, 300) / max(total, 1), 0.001, 0.2))
    tables = {
        "metrics": metrics.rows(rng, world, counts, end),
        "spans": traces.spans(rng, world, batches, accounts, sample, end),
        "logs": traces.logs(rng, world, batches, accounts, end),
        "events": [e for e in world.events if e["ts"] < clock.at(end)],
        "requests": requests,
        "accounts": traces.account_rows(rng, world, accounts, requests),
    }
    alert = Alert(name=firing.name, starts_at=clock.at(firing.at), source="alertmanager",
                  labels={"service": firing.service, "severity": "page"},
                  annotations={"summary": firing.summary})
    name = f"gen-{seed:04d}-{klass}"
    about = {"dataset": "generated", "class": klass, "seed": seed,
             "onset": clock.at(fault.onset).isoformat(), "alert_at": alert.starts_at.isoformat(),
             "services": len(topo.services), "interval_s": interval, "trace_sampling": sample,
             **made, **{k: v for k, v in fault.about.items()}}
    return Case(name=name, alert=alert,
                tables={t: rows_table(t, rows) for t, rows in tables.items()},
                causes=[fault.cause], metadata=about)


def _expand(topo, route):
    from casebook.executor.datasets.generator.topology import expand
    return expand(topo, route.root)
