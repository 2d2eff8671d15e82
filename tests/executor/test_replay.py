"""`casebook backtest --replay`: stored alerts re-run with a changed pack, differences shown."""

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from casebook.executor.cli import app
from casebook.executor.ingest import ingest
from casebook.executor.results import ResultsStore
from casebook.executor.telemetry_store import TelemetryStore

BIN = Path(sys.executable).parent


def casebook(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([str(BIN / "casebook"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def stored_week(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A team pack, a store, and five investigated alerts (one marked helpful)."""
    pack = tmp_path / "team_pack"
    for name, kind in (("deploy_before_alert", "change"), ("cpu_peak", "metric-threshold")):
        made = CliRunner().invoke(app, ["analyzers", "new", name, "--dir", str(pack),
                                        "--kind", kind, "--owner", "checkout-sre"])
        assert made.exit_code == 0, made.output
    # A metric only the team's analyzer reads, so what it finds is the team pack's alone.
    for path in [pack / "team_pack" / "cpu_peak.py",
                 *(pack / "examples" / "cpu_peak" / "telemetry").glob("*.jsonl")]:
        path.write_text(path.read_text().replace("cpu_utilization", "checkout_queue_depth"))
    store_path = tmp_path / "store"
    store = TelemetryStore.open(store_path, create=True)
    ingest(sorted((pack / "examples").glob("*/telemetry/*.jsonl")), store)
    db = tmp_path / "results.duckdb"
    ids: dict[str, str] = {}
    # Stored the way production stores them: a separate `casebook investigate` per alert.
    for name, label, count in (("deploy_before_alert", "deploy", 3), ("cpu_peak", "cpu", 2)):
        alert = json.loads((pack / "examples" / name / "alert.json").read_text())
        for number in range(count):
            path = tmp_path / f"{label}-{number}.json"
            path.write_text(json.dumps({**alert, "fingerprint": f"{label}-{number}"}))
            done = casebook("investigate", str(path), "--telemetry", str(store_path), "--db",
                            str(db), "--pack", str(pack), "--local", "--json", cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            ids[f"{label}-{number}"] = json.loads(done.stdout)["id"]
    with ResultsStore(db) as results:
        results.add_feedback(ids["cpu-0"], True)
    (tmp_path / "ids.json").write_text(json.dumps(ids))
    return pack, store_path, db


def test_replay_shows_no_change_for_the_same_pack_and_fails_when_an_analyzer_breaks(tmp_path):
    pack, store, db = stored_week(tmp_path)
    same = casebook("backtest", "--replay", str(db), "--telemetry", str(store), "--pack",
                    str(pack), "--local", "--fail-on-regression", cwd=tmp_path)
    assert same.returncode == 0, same.stderr
    assert "5 alerts replayed: 0 changed, 5 unchanged, 0 regression(s)" in same.stdout

    # A plausible bad edit: the threshold goes from 1.5x the usual high to 5x.
    module = pack / "team_pack" / "cpu_peak.py"
    module.write_text(module.read_text().replace("peak < 1.5 * usual", "peak < 5 * usual"))
    broken = casebook("backtest", "--replay", str(db), "--telemetry", str(store), "--pack",
                      str(pack), "--local", "--fail-on-regression", cwd=tmp_path)
    assert broken.returncode == 1
    out = broken.stdout
    ids = json.loads((tmp_path / "ids.json").read_text())
    assert "HighCpu  " in out and f"{ids['cpu-0']}, feedback: helpful" in out
    assert "  - resource on service checkout  (was rank 1)" in out
    assert ("  REGRESSION: the rank-1 cause resource on service checkout (confirmed helpful "
            "by feedback) is gone") in out
    assert "5 alerts replayed: 2 changed, 3 unchanged, 2 regression(s)" in out
    assert "replay failed: 2 alert(s) regressed" in " ".join(broken.stderr.split())


def test_replay_explains_a_missing_database_and_a_bad_duration(tmp_path):
    missing = CliRunner().invoke(app, ["backtest", "--replay", str(tmp_path / "none.duckdb"),
                                       "--telemetry", str(tmp_path)])
    assert missing.exit_code != 0
    assert "no results database at" in missing.output
    (tmp_path / "r.duckdb").touch()
    bad = CliRunner().invoke(app, ["backtest", "--replay", str(tmp_path / "r.duckdb"),
                                   "--telemetry", str(tmp_path), "--since", "fortnight"])
    assert "--since 'fortnight' is not a duration; write e.g. 14d, 36h, 90m or 2w" in bad.output
