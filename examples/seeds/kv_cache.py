"""KV cache loss: the inference prefix cache collapses, then requests and compute surge.

At 14:02 UTC the kv-cache pods are OOM-killed and come back with a broken warm-up: the hit
ratio falls from about 0.86 to about 0.04 and stays there. Every request now recomputes its
prefill, GPU load and latency climb, clients time out and retry, and request volume nearly
triples. Capacity is the symptom; the cache is the cause.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from casebook.examples.seeds import inference
from casebook.examples.seeds.casefile import write_case
from casebook.executor.datasets.casedir import Cause

ONSET = datetime(2026, 3, 14, 14, 2, tzinfo=UTC)
EXPECTED = [Cause("service", "kv-cache", "cache")]


def cache_hit(minute: float) -> float:
    return 0.86 if minute < 0 else 0.04


def rate(minute: float) -> tuple[float, float]:
    # Retries start once latency passes client timeouts, a few minutes after the collapse.
    if minute < 3:
        return inference.BASE_RATE, 0.0
    return inference.BASE_RATE * (1 + 1.7 * min(1.0, (minute - 3) / 4)), 0.0


def generate(directory: Path, seed: int = 11) -> Path:
    rng = np.random.default_rng(seed)
    story = inference.Story(ONSET, cache_hit, rate, events=[
        {"ts": ONSET, "kind": "restart", "service": "kv-cache",
         "summary": "kv-cache-0, kv-cache-1, kv-cache-2 restarted (OOMKilled)",
         "attributes": {"reason": "OOMKilled"}},
        {"ts": ONSET - timedelta(minutes=95), "kind": "deploy", "service": "inference-api",
         "summary": "inference-api v5.2.0 rolled out", "attributes": {"version": "5.2.0"}},
    ])
    return write_case(directory, alert=inference.alert(ONSET),
                      tables=inference.tables(story, rng), expected=EXPECTED,
                      about={"scenario": "kv_cache", "truth": "cache loss, not capacity"})


def alert():
    return inference.alert(ONSET)
