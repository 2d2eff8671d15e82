"""A real two-node Ray cluster on this machine, with token authentication on.

`casebook investigate --ray-address` joins it from another folder with a relative `--telemetry`
path, and its invocations run on both nodes. A client without the token, or with a wrong one,
gets one line naming the fix.

Each node is a `ray start` in a session of its own, with its own temp dir and ports, so the
test session's own Ray (and anyone else's) never sees it: its address file lives in its temp
dir, not in /tmp/ray. At the end only the processes of those sessions are stopped (never
`ray stop`, which stops every Ray on the machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from casebook.executor.telemetry_store import TelemetryStore
from casebook.sdk.testing import DEFAULT_START

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
SERVICES = [f"svc-{i:02d}" for i in range(24)]
PACK = '''
"""Where each invocation ran, as a finding: the node id and the worker's process id."""
import os
import time
import urllib.request

import ray

from casebook.sdk import Entity, Finding, Telemetry, analyzer


class Placement(Finding):
    service: str
    node_id: str
    pid: int


def services(telemetry: Telemetry) -> list[str]:
    return [row[0] for row in telemetry.sql("select distinct service from logs order by 1")]


@analyzer(match={"alertname": "Spread"}, fan_out={"service": services}, timeout_s=30)
def placement(telemetry: Telemetry, service: str) -> Placement:
    time.sleep(0.25)  # long enough that one worker cannot take the whole fan-out
    rows = [r[0] for r in telemetry.sql("select count(*) from logs where service = ?", [service])]
    return Placement(
        title=f"{service} ran here", summary=f"{rows[0]} rows", category="code",
        entities=[Entity.service(service)], service=service,
        node_id=ray.get_runtime_context().get_node_id(), pid=os.getpid(),
    )
'''


@dataclass
class Cluster:
    address: str
    token: str
    sessions: list[int] = field(default_factory=list)
    temp_dirs: list[Path] = field(default_factory=list)

    def env(self, **changes: str | None) -> dict[str, str]:
        """This process's environment joined to the cluster (or changed by `changes`)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}
        for key, value in changes.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def ray_start(cluster: Cluster, *args: str) -> None:
    """One `ray start` in its own session; its daemons stay in that session."""
    temp_dir = Path(tempfile.mkdtemp(prefix="cbray-", dir="/tmp"))  # short: socket paths
    cluster.temp_dirs.append(temp_dir)
    (gcs, manager, objects, agent, agent_grpc, runtime_env, metrics, dashboard) = free_ports(8)
    command = [
        str(BIN / "ray"), "start", *args,
        "--num-cpus", "1", "--temp-dir", str(temp_dir), "--disable-usage-stats",
        "--node-manager-port", str(manager), "--object-manager-port", str(objects),
        "--dashboard-agent-listen-port", str(agent),
        "--dashboard-agent-grpc-port", str(agent_grpc),
        "--runtime-env-agent-port", str(runtime_env), "--metrics-export-port", str(metrics),
        "--object-store-memory", str(100 * 1024 * 1024),
    ]
    if "--head" in args:
        command += ["--port", str(gcs), "--include-dashboard", "false",
                    "--dashboard-port", str(dashboard)]
        cluster.address = f"127.0.0.1:{gcs}"
    log = (temp_dir / "start.log").open("w")
    starting = subprocess.Popen(command, env=cluster.env(), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    cluster.sessions.append(starting.pid)
    if starting.wait(timeout=180) != 0:
        raise RuntimeError(f"`ray start {' '.join(args)}` failed: "
                           f"{(temp_dir / 'start.log').read_text()[-2000:]}")


def our_processes(cluster: Cluster) -> list[int]:
    """Processes of the clusters' sessions, or naming their temp dirs (and only those)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        session = int(stat[stat.rindex(")") + 2:].split()[3])
        if session in cluster.sessions or any(str(d) in command for d in cluster.temp_dirs):
            found.append(int(entry.name))
    return [pid for pid in found if pid != os.getpid()]


def stop(cluster: Cluster) -> None:
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        for pid in our_processes(cluster):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while our_processes(cluster) and time.monotonic() < deadline:
            time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("ray")
    if not (BIN / "ray").exists():
        pytest.skip(f"no `ray` command next to {sys.executable}")
    started = Cluster(address="", token=secrets.token_hex(32))
    try:
        ray_start(started, "--head")
        ray_start(started, "--address", started.address)
        yield started
    finally:
        stop(started)
    assert our_processes(started) == [], "processes of the test cluster outlived it"


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> Path:
    """A folder with a telemetry store (`store`), an alert and the pack."""
    folder = tmp_path_factory.mktemp("cluster-case")
    store = TelemetryStore.open(folder / "store", create=True)
    moment = DEFAULT_START - timedelta(minutes=5)
    store.append("logs", pa.Table.from_pylist([
        {"ts": moment, "service": s, "level": "error", "message": "boom"} for s in SERVICES
    ]))
    (folder / "alert.json").write_text(json.dumps({
        "name": "Spread", "labels": {"alertname": "Spread"},
        "starts_at": DEFAULT_START.isoformat(),
    }))
    (folder / "spread_pack.py").write_text(PACK)
    return folder


def casebook(case: Path, cluster: Cluster, *args: str, **env: str | None):
    """`casebook investigate` run from the case folder, store given relatively."""
    return subprocess.run(
        [str(BIN / "casebook"), "investigate", "alert.json", "--telemetry", "store",
         "--db", "results.duckdb", "--pack", "spread_pack.py",
         "--ray-address", cluster.address, *args],
        cwd=case, env=cluster.env(**env), capture_output=True, text=True, timeout=300,
    )


def batch_spans(path: Path) -> list[dict[str, object]]:
    spans = []
    for line in path.read_text().splitlines():
        for resource in json.loads(line).get("resourceSpans", []):
            for scope in resource["scopeSpans"]:
                for span in scope["spans"]:
                    if span["name"] == "batch":
                        spans.append({a["key"]: next(iter(a["value"].values()))
                                      for a in span["attributes"]})
    return spans


def test_investigation_runs_on_both_nodes_with_a_relative_store_path(cluster, case):
    done = casebook(case, cluster, "--json", "--otel", str(case / "spans.jsonl"))

    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    ours = [i for i in record["invocations"] if i["analyzer"] == "placement"]
    assert [i["status"] for i in ours] == ["found"] * len(SERVICES)
    placed = [f for f in record["findings"] if f["analyzer"] == "placement"]
    nodes = {f["facts"]["node_id"] for f in placed}
    assert len(nodes) == 2, f"every invocation ran on one node: {done.stderr[-2000:]}"
    # The executor's own record of where batches ran says the same.
    spans = batch_spans(case / "spans.jsonl")
    assert {s["casebook.node_id"] for s in spans} == nodes
    assert {f["facts"]["pid"] for f in placed} == {int(s["casebook.worker_pid"]) for s in spans}


def test_a_client_without_the_token_is_told_how_to_join(cluster, case):
    refused = casebook(case, cluster, RAY_AUTH_MODE=None, RAY_AUTH_TOKEN=None)

    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    assert (f"the Ray cluster at {cluster.address} requires token authentication and this "
            "process sends none (RAY_AUTH_MODE is not set): set RAY_AUTH_MODE=token and the "
            "cluster's token in RAY_AUTH_TOKEN") in " ".join(refused.stderr.split())


def test_a_wrong_token_is_named(cluster, case):
    refused = casebook(case, cluster, RAY_AUTH_TOKEN="not-the-token")

    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    assert "the token in RAY_AUTH_TOKEN was refused" in " ".join(refused.stderr.split())


NODE_CHECKS = '''
import sys

from casebook.executor.errors import UserError
from casebook.executor.runtime import pool as pools

address, store = sys.argv[1], sys.argv[2]
pool = pools.WorkerPool(address, None, None)
try:
    pool.check_store(store)
except UserError as exc:
    print("store:", exc)
pool.shutdown_workers()
# This client now reports another casebook version than the nodes run.
pools.casebook_version = lambda: "0.0.0+other"
try:
    pool.warm()
except UserError as exc:
    print("version:", exc)
pool.shutdown()
'''


def test_every_node_is_asked_for_the_store_and_its_casebook_version(cluster, case, tmp_path):
    absent = tmp_path / "only-here"  # a store no node has
    checked = subprocess.run([sys.executable, "-c", NODE_CHECKS, cluster.address, str(absent)],
                             env=cluster.env(), capture_output=True, text=True, timeout=300)

    lines = {line.split(":", 1)[0]: line for line in checked.stdout.splitlines()}
    assert lines["store"].startswith(
        f"store: the telemetry store {absent} cannot be read on Ray node(s) ")
    assert f"(no telemetry store at {absent};" in lines["store"]
    assert lines["store"].endswith(
        "on a cluster the store must be on storage every node reads at the same path (a shared "
        "filesystem), or in object storage (s3://bucket/prefix); see docs/scale.md")
    assert lines["version"].startswith("version: Ray node ")
    assert " runs casebook " in lines["version"]
    assert lines["version"].endswith(
        "and this process casebook 0.0.0+other: every node must run the same version (pip "
        "install casebook==0.0.0+other in the Python that runs `ray start` there, then restart "
        "that node)")


def test_serve_investigates_alerts_concurrently_on_the_cluster(cluster, case, tmp_path):
    """`casebook serve --ray-address`: one slot per CPU of the cluster, all alerts done once."""
    port = free_ports(1)[0]
    log = (tmp_path / "serve.log").open("w")
    serving = subprocess.Popen(
        [str(BIN / "casebook"), "serve", "--telemetry", "store", "--db",
         str(tmp_path / "results.duckdb"), "--pack", "spread_pack.py", "--port", str(port),
         "--ray-address", cluster.address, "--log-level", "info"],
        cwd=case, env=cluster.env(), stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answer(f"{base}/healthz") == 200, serving, tmp_path)
        body = {"version": "4", "status": "firing", "receiver": "casebook", "groupKey": "{}",
                "alerts": [{"status": "firing", "labels": {"alertname": "Spread", "n": str(n)},
                            "annotations": {}, "startsAt": DEFAULT_START.isoformat(),
                            "endsAt": "0001-01-01T00:00:00Z", "fingerprint": f"spread-{n}"}
                           for n in range(4)]}
        assert answer(f"{base}/webhook/alertmanager", body) == 202

        def finished() -> list[dict]:
            with urllib.request.urlopen(f"{base}/api/investigations", timeout=10) as listing:
                rows = json.load(listing)["investigations"]
            return rows if len(rows) == 4 and all(r["status"] != "running" for r in rows) else []

        rows = wait_until(finished, serving, tmp_path)
        assert sorted(r["status"] for r in rows) == ["done"] * 4
    finally:
        serving.send_signal(signal.SIGTERM)
        serving.wait(timeout=60)
        log.close()
    said = (tmp_path / "serve.log").read_text()
    assert "investigating up to 2 alert(s) at once" in said  # the cluster's two CPUs


def answer(url: str, body: object = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except OSError:
        return 0


def wait_until(condition, process: subprocess.Popen, folder: Path, timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError((folder / "serve.log").read_text()[-3000:])
        time.sleep(0.5)
    return value
