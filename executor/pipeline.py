"""From an alert to a stored, ranked and narrated investigation: what every command calls."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from casebook.executor.errors import UserError
from casebook.executor.investigation import Progress, run_investigation, window_for
from casebook.executor.planner import Limits
from casebook.executor.record import InvestigationRecord
from casebook.executor.results import ResultsStore
from casebook.executor.sources import Source
from casebook.sdk.analyzer import AnalyzerDefinitionError
from casebook.sdk.models import Alert
from casebook.sdk.registry import Registry, load_registry


def build_registry(packs: Sequence[str] = ()) -> Registry:
    """The built-in pack, entry-point packs and `packs`, checked; errors listed together."""
    registry = load_registry(packs)
    problems = registry.check()
    if problems:
        raise AnalyzerDefinitionError(problems)
    return registry


def make_runtime(local: bool, ray_address: str | None = None, workers: int | None = None,
                 duckdb_threads: int | None = None):
    """The in-process runtime, or Ray (the default); `duckdb_threads` per Ray worker (default:
    the worker's share of this machine's CPUs, one on a cluster)."""
    if local:
        from casebook.executor.runtime.local import LocalRuntime

        return LocalRuntime()
    import os

    from casebook.executor.runtime.cluster import RayRuntime

    # Prepared windows travel to workers by path: relative to this process, it means nothing
    # to a worker started elsewhere.
    window_dir = os.environ.get("CASEBOOK_WINDOW_DIR")
    if window_dir and "://" not in window_dir:
        window_dir = os.path.abspath(os.path.expanduser(window_dir))
    return RayRuntime(address=ray_address, workers=workers, window_dir=window_dir or None,
                      duckdb_threads=duckdb_threads)


def investigate(
    alert: Alert,
    *,
    telemetry: str | Path,
    registry: Registry,
    runtime,
    results: ResultsStore | None = None,
    packs: Sequence[str] = (),
    limits: Limits | None = None,
    lookback: timedelta | None = None,
    lookahead: timedelta | None = None,
    narrate: bool = True,
    progress: Progress | None = None,
    investigation_id: str | None = None,
    sources: Sequence[Source] = (),
) -> InvestigationRecord:
    """Investigate one alert against a telemetry store and keep the result.

    `sources` (Prometheus servers) are queried for the window first and their series added to
    the store; how each answered is kept in the record, and one that fails is a note.
    """
    from casebook.executor.telemetry_store import TelemetryStore
    from casebook.executor.telemetry_store.keeper import KEPT_SOURCES

    store = TelemetryStore.open(telemetry)  # its url is absolute (or s3://): workers read it
    pool = getattr(runtime, "pool", None)
    if pool is not None:
        pool.check_store(store.url)  # on a cluster: every node reads it, or a clear error now
    kwargs = {}
    if lookback is not None:
        kwargs["lookback"] = lookback
    if lookahead is not None:
        kwargs["lookahead"] = lookahead
    window = window_for(alert, **kwargs)
    pulled = []
    if sources:
        from casebook.executor.sources.prometheus import pull_sources

        pulled = pull_sources(sources, window, store)
    record = run_investigation(
        alert, registry=registry, source=KEPT_SOURCES.source(store), runtime=runtime, window=window,
        limits=limits, store_path=store.url, packs=list(packs),
        investigation_id=investigation_id, progress=progress,
    )
    record.sources = [p.model_dump() for p in pulled]
    record.notes.extend(
        f"Source {p.name} did not answer in full ({p.error}); the analyzers read what the "
        "store held" for p in pulled if not p.ok)
    if narrate:
        record.narrative = narrate_record(record)
    if results is not None:
        results.save(record)
    return record


def narrate_record(record: InvestigationRecord):
    """Claude when configured (with verification and fallback), else the deterministic narrator."""
    from casebook.executor.narration import narrate

    return narrate(record)


def require_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} {path} does not exist")
    return path
