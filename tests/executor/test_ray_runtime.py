"""The Ray runtime on real Ray with tiny data: results, warmth, and every failure mode contained.

The analyzers live at module level so the workers import them by name, as they import packs.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from casebook.executor.errors import UserError
from casebook.executor.investigation import run_investigation
from casebook.executor.planner import Limits
from casebook.executor.runtime.local import LocalRuntime
from casebook.executor.telemetry_store import TelemetryStore
from casebook.sdk import Alert, Entity, Finding, Telemetry, analyzer
from casebook.sdk.analyzer import spec_of
from casebook.sdk.registry import Registry
from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert

SERVICES = [f"svc-{i}" for i in range(6)]
BAD = "svc-3"
TIMEOUT_S = 0.5


class Errors(Finding):
    service: str
    errors: int


def services(telemetry: Telemetry) -> list[str]:
    return [row[0] for row in telemetry.sql("select distinct service from logs order by 1")]


def _errors(telemetry: Telemetry, service: str) -> Errors | None:
    counts = telemetry.shared(
        "select service, count(*) as n from logs where level = 'error' group by service"
    ).by("service")
    errors = (counts.get(service) or {}).get("n", 0)
    if not errors:
        return None
    return Errors(
        title=f"{service} logged {errors} errors",
        summary="errors in the window",
        entities=[Entity.service(service)],
        category="code",
        service=service,
        errors=errors,
    )


@analyzer(match={"alertname": "Fleet"}, fan_out={"service": services}, timeout_s=5)
def error_count(telemetry: Telemetry, service: str) -> Errors | None:
    """Errors per service, every invocation answered from one grouped query per worker."""
    return _errors(telemetry, service)


@analyzer(match={"alertname": "Hang"}, fan_out={"service": services}, timeout_s=TIMEOUT_S)
def python_hang(telemetry: Telemetry, service: str) -> Errors | None:
    while service == BAD:
        pass
    return _errors(telemetry, service)


@analyzer(match={"alertname": "SlowSql"}, fan_out={"service": services}, timeout_s=TIMEOUT_S)
def slow_query(telemetry: Telemetry, service: str) -> Errors | None:
    if service == BAD:
        telemetry.sql(
            "select count(*) from range(100000) a, range(100000) b "
            "where (a.range * b.range) % 7 = 3"
        )
    return _errors(telemetry, service)


@analyzer(match={"alertname": "Kill"}, fan_out={"service": services}, timeout_s=5)
def worker_killer(telemetry: Telemetry, alert: Alert, service: str) -> Errors | None:
    if service == BAD:
        how = alert.labels["how"]
        if how == "exit":
            os._exit(3)
        elif how == "segfault":
            import ctypes

            ctypes.string_at(0)
        else:  # what the kernel's out-of-memory killer sends
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
    return _errors(telemetry, service)


@analyzer(match={"alertname": "Stall"}, fan_out={"service": services}, timeout_s=60)
def stall(telemetry: Telemetry, service: str) -> Errors | None:
    while service == BAD:
        time.sleep(0.05)
    return _errors(telemetry, service)


REGISTRY = Registry(
    [spec_of(f) for f in (error_count, python_hang, slow_query, worker_killer, stall)]
).checked()


def error_rows() -> list[dict]:
    moment = DEFAULT_START - timedelta(minutes=5)
    return [
        {"ts": moment, "service": service, "level": "error", "message": "boom"}
        for index, service in enumerate(SERVICES)
        for _ in range(index + 1)
    ]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ray") / "telemetry"
    store = TelemetryStore.open(path, create=True)
    store.append("logs", pa.Table.from_pylist(error_rows()))
    moment = DEFAULT_START - timedelta(minutes=5)
    store.append(
        "metrics",
        pa.Table.from_pylist(
            [
                {"ts": moment, "name": "dep", "service": name, "value": value}
                for name, value in (("db", 5.0), ("cache", 0.0), ("queue", 0.5))
            ]
        ),
    )
    return path


def investigate(
    runtime, path: Path, alert: Alert, registry: Registry = REGISTRY, limits: Limits | None = None
):
    source = TelemetryStore.open(path).source()
    return run_investigation(
        alert,
        registry=registry,
        source=source,
        runtime=runtime,
        store_path=str(path),
        limits=limits,
    )


def by_service(record) -> dict[str, str]:
    return {i.params["service"]: i.status for i in record.invocations}


def test_fan_out_runs_on_ray_with_one_grouped_query_per_worker(ray_runtime, store_path):
    record = investigate(ray_runtime, store_path, make_alert("Fleet"))
    assert record.runtime == "ray"
    assert by_service(record) == dict.fromkeys(SERVICES, "found")
    assert sorted(f.facts["errors"] for f in record.findings) == [1, 2, 3, 4, 5, 6]
    # The grouped query ran at most once on each of the two workers, not once per service.
    assert 1 <= sum(i.queries for i in record.invocations) <= 2


def test_same_record_as_the_local_runtime_with_chaining_and_follow_ups(
    ray_runtime, store_path, monkeypatch
):
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "fixtures" / "packs"))
    registry = Registry()
    registry.load("team_pack")
    registry.checked()
    alert = make_alert("Errors", service="svc-5")
    on_ray = investigate(ray_runtime, store_path, alert, registry)
    in_process = investigate(LocalRuntime(), store_path, alert, registry)

    def summary(record):
        return (
            [(i.key, i.status, i.depth, i.parent) for i in record.invocations],
            [(f.id, f.analyzer, f.title, f.led_from, f.explains) for f in record.findings],
            [(c.entity.name, c.category) for c in record.causes],
        )

    assert summary(on_ray) == summary(in_process)
    assert any(i.analyzer == "deep_dive" and i.depth == 1 for i in on_ray.invocations)


def test_workers_stay_warm_between_investigations(ray_runtime, store_path):
    investigate(ray_runtime, store_path, make_alert("Fleet"))
    before = sorted(ray_runtime.worker_pids())
    investigate(ray_runtime, store_path, make_alert("Fleet"))
    assert sorted(ray_runtime.worker_pids()) == before and len(before) == 2


def test_slow_sql_is_interrupted_at_its_timeout_and_the_worker_kept(ray_runtime, store_path):
    replaced = ray_runtime.replaced
    record = investigate(ray_runtime, store_path, make_alert("SlowSql"))
    assert by_service(record) == {**dict.fromkeys(SERVICES, "found"), BAD: "timeout"}
    slow = next(i for i in record.invocations if i.params["service"] == BAD)
    assert slow.error.startswith(f"timed out after {TIMEOUT_S:g} s: query interrupted")
    assert ray_runtime.replaced == replaced


def test_python_that_never_returns_times_out_and_its_worker_is_replaced(ray_runtime, store_path):
    replaced = ray_runtime.replaced
    record = investigate(ray_runtime, store_path, make_alert("Hang"))
    assert by_service(record) == {**dict.fromkeys(SERVICES, "found"), BAD: "timeout"}
    hung = next(i for i in record.invocations if i.params["service"] == BAD)
    assert hung.error == (
        f"did not return within its timeout of {TIMEOUT_S:g} s (Python code "
        "that never returns); its worker was stopped and replaced"
    )
    assert ray_runtime.replaced == replaced + 1
    assert sorted(f.facts["errors"] for f in record.findings) == [1, 2, 3, 5, 6]


@pytest.mark.parametrize("how", ["exit", "segfault", "sigkill"])
def test_an_invocation_that_kills_two_workers_is_crashed_and_the_rest_found(
    ray_runtime, store_path, how
):
    replaced = ray_runtime.replaced
    record = investigate(ray_runtime, store_path, make_alert("Kill", how=how))
    assert by_service(record) == {**dict.fromkeys(SERVICES, "found"), BAD: "crashed"}
    killer = next(i for i in record.invocations if i.params["service"] == BAD)
    assert killer.error.startswith(
        "its worker died while running it, in its batch and again "
        "when it ran alone on another worker (the worker process "
        "exited unexpectedly"
    )
    assert killer.error.endswith(
        ": a crash in native code, os._exit() or the kernel's out-of-memory killer)"
    )
    assert ray_runtime.replaced == replaced + 2
    assert record.status == "done"


def test_the_deadline_ends_the_investigation_with_what_finished(ray_runtime, store_path):
    record = investigate(
        ray_runtime, store_path, make_alert("Stall"), limits=Limits(deadline_s=3.0)
    )
    assert record.status == "partial"
    assert by_service(record) == {**dict.fromkeys(SERVICES, "found"), BAD: "timeout"}
    stalled = next(i for i in record.invocations if i.params["service"] == BAD)
    assert stalled.error == "not finished: the investigation deadline of 3 s was reached"
    assert (
        "1 invocations did not finish before the deadline; the causes below come from what did"
    ) in record.notes
    # The stalled worker was replaced when the investigation stopped: the next one runs.
    assert by_service(investigate(ray_runtime, store_path, make_alert("Fleet"))) == (
        dict.fromkeys(SERVICES, "found")
    )


def test_a_prepared_window_answers_the_same(ray_session, ray_runtime, store_path):
    from casebook.executor.runtime.cluster import RayRuntime

    prepared = RayRuntime(workers=2, prepare_window="always")
    seen: list[str] = []
    prepared.on_batch = lambda batch, seconds, status: seen.append(
        str(prepared.prepared.directory) if prepared.prepared else ""
    )
    try:
        record = investigate(prepared, store_path, make_alert("Fleet"))
    finally:
        prepared.shutdown()
    plain = investigate(ray_runtime, store_path, make_alert("Fleet"))
    assert [f.title for f in record.findings] == [f.title for f in plain.findings]
    assert seen and all(seen) and not Path(seen[0]).exists()  # removed when it ended


def test_ray_needs_a_store_on_disk(ray_runtime):
    tiny = TinyStore().add("logs", error_rows())
    with pytest.raises(UserError) as caught:
        run_investigation(
            make_alert("Fleet"), registry=REGISTRY, source=tiny.source, runtime=ray_runtime
        )
    assert str(caught.value) == (
        "the Ray runtime reads telemetry from a store on disk, and this investigation has "
        "none: pass store_path= to run_investigation (casebook investigate does), or use the "
        "in-process runtime (--local)"
    )


class ErrorsFrom(Errors):
    read_from: str


@analyzer(match={"alertname": "PerEntity"}, fan_out={"service": services}, timeout_s=5)
def errors_one_query_each(telemetry: Telemetry, service: str) -> ErrorsFrom | None:
    """The pattern that needs a prepared window: one filtered query per invocation."""
    time.sleep(0.1)
    errors = telemetry.sql(
        "select count(*) from logs where service = ? and level = 'error'", [service]
    ).scalar()
    return ErrorsFrom(
        title=f"{service} logged {errors} errors",
        summary="errors",
        service=service,
        errors=errors,
        read_from=telemetry.schema,
        entities=[Entity.service(service)],
    )


def test_the_window_is_prepared_once_invocations_query_on_their_own(ray_session, store_path):
    from casebook.executor.runtime.cluster import RayRuntime

    runtime = RayRuntime(workers=1, max_batch=1)
    runtime.prepare_after = (1, 0.0)  # at scale: 64 invocations that spent 2 s querying
    registry = Registry([spec_of(errors_one_query_each)]).checked()
    try:
        record = investigate(runtime, store_path, make_alert("PerEntity"), registry)
    finally:
        runtime.shutdown()
    assert sorted(f.facts["errors"] for f in record.findings) == [1, 2, 3, 4, 5, 6]
    first, *_, last = sorted(
        record.findings,
        key=lambda f: (
            record.invocations[[i.key for i in record.invocations].index(f.invocation)].started_ms
        ),
    )
    assert first.facts["read_from"].startswith("w")  # the store's own window views
    assert last.facts["read_from"].startswith("prepared_")  # the prepared files


def test_the_benchmark_pack_finds_the_failing_service_on_a_small_store(
    ray_runtime, tmp_path, monkeypatch
):
    monkeypatch.syspath_prepend(str(Path(__file__).parents[2] / "benchmarks"))
    import bench_pack
    import synthetic

    path = synthetic.build_store(tmp_path / "store", rows=40_000, services=40)
    registry = Registry()
    registry.load("bench_pack")
    registry.checked()
    limits = Limits(max_depth=8)
    alert = synthetic.alert(40)
    on_ray = investigate(ray_runtime, path, alert, registry, limits)
    in_process = investigate(LocalRuntime(), path, alert, registry, limits)
    assert len(on_ray.invocations) == 40 * (1 + len(bench_pack.CHECKS))
    assert {i.status for i in on_ray.invocations} == {"found", "nothing"}
    faulty = synthetic.service_name(synthetic.faulty_service(40))
    assert (on_ray.causes[0].entity.name, on_ray.causes[0].category) == (faulty, "code")
    assert sorted(f.title for f in on_ray.findings) == sorted(f.title for f in in_process.findings)
    # One grouped query per analyzer per worker, not one per service.
    assert sum(i.queries for i in on_ray.invocations) <= 5 * 2


def test_a_batch_the_worker_ended_early_gives_back_what_it_did_not_run():
    from casebook.executor.planner import Task
    from casebook.executor.runtime.batches import Batch, Slot
    from casebook.executor.runtime.cluster import RayRuntime
    from casebook.executor.shipped import ResultColumns
    from casebook.sdk.invocation import Outcome, Status

    runtime = RayRuntime(workers=1)  # nothing starts until an investigation does
    tasks = [
        Task(f"error_count{i}", "error_count", {"service": f"svc-{i}"}, {}, 5.0) for i in range(3)
    ]
    batch = Batch(7, list(tasks), Slot(0, actor=None, ready=None), ref=None, alone=False)
    outcomes = []
    done = Outcome("error_count0", "error_count", {"service": "svc-0"}, Status.FOUND,
                   duration_ms=1.0, queries=1, rows_read=1)
    runtime._deliver(batch, ResultColumns.of([done]), outcomes)
    assert [(o.key, o.status) for o in outcomes] == [("error_count0", "found")]
    assert runtime.pending() == 2
    slot = Slot(1, None, None)
    taken = [runtime._queues.take(slot, workers=1, max_batch=10) for _ in range(2)]
    assert taken == [([tasks[1]], False), ([tasks[2]], False)]
