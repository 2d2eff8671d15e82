"""An LLM inference service in front of a KV cache: the shared shape of two seed scenarios.

Clients send requests to `inference-api`; each request reuses prompt prefixes held in
`kv-cache`. A miss means the prefill is recomputed on the GPUs, so a cache collapse looks like a
capacity problem from the outside: more compute, slower answers, client retries, more requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from casebook.sdk.models import Alert

BASE_RATE = 180  # requests per minute before the incident
CLIENTS = 120
TOKENS_PER_MISS = 2400
TOKENS_PER_HIT = 300


@dataclass
class Story:
    onset: datetime
    cache_hit: Any  # minute -> hit ratio
    rate: Any  # minute -> (requests per minute from existing clients, from new clients)
    new_clients: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)


def alert(onset: datetime) -> Alert:
    return Alert(
        name="HighRequestVolume", starts_at=onset + timedelta(minutes=8), source="alertmanager",
        labels={"service": "inference-api", "severity": "page", "team": "inference"},
        annotations={"summary": "inference-api requests and GPU load far above normal"},
    )


def tables(story: Story, rng: np.random.Generator) -> dict[str, list[dict[str, Any]]]:
    start = story.onset - timedelta(minutes=150)
    minutes = 170
    clients = [f"client-{i:03d}" for i in range(CLIENTS)]
    weights = rng.dirichlet(np.ones(CLIENTS) * 2)
    newcomers = [f"partner-{i:02d}" for i in range(story.new_clients)]
    requests: list[dict[str, Any]] = []
    metrics: list[dict[str, Any]] = []
    for m in range(minutes):
        minute = start + timedelta(minutes=m)
        relative = (minute - story.onset).total_seconds() / 60
        old_rate, new_rate = story.rate(relative)
        hit = float(np.clip(story.cache_hit(relative) + rng.normal(0, 0.012), 0.0, 1.0))
        n_old = int(rng.poisson(old_rate))
        n_new = int(rng.poisson(new_rate)) if newcomers else 0
        who = [clients[i] for i in rng.choice(CLIENTS, size=n_old, p=weights)]
        who += [newcomers[int(i)] for i in rng.integers(0, max(len(newcomers), 1), size=n_new)]
        for account in who:
            ts = minute + timedelta(seconds=float(rng.uniform(0, 60)))
            requests.append({"ts": ts, "service": "inference-api", "account_id": account,
                             "route": "/v1/generate", "status": 200,
                             "bytes": int(rng.lognormal(8, 0.5))})
        total = n_old + n_new
        tokens = total * (hit * TOKENS_PER_HIT + (1 - hit) * TOKENS_PER_MISS)
        gpu = float(np.clip(0.12 + tokens / 520_000 + rng.normal(0, 0.015), 0, 0.99))
        latency = 650 * (1 + max(0.0, gpu - 0.75) * 12) * float(rng.lognormal(0, 0.05))
        metrics += [
            {"ts": minute, "name": "http_requests_total", "service": "inference-api",
             "value": float(total)},
            {"ts": minute, "name": "prefill_tokens_total", "service": "inference-api",
             "value": round(tokens, 1)},
            {"ts": minute, "name": "gpu_utilization_ratio", "service": "inference-api",
             "value": round(gpu, 4)},
            {"ts": minute, "name": "latency_p95_ms", "service": "inference-api",
             "value": round(latency, 1)},
            {"ts": minute, "name": "cache_hit_ratio", "service": "kv-cache",
             "value": round(hit, 4), "labels": {"cache": "prefix-kv"}},
            {"ts": minute, "name": "memory_usage_ratio", "service": "kv-cache",
             "value": round(0.55 + 0.3 * hit + float(rng.normal(0, 0.01)), 4)},
            {"ts": minute, "name": "http_requests_total", "service": "billing",
             "value": float(rng.poisson(40))},
        ]
    logs = [{"ts": start + timedelta(minutes=m, seconds=float(rng.uniform(0, 60))),
             "service": "inference-api", "level": "info",
             "message": f"batch scheduled size={int(rng.integers(4, 32))}"}
            for m in range(minutes)]
    return {"requests": requests, "metrics": metrics, "logs": logs, "events": story.events}
