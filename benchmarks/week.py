"""Demo-week benchmark: two weeks of alerts (77 investigations) replayed through the executor.

    python benchmarks/week.py            # a table
    python benchmarks/week.py --json     # one JSON object

The baseline in the same run is one investigation of the same seed incidents on the same
in-process runtime, so `per_investigation_vs_single` holds on a noisy machine where the absolute
seconds do not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

END = datetime(2026, 3, 16, tzinfo=UTC)


def single_investigation_s(workdir: Path) -> float:
    """Median of three investigations of the kv_cache seed incident (the baseline)."""
    from casebook.examples.seeds import SCENARIOS
    from casebook.examples.week import PACK, _seed_store
    from casebook.executor.investigation import run_investigation
    from casebook.executor.pipeline import build_registry
    from casebook.executor.runtime.local import LocalRuntime
    from casebook.executor.telemetry_store import TelemetryStore

    path, alert = _seed_store(SCENARIOS["kv_cache"], workdir / "single")
    source = TelemetryStore.open(path).source()
    registry = build_registry([PACK])
    times = []
    for _ in range(3):
        started = time.perf_counter()
        run_investigation(alert, registry=registry, source=source, runtime=LocalRuntime(),
                          packs=[PACK])
        times.append(time.perf_counter() - started)
    return sorted(times)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    from casebook.examples.week import replay_week

    with tempfile.TemporaryDirectory(prefix="casebook-week-") as tmp:
        work = Path(tmp)
        single = single_investigation_s(work)
        started = time.perf_counter()
        summary = replay_week(work / "week.duckdb", work / "work", end=END)
        took = time.perf_counter() - started
    per = took / summary.investigations
    figures = {
        "investigations": summary.investigations,
        "wall_s": round(took, 2),
        "per_investigation_ms": round(per * 1000, 1),
        "single_investigation_ms": round(single * 1000, 1),
        "per_investigation_vs_single": round(per / single, 2),
        "load_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    if args.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        print(f"{key:>30}  {value}")


if __name__ == "__main__":
    main()
