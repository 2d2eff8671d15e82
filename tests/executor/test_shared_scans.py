"""Shared grouped queries on Ray run once per investigation, whatever the number of workers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from casebook.executor.investigation import run_investigation
from casebook.executor.runtime.local import LocalRuntime
from casebook.executor.telemetry_store import TelemetryStore
from casebook.sdk import Entity, Finding, Telemetry, analyzer
from casebook.sdk.analyzer import spec_of
from casebook.sdk.registry import Registry
from casebook.sdk.testing import DEFAULT_START, make_alert

SERVICES = [f"svc-{i:02d}" for i in range(40)]


class Count(Finding):
    service: str
    rows: int


def services(telemetry: Telemetry) -> list[str]:
    return list(SERVICES)


def four(telemetry: Telemetry) -> list[str]:
    return SERVICES[:4]


def two(telemetry: Telemetry) -> list[str]:
    return SERVICES[:2]


@analyzer(match={"alertname": "Grouped"}, fan_out={"service": services}, timeout_s=5)
def grouped_count(telemetry: Telemetry, service: str) -> Count | None:
    """Rows per service, from one grouped query."""
    counts = telemetry.shared(
        "select service, count(*) as n from logs group by service"
    ).by("service")
    rows = (counts.get(service) or {}).get("n", 0)
    return Count(title=f"{service} has {rows} rows", summary="rows in the window",
                 entities=[Entity.service(service)], service=service, rows=rows)


@analyzer(match={"alertname": "BadShared"}, fan_out={"service": four}, timeout_s=5)
def bad_shared(telemetry: Telemetry, service: str) -> Count | None:
    """A shared query naming a column that does not exist."""
    telemetry.shared("select nothing_here from logs group by 1")
    return None


@analyzer(match={"alertname": "SlowShared"}, fan_out={"service": two}, timeout_s=0.5)
def slow_shared(telemetry: Telemetry, service: str) -> Count | None:
    """A shared query far longer than the invocation's timeout."""
    telemetry.shared(
        "select count(*) from range(100000) a, range(100000) b where (a.range * b.range) % 7 = 3"
    )
    return None


REGISTRY = Registry([spec_of(f) for f in (grouped_count, bad_shared, slow_shared)]).checked()


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scans") / "telemetry"
    moment = DEFAULT_START - timedelta(minutes=5)
    rows = [{"ts": moment, "service": s, "level": "info", "message": "ok"}
            for i, s in enumerate(SERVICES) for _ in range(i % 3 + 1)]
    TelemetryStore.open(path, create=True).append("logs", pa.Table.from_pylist(rows))
    return path


def investigate(runtime, path: Path, name: str):
    return run_investigation(make_alert(name), registry=REGISTRY,
                             source=TelemetryStore.open(path).source(), runtime=runtime,
                             store_path=str(path))


def test_a_shared_query_runs_once_per_investigation_for_all_workers(ray_runtime, store_path):
    scans = ray_runtime.pool.scans
    before = ray_runtime.pool.ray.get(scans.scans_run.remote()) if scans else 0
    record = investigate(ray_runtime, store_path, "Grouped")
    after = ray_runtime.pool.ray.get(ray_runtime.pool.scans.scans_run.remote())
    assert after - before == 1
    assert sorted(f.facts["rows"] for f in record.findings) == sorted(
        i % 3 + 1 for i in range(len(SERVICES)))


def test_a_failing_shared_query_reads_as_it_does_in_process(ray_runtime, store_path):
    on_ray = investigate(ray_runtime, store_path, "BadShared")
    in_process = investigate(LocalRuntime(isolate=False), store_path, "BadShared")
    ending = "  query: select nothing_here from logs group by 1"

    def messages(record) -> set[str]:  # the error up to its query; tracebacks differ
        return {i.error.split(ending)[0] + ending for i in record.invocations}

    assert messages(on_ray) == messages(in_process)
    assert messages(on_ray).pop().startswith(
        'TelemetryError: query failed: Binder Error: Referenced column "nothing_here" not found'
    )
    assert {i.status for i in on_ray.invocations} == {"error"}


def test_waiting_for_a_slow_shared_query_times_out_like_the_query_itself(
    ray_runtime, store_path
):
    record = investigate(ray_runtime, store_path, "SlowShared")
    assert {i.status for i in record.invocations} == {"timeout"}
    assert {i.error for i in record.invocations} == {
        "timed out after 0.5 s: query interrupted: the invocation ran past its timeout"
    }
    # The next investigation is not held up by the scan left behind.
    assert len(investigate(ray_runtime, store_path, "Grouped").findings) == len(SERVICES)


def test_the_same_window_is_answered_again_without_a_scan_until_new_data(ray_runtime, tmp_path):
    path = tmp_path / "telemetry"
    moment = DEFAULT_START - timedelta(minutes=5)
    store = TelemetryStore.open(path, create=True)
    store.append("logs", pa.Table.from_pylist(
        [{"ts": moment, "service": s, "level": "info", "message": "ok"} for s in SERVICES]))
    ray = ray_runtime.pool.ray

    def scans_run() -> int:
        scans = ray_runtime.pool.scans
        return ray.get(scans.scans_run.remote()) if scans else 0

    def rows(record) -> dict[str, int]:
        return {f.facts["service"]: f.facts["rows"] for f in record.findings}

    first = investigate(ray_runtime, path, "Grouped")
    before = scans_run()
    again = investigate(ray_runtime, path, "Grouped")
    assert scans_run() == before  # the store is as it was: the result already put is reused
    assert rows(again) == rows(first) == dict.fromkeys(SERVICES, 1)

    store.append("logs", pa.Table.from_pylist(
        [{"ts": moment, "service": SERVICES[0], "level": "info", "message": "more"}]))
    after = investigate(ray_runtime, path, "Grouped")
    assert scans_run() == before + 1
    assert rows(after) == {**dict.fromkeys(SERVICES, 1), SERVICES[0]: 2}


def test_a_single_worker_scans_itself_once_per_investigation(ray_runtime, store_path):
    """With one worker there is no scans actor: the result would cross the object store for
    nothing. The worker runs the grouped query once and every invocation reads it."""
    from casebook.executor.runtime.cluster import RayRuntime

    alone = RayRuntime(workers=1)
    try:
        record = investigate(alone, store_path, "Grouped")
        assert alone.pool.scans is None and alone.pool.scans_alive() is None
    finally:
        alone.shutdown()
    shared = investigate(ray_runtime, store_path, "Grouped")
    assert ray_runtime.pool.scans is not None  # several workers: they share the actor's scan
    assert sum(i.queries for i in record.invocations) == 1
    assert sorted((f.facts["service"], f.facts["rows"]) for f in record.findings) == sorted(
        (f.facts["service"], f.facts["rows"]) for f in shared.findings)
    assert len(record.findings) == len(SERVICES)
