"""The hostile pack, many times on Ray (optionally killing workers at random) and in-process.

    python benchmarks/hostile.py [--ray-runs 30] [--local-runs 10] [--kill-every 2.0] [--json]

Every run must complete and be stored; each bad invocation must get its expected status within
its timeout + 3 s; the good analyzer's finding must be there; the telemetry store's digest (a
hash of every file under it) must never change. With `--kill-every S`, a worker picked at random
is killed (SIGKILL) every S seconds on average while the Ray runs go on: then an innocent
invocation may end `crashed` (its worker died under it twice), which is counted separately,
but a run must still complete and be stored, and the store must not change.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "fixtures"))

import hostile_pack as hostile  # noqa: E402

from casebook.executor.pipeline import investigate  # noqa: E402
from casebook.executor.results import ResultsStore  # noqa: E402

SLACK_S = 3.0


def run(runtime: Any, runs: int, workdir: Path, killer: Killer | None = None) -> dict[str, Any]:
    store = hostile.make_store(workdir / "telemetry")
    outside = workdir / "outside"
    outside.mkdir()
    before = hostile.digest(store)
    registry = hostile.hostile_registry()
    timeouts = {spec.name: spec.timeout_s for spec in registry}
    tally: dict[str, Any] = {
        "runs": runs, "completed": 0, "stored": 0, "good_found": 0, "digest_changed": 0,
        "files_outside": 0, "wrong_status": {}, "first_errors": {}, "late": {}, "seconds": [],
    }
    with ResultsStore(workdir / "results.duckdb") as results:
        for index in range(runs):
            started = time.monotonic()
            try:
                record = investigate(
                    hostile.hostile_alert(store, outside), telemetry=store, registry=registry,
                    runtime=runtime, results=results, narrate=False,
                )
            except Exception as exc:  # a run that does not complete is what this looks for
                print(f"run {index}: {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            tally["seconds"].append(round(time.monotonic() - started, 1))
            tally["completed"] += 1
            stored = results.get(record.id)
            if stored is None or stored.status == "running":
                continue
            tally["stored"] += 1
            tally["good_found"] += any(f.analyzer == "good" for f in stored.findings)
            tally["digest_changed"] += hostile.digest(store) != before
            tally["files_outside"] += len(list(outside.iterdir()))
            for invocation in stored.invocations:
                expected = hostile.EXPECTED.get(invocation.analyzer)
                if invocation.status != expected:
                    key = f"{invocation.analyzer}: {invocation.status} (expected {expected})"
                    tally["wrong_status"][key] = tally["wrong_status"].get(key, 0) + 1
                    tally["first_errors"].setdefault(key, (invocation.error or "")[:300])
                limit_ms = (timeouts[invocation.analyzer] + SLACK_S) * 1000
                if invocation.duration_ms > limit_ms:
                    tally["late"][invocation.analyzer] = max(
                        tally["late"].get(invocation.analyzer, 0), round(invocation.duration_ms)
                    )
            print(f"  run {index}: {tally['seconds'][-1]} s", file=sys.stderr)
    if killer is not None:
        tally["workers_killed"] = killer.killed
    return tally


class Killer:
    """Kills a random Ray worker every `every` seconds on average, until stopped."""

    def __init__(self, runtime: Any, every: float, seed: int = 7) -> None:
        self.runtime, self.every, self.killed = runtime, every, 0
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._random.expovariate(1 / self.every)):
            pids = self.runtime.worker_pids()
            if pids:
                try:
                    os.kill(self._random.choice(pids), signal.SIGKILL)
                    self.killed += 1
                except ProcessLookupError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ray-runs", type=int, default=30)
    parser.add_argument("--kill-runs", type=int, default=10, help="Ray runs with random kills")
    parser.add_argument("--local-runs", type=int, default=10)
    parser.add_argument("--kill-every", type=float, default=2.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    from casebook.executor.runtime.cluster import RayRuntime
    from casebook.executor.runtime.local import LocalRuntime

    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="casebook-hostile-") as directory:
        root = Path(directory)
        ray_runtime = RayRuntime(workers=os.cpu_count())
        ray_runtime.warm()
        try:
            if args.ray_runs:
                print("Ray:", file=sys.stderr)
                (root / "ray").mkdir()
                result["ray"] = run(ray_runtime, args.ray_runs, root / "ray")
            if args.kill_runs:
                print(f"Ray, a worker killed every ~{args.kill_every:g} s:", file=sys.stderr)
                (root / "kills").mkdir()
                killer = Killer(ray_runtime, args.kill_every)
                try:
                    result["ray_with_kills"] = run(
                        ray_runtime, args.kill_runs, root / "kills", killer
                    )
                finally:
                    killer.stop()
        finally:
            ray_runtime.shutdown()
        if args.local_runs:
            print("in-process runtime (child process):", file=sys.stderr)
            (root / "local").mkdir()
            local = LocalRuntime()
            try:
                result["local"] = run(local, args.local_runs, root / "local")
            finally:
                local.shutdown()
    if args.json:
        print(json.dumps(result))
        return
    for name, tally in result.items():
        print(
            f"{name}: {tally['completed']}/{tally['runs']} completed, {tally['stored']} stored, "
            f"good finding in {tally['good_found']}, store changed {tally['digest_changed']} "
            f"times, wrong statuses {tally['wrong_status'] or 'none'}, late "
            f"{tally['late'] or 'none'}"
        )


if __name__ == "__main__":
    main()
