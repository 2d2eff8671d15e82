"""The benchmark's synthetic incident: a request log over a tree of services, built once.

`requests` holds one row per call (ts, service called, its caller, HTTP status, latency) over
two hours. Service `svc-0000` is the root; service i calls services i*FANOUT+1 .. i*FANOUT+FANOUT.
Ten minutes before the alert one deep service starts failing; its callers see some of it.

    store = build_store(Path("benchmarks/.cache/store-10m"), rows=10_000_000, services=2_000)
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from casebook.sdk.models import Alert

FANOUT = 13  # 1 + 13 + 169 + 1,817 services reach 2,000 in four levels
STORE_START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
STORE_LENGTH = timedelta(hours=2)
ALERT_AT = STORE_START + timedelta(minutes=105)
ONSET = ALERT_AT - timedelta(minutes=10)
FILES = 8


@dataclass(frozen=True)
class Scenario:
    """What the store holds; the cache is reused only when this matches exactly."""

    rows: int
    services: int
    faulty: str
    version: int = 2  # 2: names past svc-9999 keep all their digits


def service_name(index: int) -> str:
    return f"svc-{index:04d}"


def callees(index: int, services: int) -> list[int]:
    """The services that service `index` calls."""
    first = index * FANOUT + 1
    return list(range(first, min(first + FANOUT, services)))


def ancestors(index: int) -> list[int]:
    """The callers above `index`, nearest first, up to the root."""
    chain = []
    while index > 0:
        index = (index - 1) // FANOUT
        chain.append(index)
    return chain


def faulty_service(services: int) -> int:
    """A service on the deepest level, where a walk from the root has the furthest to go."""
    return services - 1 - services // 7


def alert(services: int) -> Alert:
    """The alert that starts the investigation: errors at the root service."""
    return Alert(
        name="RootErrorRate",
        labels={"alertname": "RootErrorRate", "service": service_name(0)},
        annotations={"summary": "error ratio above 2% at the root"},
        starts_at=ALERT_AT,
        fingerprint="bench-root",
    )


def build_store(path: Path, rows: int = 10_000_000, services: int = 2_000) -> Path:
    """Write the store at `path` unless the same scenario is already there; return `path`."""
    scenario = Scenario(rows, services, service_name(faulty_service(services)))
    marker = path / "scenario.json"
    if marker.exists() and json.loads(marker.read_text()) == asdict(scenario):
        return path
    if path.exists():
        shutil.rmtree(path)
    target = path / "requests"
    target.mkdir(parents=True)
    faulty = faulty_service(services)
    callers = ancestors(faulty)
    span_us = int(STORE_LENGTH.total_seconds() * 1e6)
    onset_us = int((ONSET - STORE_START).total_seconds() * 1e6)
    start = STORE_START.replace(tzinfo=None).isoformat(sep=" ")
    started = time.perf_counter()
    with duckdb.connect() as con:
        per_file = -(-rows // FILES)
        for part in range(FILES):
            low, high = part * per_file, min(rows, (part + 1) * per_file)
            # Rows are written in time order so a window scan skips whole row groups.
            con.execute(f"""
                copy (
                  with calls as (
                    select i, timestamp '{start}' + to_microseconds(i * {span_us} // {rows}) as ts,
                           (hash(i, 17) % {services})::int as s,
                           (hash(i, 29) % 1000)::int as dice,
                           i * {span_us} // {rows} >= {onset_us} as after_onset
                    from range({low}, {high}) t(i)
                  )
                  select ts,
                         printf('svc-%04d', s) as service,
                         case when s = 0 then 'client'
                              else printf('svc-%04d', (s - 1) // {FANOUT})
                         end as caller,
                         case when after_onset and s = {faulty} and dice < 400 then 503
                              when after_onset and s in ({", ".join(map(str, callers))})
                                   and dice < 60 then 502
                              when dice < 4 then 500
                              else 200 end::int as status,
                         (12 + (hash(i, 41) % 40) +
                          case when after_onset and s = {faulty} then 900 else 0 end)::double
                           as latency_ms
                  from calls order by i
                ) to '{target}/part-{part:02d}.parquet' (format parquet, compression zstd)
            """)
    marker.write_text(json.dumps(asdict(scenario)))
    print(
        f"built {rows:,} request rows over {services:,} services at {path} "
        f"in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,  # stdout may carry the benchmark's --json document
    )
    return path
