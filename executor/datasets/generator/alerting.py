"""The alert that pages: Prometheus-style rules on error ratio and p95 latency, each with a
`for:` duration, evaluated on the same metrics the case contains. The first rule to fire among
the services that show the fault pages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from casebook.executor.datasets.generator.metrics import Counts
from casebook.executor.datasets.generator.traffic import World


@dataclass
class Firing:
    name: str
    service: str
    at: float  # seconds from the case start
    summary: str
    for_minutes: int


def first_firing(rng: np.random.Generator, world: World, counts: Counts, candidates: list[str],
                 onset: float) -> Firing | None:
    for_minutes = int(rng.integers(2, 6))
    step = world.clock.interval
    need = max(1, int(round(for_minutes * 60 / step)))
    before = counts.samples <= onset
    firings: list[Firing] = []
    for service in dict.fromkeys(candidates):
        pods = [p.index for p in world.topo.services[service].pods]
        req = counts.requests[pods].sum(axis=0)
        err = counts.errors[pods].sum(axis=0)
        window = max(1, int(round(120 / step)))  # rate over the last 2 minutes
        kernel = np.ones(window)
        ratio = np.convolve(err, kernel)[: len(err)] / np.maximum(
            np.convolve(req, kernel)[: len(req)], 1)
        usual = float(np.mean(ratio[before])) if before.any() else 0.0
        threshold = max(0.05, 3 * usual + 0.02)
        firings += _fires("HighErrorRate", service, ratio > threshold, counts, onset, need,
                          f"{service} error ratio above {threshold:.0%} for {for_minutes}m",
                          for_minutes)
        p95 = counts.p95.get(service)
        if p95 is None:
            continue
        p95 = np.nan_to_num(p95, nan=0.0)
        smooth = np.convolve(p95, kernel / window)[: len(p95)]
        usual_high = float(np.percentile(smooth[before], 95)) if before.sum() > 3 else 0.0
        limit = max(1.5 * usual_high, usual_high + 80)
        firings += _fires("HighLatency", service, smooth > limit, counts, onset, need,
                          f"{service} p95 latency above {limit:.0f} ms for {for_minutes}m",
                          for_minutes)
    if not firings:
        return None
    first = min(f.at for f in firings)
    close = [f for f in firings if f.at <= first + 60]
    return close[int(rng.integers(len(close)))]


def _fires(name: str, service: str, breach: np.ndarray, counts: Counts, onset: float,
           need: int, summary: str, for_minutes: int) -> list[Firing]:
    run = 0
    for i, bad in enumerate(breach):
        run = run + 1 if bad else 0
        if run >= need and counts.samples[i - need + 1] >= onset:
            return [Firing(name, service, float(counts.samples[i]), summary, for_minutes)]
    return []
