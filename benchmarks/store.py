"""Store benchmark: keyed appends, re-sent appends, a reader's connect and count, compaction.

    python benchmarks/store.py            # a table
    python benchmarks/store.py --json     # one JSON object

Appends BATCHES batches of ROWS log rows (one hour of data, each with its own key) to a new
Parquet store on local disk, re-sends them all (nothing may be added), then connects and counts
as an investigation would, and compacts the hour into one file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa

from casebook.executor.telemetry_store import TelemetryStore

HOUR = datetime(2026, 12, 3, 10)


def batch(index: int, rows: int) -> pa.Table:
    start = HOUR + timedelta(seconds=index * 10)
    return pa.table(
        {
            "ts": [start + timedelta(milliseconds=j) for j in range(rows)],
            "service": [f"svc-{j % 20}" for j in range(rows)],
            "level": ["info"] * rows,
            "message": [f"request {j} served" for j in range(rows)],
        }
    )


def measure(batches: int, rows: int) -> dict:
    data = [batch(i, rows) for i in range(batches)]
    with tempfile.TemporaryDirectory(prefix="casebook-store-bench-") as tmp:
        store = TelemetryStore.open(Path(tmp) / "store", create=True)
        started = time.perf_counter()
        for index, table in enumerate(data):
            store.append("logs", table, key=f"batch-{index}")
        appended = time.perf_counter() - started

        started = time.perf_counter()
        duplicates = sum(
            store.append("logs", table, key=f"batch-{index}").duplicate
            for index, table in enumerate(data)
        )
        resent = time.perf_counter() - started

        started = time.perf_counter()
        counted = store.row_counts()["logs"]
        read = time.perf_counter() - started

        started = time.perf_counter()
        (done,) = store.compact(grace=timedelta(0))
        compacted = time.perf_counter() - started
        after = store.row_counts()["logs"]
    return {
        "batches": batches,
        "rows_per_batch": rows,
        "appends_per_s": round(batches / appended, 1),
        "rows_per_s": round(batches * rows / appended),
        "append_ms": round(appended / batches * 1000, 1),
        "resent_ms": round(resent / batches * 1000, 1),
        "resent_added": batches - duplicates,
        "connect_and_count_s": round(read, 3),
        "rows": counted,
        "compact_s": round(compacted, 2),
        "files_merged": done.merged,
        "rows_after_compaction": after,
        "cpus": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 1),
        "python": platform.python_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--rows", type=int, default=1000)
    args = parser.parse_args()
    result = measure(args.batches, args.rows)
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:>24}  {value}")


if __name__ == "__main__":
    main()
