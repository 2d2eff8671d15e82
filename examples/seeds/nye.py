"""New Year's Eve: HTTP 500s on the image API that are really abuse.

At 23:30 UTC on 31 December a cohort of fake accounts (about 200 of some 4,000 created within
minutes of each other ten days earlier, most never used since) upload about 22 oversized images
each, in the same minute, three times. The resizer throws an unhandled DecompressionBombError on
every one of them, so the 5xx rate alarms. The code path is real, but the incident is fraud:
stop looking at the 500s.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from casebook.examples.seeds.casefile import write_case
from casebook.executor.datasets.casedir import Cause
from casebook.sdk.models import Alert

ONSET = datetime(2025, 12, 31, 23, 30, tzinfo=UTC)
ALERT_AT = ONSET + timedelta(minutes=4)
START = ONSET - timedelta(minutes=150)
END = ONSET + timedelta(minutes=20)
COHORT_CREATED = datetime(2025, 12, 20, 3, 11, tzinfo=UTC)
BURSTS = (ONSET, ONSET + timedelta(minutes=6), ONSET + timedelta(minutes=12))
EXPECTED = [Cause("service", "image-api", "abuse")]
BOMB = ("Unhandled exception in resize_image: DecompressionBombError: Image size ({pixels} "
        "pixels) exceeds limit of 89478485 pixels, could be decompression bomb DOS attack.")


def alert() -> Alert:
    return Alert(
        name="HTTP5xxHigh", starts_at=ALERT_AT, source="alertmanager",
        labels={"service": "image-api", "severity": "page", "team": "media"},
        annotations={"summary": "image-api 5xx ratio above 5% for 3 minutes"},
    )


def generate(directory: Path, seed: int = 7) -> Path:
    rng = np.random.default_rng(seed)
    accounts, cohort, attackers = _accounts(rng)
    regular = [a["account_id"] for a in accounts if not a["account_id"].startswith("acct-c")]
    requests: list[dict[str, Any]] = []
    logs: list[dict[str, Any]] = []
    spans: list[dict[str, Any]] = []
    minutes = int((END - START).total_seconds() // 60)
    for minute in range(minutes):
        base = START + timedelta(minutes=minute)
        for _ in range(rng.poisson(55)):
            ts = base + timedelta(seconds=float(rng.uniform(0, 60)))
            account = regular[int(rng.integers(len(regular)))]
            failed = rng.random() < 0.004
            _request(rng, ts, account, "timeout" if failed else None, requests, logs, spans)
    for burst in BURSTS:
        for account in attackers:
            for _ in range(int(rng.integers(19, 26))):
                ts = burst + timedelta(seconds=float(rng.uniform(0, 50)))
                _request(rng, ts, account, "bomb", requests, logs, spans)
    logs.extend(_noise_logs(rng))
    tables = {
        "requests": requests,
        "accounts": accounts,
        "logs": logs,
        "spans": spans,
        "metrics": _metrics(rng, requests),
        "events": _events(),
    }
    return write_case(directory, alert=alert(), tables=tables, expected=EXPECTED,
                      about={"scenario": "nye", "truth": "abuse by a fake-account cohort",
                             "cohort_size": len(cohort), "attackers": len(attackers)})


def _accounts(rng: np.random.Generator) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    accounts = []
    span_days = 730
    for i in range(20_000):
        created = ONSET - timedelta(days=float(rng.uniform(1, span_days)))
        last = min(ONSET, created + timedelta(days=float(rng.exponential(200))))
        accounts.append({"account_id": f"acct-{i:06d}", "created_at": created.replace(tzinfo=None),
                         "last_active_at": last.replace(tzinfo=None),
                         "country": str(rng.choice(["US", "DE", "BR", "IN", "JP", "FR"])),
                         "plan": str(rng.choice(["free", "free", "pro"]))})
    cohort = []
    for i in range(4_000):
        created = COHORT_CREATED + timedelta(seconds=float(rng.uniform(0, 540)))
        account_id = f"acct-c{i:05d}"
        cohort.append(account_id)
        accounts.append({"account_id": account_id, "created_at": created.replace(tzinfo=None),
                         "last_active_at": created.replace(tzinfo=None), "country": "US",
                         "plan": "free"})
    chosen = sorted(rng.choice(len(cohort), size=200, replace=False).tolist())
    attackers = [cohort[i] for i in chosen]
    for account in accounts:
        if account["account_id"] in set(attackers):
            account["last_active_at"] = ONSET.replace(tzinfo=None)
    return accounts, cohort, attackers


def _request(rng: np.random.Generator, ts: datetime, account: str, failure: str | None,
             requests: list[dict[str, Any]], logs: list[dict[str, Any]],
             spans: list[dict[str, Any]]) -> None:
    trace = f"{rng.integers(1 << 62):016x}{rng.integers(1 << 62):016x}"
    root, api, resize = (f"{rng.integers(1 << 62):016x}" for _ in range(3))
    status = 500 if failure == "bomb" else (504 if failure == "timeout" else 200)
    resize_ms = float(rng.gamma(4, 30)) + (900 if failure == "bomb" else 0)
    api_ms = resize_ms + float(rng.gamma(2, 10))
    gateway_ms = api_ms + float(rng.gamma(2, 3))
    size = int(rng.lognormal(13.5, 0.6)) if failure != "bomb" else int(rng.integers(40, 60)) << 20
    requests.append({"ts": ts, "service": "image-api", "account_id": account,
                     "route": "/v1/images", "status": status, "bytes": size})
    attrs = {"account": account, "http.route": "/v1/images"}
    error = failure is not None
    spans.append(_span(trace, root, "", "api-gateway", "POST /v1/images", ts, gateway_ms, error,
                       {**attrs, "http.status_code": status}))
    spans.append(_span(trace, api, root, "image-api", "upload_image", ts, api_ms, error, attrs))
    spans.append(_span(trace, resize, api, "image-processor", "resize_image", ts, resize_ms,
                       failure == "bomb",
                       {**attrs, "exception.type": "DecompressionBombError"}
                       if failure == "bomb" else attrs))
    if failure == "bomb":
        logs.append({"ts": ts + timedelta(milliseconds=resize_ms), "service": "image-processor",
                     "level": "error", "message": BOMB.format(pixels=int(rng.integers(1, 3)) *
                                                              178956970),
                     "trace_id": trace, "span_id": resize,
                     "attributes": {"exception": "DecompressionBombError", "account": account,
                                    "code": "image/resize.py:142"}})
    elif failure == "timeout":
        logs.append({"ts": ts + timedelta(milliseconds=api_ms), "service": "image-api",
                     "level": "error", "message": "upstream storage write timed out after 30s",
                     "trace_id": trace, "span_id": api,
                     "attributes": {"exception": "TimeoutError", "account": account}})
    elif rng.random() < 0.05:
        logs.append({"ts": ts, "service": "image-api", "level": "info",
                     "message": f"upload accepted for {account} ({size} bytes)",
                     "trace_id": trace, "span_id": api, "attributes": {"account": account}})


def _span(trace: str, span: str, parent: str, service: str, name: str, ts: datetime,
          duration: float, error: bool, attributes: dict[str, Any]) -> dict[str, Any]:
    return {"trace_id": trace, "span_id": span, "parent_span_id": parent, "service": service,
            "name": name, "start_ts": ts, "duration_ms": round(duration, 2),
            "status": "error" if error else "ok", "attributes": attributes}


def _noise_logs(rng: np.random.Generator) -> list[dict[str, Any]]:
    lines = []
    minutes = int((END - START).total_seconds() // 60)
    for minute in range(minutes):
        ts = START + timedelta(minutes=minute, seconds=float(rng.uniform(0, 60)))
        lines.append({"ts": ts, "service": "checkout", "level": "warn",
                      "message": f"payment provider latency {int(rng.integers(300, 900))}ms"})
        if rng.random() < 0.3:
            lines.append({"ts": ts, "service": "auth", "level": "info",
                          "message": "token refreshed"})
    return lines


def _metrics(rng: np.random.Generator, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    per_minute: dict[datetime, list[int]] = {}
    for request in requests:
        minute = request["ts"].replace(second=0, microsecond=0)
        bucket = per_minute.setdefault(minute, [0, 0])
        bucket[0] += 1
        bucket[1] += request["status"] >= 500
    rows = []
    for minute, (total, errors) in sorted(per_minute.items()):
        rows.append({"ts": minute, "name": "http_requests_total", "service": "image-api",
                     "value": float(total)})
        rows.append({"ts": minute, "name": "http_errors_total", "service": "image-api",
                     "value": float(errors), "labels": {"code": "5xx"}})
        busy = min(0.97, 0.25 + total / 9000 + float(rng.normal(0, 0.02)))
        rows.append({"ts": minute, "name": "cpu_usage_ratio", "service": "image-processor",
                     "value": round(busy, 4)})
        rows.append({"ts": minute, "name": "http_requests_total", "service": "checkout",
                     "value": float(rng.poisson(300))})
    return rows


def _events() -> list[dict[str, Any]]:
    return [
        {"ts": ONSET - timedelta(days=3, hours=4), "kind": "deploy", "service": "image-api",
         "summary": "image-api v2.41.0 rolled out", "attributes": {"version": "2.41.0"}},
        {"ts": ONSET - timedelta(minutes=35), "kind": "config", "service": "checkout",
         "summary": "checkout: payment retry budget 3 -> 4", "attributes": {"author": "ops-bot"}},
        {"ts": ONSET - timedelta(minutes=30), "kind": "flag", "service": "api-gateway",
         "summary": "flag new-year-banner enabled", "attributes": {"flag": "new-year-banner"}},
    ]
