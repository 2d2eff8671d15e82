"""Genuine capacity: new partner clients ramp up traffic; the cache stays healthy.

From 09:00 UTC thirty new partner clients start calling inference-api and request volume
more than doubles over ten minutes. The cache hit ratio dips only slightly (new prompts are not
cached yet) and only after the traffic has grown. GPU load climbs because there is more work:
this is capacity, and the control case that keeps the cache analyzer honest.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from casebook.examples.seeds import inference
from casebook.examples.seeds.casefile import write_case
from casebook.executor.datasets.casedir import Cause

ONSET = datetime(2026, 4, 2, 9, 0, tzinfo=UTC)
EXPECTED = [Cause("service", "inference-api", "capacity")]


def cache_hit(minute: float) -> float:
    return 0.86 - 0.06 * min(1.0, max(0.0, minute - 2) / 12)


def rate(minute: float) -> tuple[float, float]:
    ramp = min(1.0, max(0.0, minute) / 10)
    return inference.BASE_RATE, inference.BASE_RATE * 1.6 * ramp


def generate(directory: Path, seed: int = 5) -> Path:
    rng = np.random.default_rng(seed)
    story = inference.Story(ONSET, cache_hit, rate, new_clients=30, events=[
        {"ts": ONSET + timedelta(minutes=9), "kind": "scale", "service": "inference-api",
         "summary": "autoscaler: inference-api 8 -> 12 replicas", "attributes": {}},
        {"ts": ONSET - timedelta(minutes=25), "kind": "config", "service": "billing",
         "summary": "billing: invoice batch size 500 -> 800", "attributes": {}},
    ])
    return write_case(directory, alert=inference.alert(ONSET),
                      tables=inference.tables(story, rng), expected=EXPECTED,
                      about={"scenario": "capacity", "truth": "real traffic growth"})


def alert():
    return inference.alert(ONSET)
