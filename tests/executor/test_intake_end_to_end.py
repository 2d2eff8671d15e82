"""`casebook serve` as its own process: killed with SIGKILL mid-investigation and restarted, fed
by a real Alertmanager, and its pages driven in headless Chromium. All on 127.0.0.1."""

import json
import os
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from casebook.examples.seeds import kv_cache
from casebook.executor.ingest import ingest
from casebook.executor.intake.queue import AlertQueue
from casebook.executor.results import ResultsStore
from casebook.executor.telemetry_store import TelemetryStore

pytestmark = pytest.mark.slow

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
KV_LABELS = {
    "alertname": "HighRequestVolume",
    "service": "inference-api",
    "severity": "page",
    "team": "inference",
}
STARTS = "2026-03-14T14:10:00Z"
SLOW_PACK = '''
import time
from casebook.sdk import Alert, Finding, analyzer

class Paused(Finding):
    pass

@analyzer(match={"alertname": "CrashTest"}, timeout_s=30)
def slow_step(alert: Alert) -> Paused | None:
    """Long enough that a kill lands while an investigation runs."""
    time.sleep(0.8)
    return None
'''


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kv_cache")
    case = kv_cache.generate(root / "case")
    ingest(
        sorted((case / "telemetry").glob("*.parquet")),
        TelemetryStore.open(root / "store", create=True),
    )
    return root / "store"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call(method, url, body=None, token=None, timeout=5.0):
    """(status, parsed JSON or text) of one HTTP request."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            status, text = answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)


class Served:
    """`casebook serve` in a subprocess (in-process runtime unless ray=True), on a free port."""

    def __init__(
        self,
        tmp: Path,
        store: Path,
        *extra: str,
        env: dict | None = None,
        ray: bool = False,
        port: int | None = None,
    ):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (tmp / f"serve-{self.port}.log").open("w")
        command = [
            sys.executable,
            "-c",
            "from casebook.executor.cli import main; main()",
            "serve",
            "--telemetry",
            str(store),
            "--db",
            str(tmp / "results.duckdb"),
            "--port",
            str(self.port),
            *([] if ray else ["--local"]),
            *extra,
        ]
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        wait_for(self._ready, 60, f"casebook serve on port {self.port} answering /healthz")

    def _ready(self) -> bool:
        assert self.process.poll() is None, Path(self.log.name).read_text()
        try:
            return call("GET", f"{self.url}/healthz", timeout=1)[0] == 200
        except OSError:
            return False

    def stop(self, sig=signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        self.log.close()
        return code


def test_a_kill_mid_investigation_loses_and_duplicates_nothing(tmp_path, store):
    (tmp_path / "packs").mkdir()
    (tmp_path / "packs" / "slow_pack.py").write_text(SLOW_PACK)
    env = {"PYTHONPATH": str(tmp_path / "packs")}
    labels = {**KV_LABELS, "alertname": "CrashTest"}
    groups = [
        [
            {
                "status": "firing",
                "labels": {**labels, "pod": f"gpu-{g}{i}"},
                "annotations": {},
                "startsAt": STARTS,
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": f"crash-{g}{i}",
            }
            for i in range(2)
        ]
        for g in range(3)
    ]
    accepted: dict[str, str] = {}

    served = Served(tmp_path, store, "--pack", "slow_pack", env=env)
    for group in groups:
        status, body = call(
            "POST",
            f"{served.url}/webhook/alertmanager",
            {"version": "4", "status": "firing", "alerts": group},
        )
        assert status == 202
        accepted.update({a["fingerprint"]: a["investigation_id"] for a in body["alerts"]})

    def running():
        rows = call("GET", f"{served.url}/api/investigations")[1]["investigations"]
        return [r["id"] for r in rows if r["status"] == "running"]

    [interrupted] = wait_for(running, 30, "an investigation running")
    served.stop(signal.SIGKILL)

    again = Served(tmp_path, store, "--pack", "slow_pack", env=env)
    # Alertmanager re-sends the first group on its next repeat: nothing new comes of it.
    status, body = call(
        "POST",
        f"{again.url}/webhook/alertmanager",
        {"version": "4", "status": "firing", "alerts": groups[0]},
    )
    assert (status, body["accepted"], body["duplicates"]) == (202, 0, 2)

    def all_done():
        listing = call("GET", f"{again.url}/api/investigations")[1]
        done = [r for r in listing["investigations"] if r["status"] == "done"]
        return len(done) == len(accepted) and not listing["pending"]

    wait_for(all_done, 60, "every accepted alert investigated after the restart")
    again.stop()

    with ResultsStore(tmp_path / "results.duckdb", read_only=True) as results:
        stored = results.connection.execute(
            "select fingerprint, id, status from investigations order by fingerprint"
        ).fetchall()
        assert stored == sorted((fp, ident, "done") for fp, ident in accepted.items())
        assert results.get(interrupted).status == "done"
    queue = AlertQueue(tmp_path / "results.queue.db")
    assert queue.counts() == {"queued": 0, "running": 0, "done": 6, "failed": 0}
    with sqlite3.connect(tmp_path / "results.queue.db") as db:
        attempts = dict(db.execute("select investigation_id, attempts from alerts").fetchall())
    assert attempts[interrupted] == 2
    assert sorted(attempts.values()) == [1, 1, 1, 1, 1, 2]


def test_on_ray_alerts_are_investigated_and_the_service_stops_cleanly(tmp_path, store):
    served = Served(tmp_path, store, ray=True)
    try:
        idents = []
        for n in range(2):
            alert = {
                "status": "firing",
                "labels": {**KV_LABELS, "pod": f"gpu-{n}"},
                "startsAt": STARTS,
                "fingerprint": f"ray-{n}",
            }
            body = call("POST", f"{served.url}/webhook/alertmanager", {"alerts": [alert]})[1]
            idents.append(body["alerts"][0]["investigation_id"])

        def stored():
            records = [call("GET", f"{served.url}/api/investigations/{i}")[1] for i in idents]
            return all(r.get("status") == "done" for r in records) and records

        records = wait_for(stored, 60, "both alerts investigated on Ray")
        assert [r["runtime"] for r in records] == ["ray", "ray"]
        assert [r["causes"][0]["entity"]["name"] for r in records] == ["kv-cache", "kv-cache"]
    finally:
        code = served.stop()
    log = Path(served.log.name).read_text()
    assert code == 0, log
    assert "Application shutdown complete." in log


def test_a_second_service_on_the_same_files_stops_before_touching_them(tmp_path, store):
    served = Served(tmp_path, store)
    try:
        second = subprocess.run(
            [
                sys.executable,
                "-c",
                "from casebook.executor.cli import main; main()",
                "serve",
                "--telemetry",
                str(store),
                "--db",
                str(tmp_path / "results.duckdb"),
                "--port",
                str(free_port()),
                "--local",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2
        message = " ".join(second.stderr.split())
        assert f"error: cannot open the results database {tmp_path / 'results.duckdb'}" in message
        assert "If `casebook serve` is using it, read through its API instead" in message
        assert call("GET", f"{served.url}/healthz")[0] == 200
    finally:
        served.stop()


def alertmanager_config(webhook_url: str, token: str) -> str:
    return f"""
route:
  receiver: casebook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: casebook
    webhook_configs:
      - url: {webhook_url}
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
"""


@pytest.mark.skipif(
    not Path(ALERTMANAGER).exists(),
    reason="needs Debian's prometheus-alertmanager (make system-deps installs it)",
)
def test_a_real_alertmanager_delivers_groups_resends_and_resolutions(tmp_path, store):
    token = "e2e-token"
    served = Served(tmp_path, store, "--token", token)
    am_port = free_port()
    config = tmp_path / "alertmanager.yml"
    config.write_text(alertmanager_config(f"{served.url}/webhook/alertmanager", token))
    am_log = (tmp_path / "alertmanager.log").open("w")
    am = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=am_log,
        stderr=subprocess.STDOUT,
    )
    am_url = f"http://127.0.0.1:{am_port}"
    try:
        wait_for(lambda: _answers(f"{am_url}/-/ready"), 30, "Alertmanager ready")
        first = {
            "labels": {**KV_LABELS, "pod": "gpu-1"},
            "startsAt": STARTS,
            "annotations": {"summary": "requests far above normal"},
        }
        assert call("POST", f"{am_url}/api/v2/alerts", [first])[0] == 200

        def investigations():
            rows = call("GET", f"{served.url}/api/investigations", token=token)[1]
            return [r for r in rows["investigations"] if r["status"] == "done"]

        [one] = wait_for(investigations, 30, "the first alert investigated")
        # A second alert joins the group: Alertmanager re-sends the first with it.
        second = {**first, "labels": {**KV_LABELS, "pod": "gpu-2"}}
        assert call("POST", f"{am_url}/api/v2/alerts", [second])[0] == 200
        both = wait_for(
            lambda: len(investigations()) == 2 and investigations(),
            30,
            "the second alert investigated",
        )
        # Resolving the first: Alertmanager sends it as resolved; casebook notes it.
        ended = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
        assert call("POST", f"{am_url}/api/v2/alerts", [{**first, "endsAt": ended}])[0] == 200

        def resolved_note():
            notes = call("GET", f"{served.url}/api/investigations/{one['id']}", token=token)[1][
                "notes"
            ]
            return [n for n in notes if n.startswith("Resolved at ")]

        [note] = wait_for(resolved_note, 30, "the resolution noted on the first investigation")
        assert note.endswith("(reported by alertmanager).")
        assert {r["entity_name"] for r in both} == {"kv-cache"}
        metrics = call("GET", f"{served.url}/metrics", token=token)[1]
        assert (
            'casebook_alerts_received_total{outcome="duplicate",source="alertmanager"}' in metrics
        )
        assert len(investigations()) == 2
    finally:
        am.terminate()
        am.wait(timeout=10)
        am_log.close()
        served.stop()


def _answers(url: str) -> bool:
    try:
        return call("GET", url, timeout=1)[0] == 200
    except OSError:
        return False


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4)."""

    def __init__(self, profile: Path):
        to_child, self._commands = os.pipe()
        self._replies, from_child = os.pipe()

        def wire_fds():
            os.dup2(to_child, 3)
            os.dup2(from_child, 4)

        self.process = subprocess.Popen(
            [
                shutil.which("chromium") or "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            pass_fds=(3, 4),
            preexec_fn=wire_fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child)
        os.close(from_child)
        self._next_id = 0
        self._buffer = b""
        self.events: list[dict] = []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.send("Page.enable", session=True)
        self.send("Runtime.enable", session=True)

    def send(self, method: str, session: bool = False, **params):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read(timeout=20)
            if reply.get("id") == self._next_id:
                assert "error" not in reply, reply
                return reply["result"]
            self.events.append(reply)

    def _read(self, timeout: float) -> dict:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._replies], [], [], timeout)
            assert ready, "Chromium did not answer"
            chunk = os.read(self._replies, 65536)
            assert chunk, "Chromium closed the pipe"
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def open(self, url: str) -> None:
        self.events.clear()
        self.send("Page.navigate", session=True, url=url)
        self._wait_for_load(url)

    def _wait_for_load(self, what: str) -> None:
        deadline = time.monotonic() + 20
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            assert time.monotonic() < deadline, f"{what} did not load"
            self.events.append(self._read(timeout=20))

    def click_and_wait(self, selector: str) -> None:
        """Click what submits a form, and wait for the page it leads to."""
        self.events.clear()
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")
        self._wait_for_load(f"the page after clicking {selector}")

    def evaluate(self, expression: str):
        result = self.send(
            "Runtime.evaluate",
            session=True,
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def errors(self) -> list[dict]:
        return [e for e in self.events if e.get("method") == "Runtime.exceptionThrown"]

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.process.wait(timeout=10)
        except (AssertionError, OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait(timeout=10)
        os.close(self._commands)
        os.close(self._replies)


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs chromium (make system-deps installs it)"
)
def test_the_pages_in_headless_chromium_record_feedback(tmp_path, store):
    served = Served(tmp_path, store)
    body = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": KV_LABELS,
                "annotations": {},
                "startsAt": STARTS,
                "fingerprint": "page-1",
            }
        ],
    }
    ident = call("POST", f"{served.url}/webhook/alertmanager", body)[1]["alerts"][0][
        "investigation_id"
    ]
    wait_for(
        lambda: (
            call("GET", f"{served.url}/api/investigations/{ident}")[0] == 200
            and call("GET", f"{served.url}/api/investigations/{ident}")[1]["status"] == "done"
        ),
        30,
        "the investigation done",
    )
    browser = Chromium(tmp_path / "profile")
    try:
        browser.open(f"{served.url}/")
        assert browser.evaluate("document.title") == "casebook investigations"
        assert (
            browser.evaluate(f"document.querySelector('tr[id=\"{ident}\"] a').textContent")
            == "HighRequestVolume"
        )
        browser.evaluate(
            f'document.querySelector(\'tr[id="{ident}"] button[data-helpful="true"]\').click()'
        )
        thanks = f"document.querySelector('tr[id=\"{ident}\"] .thanks')?.textContent || ''"
        wait_for(
            lambda: browser.evaluate(thanks) == "Recorded: helpful",
            10,
            "the feedback button confirming",
        )
        assert browser.errors() == []

        browser.open(f"{served.url}/investigations/{ident}")
        assert "kv-cache" in browser.evaluate("document.body.innerText")
        finding = browser.evaluate(
            "document.querySelector('form.feedback input[name=finding_id]').value"
        )
        browser.click_and_wait("form.feedback button[value=false]")
        assert browser.evaluate("location.pathname") == f"/investigations/{ident}", (
            browser.evaluate("document.body.innerText")
        )
        assert browser.errors() == []
    finally:
        browser.close()
        served.stop()
    with ResultsStore(tmp_path / "results.duckdb", read_only=True) as results:
        rows = results.connection.execute(
            "select investigation_id, finding_id, helpful, source from feedback order by created_at"
        ).fetchall()
    assert rows == [(ident, None, True, "web"), (ident, finding, False, "web")]
