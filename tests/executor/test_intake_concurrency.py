"""Several investigations in flight: each alert claimed exactly once, however many slots (or
processes) claim at the same time, the number of slots configurable, all of them used."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from typer.testing import CliRunner

from casebook.executor.cli import app
from casebook.executor.errors import UserError
from casebook.executor.intake.config import IntakeConfig
from casebook.executor.intake.queue import AlertQueue
from casebook.executor.intake.service import IntakeService
from casebook.executor.telemetry_store import TelemetryStore
from casebook.sdk.models import Alert
from casebook.sdk.testing import DEFAULT_START

T0 = datetime(2026, 3, 14, 14, 10, tzinfo=UTC)


def queued_alerts(count: int) -> list[Alert]:
    return [
        Alert(name=f"Group{i % 3}", labels={"service": "api"}, starts_at=T0,
              fingerprint=f"fp{i:04d}")
        for i in range(count)
    ]


def test_slots_and_processes_claiming_at_once_take_each_alert_exactly_once(tmp_path):
    path = tmp_path / "q.db"
    AlertQueue(path).accept(queued_alerts(300), "alertmanager")
    # Two "processes" (connections of their own), each with three slots (threads).
    queues = [AlertQueue(path), AlertQueue(path)]
    claimed: list[int] = []
    lock = threading.Lock()

    def slot(queue: AlertQueue) -> None:
        while (item := queue.claim(busy=["Group0"])) is not None:
            with lock:
                claimed.append(item.id)
            queue.finish(item.id, "done")

    slots = [threading.Thread(target=slot, args=(q,)) for q in queues for _ in range(3)]
    for s in slots:
        s.start()
    for s in slots:
        s.join()
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 300
    assert queues[0].counts() == {"queued": 0, "running": 0, "done": 300, "failed": 0}


def test_concurrency_comes_from_the_flag_the_variable_or_the_file(tmp_path, monkeypatch):
    path = tmp_path / "casebook.yaml"
    path.write_text("telemetry: store\nruntime: {local: true, concurrency: 3}\n")
    seen: list[int | None] = []

    def opened(config: IntakeConfig):
        seen.append(config.concurrency)
        raise UserError("stopped before starting")

    monkeypatch.setattr("casebook.executor.intake.service.IntakeService.open", opened)
    runner = CliRunner()
    runner.invoke(app, ["serve", "--config", str(path)])
    monkeypatch.setenv("CASEBOOK_CONCURRENCY", "5")
    runner.invoke(app, ["serve", "--config", str(path)])
    runner.invoke(app, ["serve", "--config", str(path), "--concurrency", "2"])
    assert seen == [3, 5, 2]
    refused = runner.invoke(app, ["serve", "--telemetry", "store", "--concurrency", "0"])
    said = " ".join(refused.output.replace("│", " ").split())
    assert refused.exit_code == 2
    assert "Invalid value for '--concurrency' (env var: 'CASEBOOK_CONCURRENCY'): Input should be " \
        "greater than or equal to 1" in said


def test_every_slot_investigates_and_each_alert_is_stored_once(tmp_path: Path):
    store = TelemetryStore.open(tmp_path / "store", create=True)
    store.append("logs", pa.Table.from_pylist([
        {"ts": DEFAULT_START - timedelta(minutes=5), "service": "api", "level": "error",
         "message": "boom"}
    ]))
    config = IntakeConfig(telemetry=tmp_path / "store", db=tmp_path / "results.duckdb",
                          local=True, concurrency=2)
    service = IntakeService.open(config)
    try:
        assert len(service.workers) == len(service.runtimes) == 2
        assert len({id(r) for r in service.runtimes}) == 2  # a runtime per slot
        receipts = [
            service.accept({"name": f"Alert{i % 2}", "labels": {"service": "api"},
                            "starts_at": DEFAULT_START.isoformat(), "fingerprint": f"a{i}"},
                           "api")[0]
            for i in range(6)
        ]
        by_worker: dict[str, int] = {}
        original = [w.run_once for w in service.workers]

        def counted(worker, run):
            def run_once() -> bool:
                ran = run()
                if ran:
                    by_worker[worker.name] = by_worker.get(worker.name, 0) + 1
                return ran
            return run_once

        for worker, run in zip(service.workers, original, strict=True):
            worker.run_once = counted(worker, run)
        service.start()
        deadline = time.monotonic() + 300
        while service.queue.counts()["done"] < 6 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert service.queue.counts() == {"queued": 0, "running": 0, "done": 6, "failed": 0}
        ids = [r.investigation_id for r in receipts]
        assert [service.results.get(i).status for i in ids] == ["done"] * 6
        assert len(service.results.list(limit=20)) == 6
        assert sorted(by_worker) == ["casebook-intake-worker-0", "casebook-intake-worker-1"]
    finally:
        service.close(timeout=60)


def test_the_default_is_one_slot_per_cpu_on_ray_and_one_in_process():
    from casebook.executor.intake.service import concurrency_for

    assert concurrency_for(IntakeConfig(telemetry=Path("s"), db=Path("d"), local=True), None) == 1
    on_ray = IntakeConfig(telemetry=Path("s"), db=Path("d"))
    assert concurrency_for(on_ray, None) == min(8, os.cpu_count() or 1)
    given = IntakeConfig(telemetry=Path("s"), db=Path("d"), concurrency=4)
    assert concurrency_for(given, None) == 4
