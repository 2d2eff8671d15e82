"""Received telemetry survives crashes exactly once: the spool replays what a killed serve had
acknowledged, skips what already reached the store, and ignores a record cut short."""

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from casebook.executor.intake.spool import Spool
from casebook.executor.telemetry_store import TelemetryStore

TOKEN = "durable"
RECORDS_PER_BATCH = 20


def events(text: str, count: int = 2) -> dict[str, pa.Table]:
    return {"events": pa.table({
        "ts": pa.array([1_767_268_800_000_000 + i for i in range(count)], pa.timestamp("us")),
        "kind": ["deploy"] * count, "service": ["api"] * count,
        "summary": [f"{text}-{i}" for i in range(count)],
        "attributes": pa.array([[]] * count, pa.map_(pa.string(), pa.string())),
    })}  # fmt: skip


def summaries(store: Path) -> list[str]:
    with TelemetryStore.open(store).connect() as con:
        rows = con.execute("select summary from raw.events order by summary").fetchall()
        return [r[0] for r in rows]


def test_a_restart_replays_spooled_batches_once(tmp_path):
    store = TelemetryStore.open(tmp_path / "store", create=True)
    spool = Spool(tmp_path / "spool", store)
    assert spool.accept("k1", events("one")) is True
    assert spool.accept("k1", events("one")) is False  # a re-sent batch
    assert spool.accept("k2", events("two")) is True
    # The process dies before the writer ran: a new spool finds both batches on disk.
    again = Spool(tmp_path / "spool", store)
    assert again.replayed == 2
    assert again.accept("k2", events("two")) is False
    assert again.flush() == 2
    assert summaries(tmp_path / "store") == ["one-0", "one-1", "two-0", "two-1"]
    assert list((tmp_path / "spool").glob("segment-*")) == [again._current.path]


def test_a_crash_after_the_store_write_does_not_write_twice(tmp_path):
    store = TelemetryStore.open(tmp_path / "store", create=True)
    spool = Spool(tmp_path / "spool", store)
    spool.accept("k1", events("one"))
    spool.accept("k2", events("two"))
    # Written to the store, then killed before the spooled segment was deleted.
    spool._write(spool._pending)
    again = Spool(tmp_path / "spool", store)
    assert again.replayed == 0
    assert again.flush() == 0
    assert summaries(tmp_path / "store") == ["one-0", "one-1", "two-0", "two-1"]


def test_a_record_cut_short_by_a_crash_is_dropped_and_the_rest_kept(tmp_path):
    store = TelemetryStore.open(tmp_path / "store", create=True)
    spool = Spool(tmp_path / "spool", store)
    spool.accept("k1", events("one"))
    with spool._current.path.open("ab") as segment:
        segment.write(b"CBS1\x10\x00\x00\x00")  # the start of a record never acknowledged
    again = Spool(tmp_path / "spool", store)
    assert (again.replayed, again.flush()) == (1, 1)
    assert summaries(tmp_path / "store") == ["one-0", "one-1"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_serve(tmp: Path, port: int) -> subprocess.Popen:
    log = (tmp / f"serve-{time.monotonic_ns()}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", "from casebook.executor.cli import main; main()", "serve",
         "--telemetry", str(tmp / "store"), "--db", str(tmp / "results.duckdb"),
         "--port", str(port), "--local", "--token", TOKEN],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, Path(log.name).read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "casebook serve did not start"
        time.sleep(0.1)


def log_batch(number: int) -> dict:
    records = [{"timeUnixNano": str(1_767_268_800_000_000_000 + number * 1000 + i),
                "severityText": "INFO", "body": {"stringValue": f"batch-{number:04d}-{i:02d}"}}
               for i in range(RECORDS_PER_BATCH)]
    return {"resourceLogs": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "api"}}]},
        "scopeLogs": [{"logRecords": records}]}]}


@pytest.mark.slow
def test_kill_9_during_a_push_keeps_every_acknowledged_batch_exactly_once(tmp_path):
    TelemetryStore.open(tmp_path / "store", create=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/logs"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    acknowledged: set[int] = set()
    unanswered: set[int] = set()
    lock = threading.Lock()
    counter = iter(range(100_000))

    def push() -> None:
        with httpx.Client(timeout=10) as client:
            while True:
                with lock:
                    number = next(counter)
                try:
                    answer = client.post(url, json=log_batch(number), headers=headers)
                except httpx.HTTPError:
                    with lock:
                        unanswered.add(number)
                    return  # the server is gone
                assert answer.status_code == 200, answer.text
                with lock:
                    acknowledged.add(number)

    serve = start_serve(tmp_path, port)
    pushers = [threading.Thread(target=push) for _ in range(3)]
    for pusher in pushers:
        pusher.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 200:
        assert time.monotonic() < deadline, "the pushers got no answers"
        time.sleep(0.01)
    serve.send_signal(signal.SIGKILL)  # while the pushers are still sending
    serve.wait()
    for pusher in pushers:
        pusher.join(20)
    assert unanswered, "the kill should land while requests are in flight"

    serve = start_serve(tmp_path, port)
    try:
        # Exporters re-send what got no answer; whatever of it was spooled is not doubled.
        with httpx.Client(timeout=10) as client:
            for number in sorted(unanswered):
                answer = client.post(url, json=log_batch(number), headers=headers)
                assert answer.status_code == 200, answer.text
        expected = acknowledged | unanswered

        def stored() -> dict[str, int]:
            with TelemetryStore.open(tmp_path / "store").connect() as con:
                return dict(con.execute(
                    "select substr(message, 1, 10), count(*) from raw.logs group by 1").fetchall())

        deadline = time.monotonic() + 30
        while len(stored()) < len(expected):
            assert time.monotonic() < deadline, "the replayed batches did not reach the store"
            time.sleep(0.2)
        counts = stored()
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
    assert counts == {f"batch-{n:04d}": RECORDS_PER_BATCH for n in sorted(expected)}
