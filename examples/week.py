"""Two realistic weeks of alerts, replayed through the real executor into a results database.

The coverage report needs a week worth reading: the seed incidents recurring, noise alerts no
analyzer is written for (disk space, certificates, memory pressure: no `service` label, so only
the analyzers that run on every alert touch them), a flapping latency alert that fires and
resolves every half hour, and feedback from the on-call. The week before is replayed too, more
quietly, so every headline figure has a week-over-week change.

This module is also a small team pack (`--pack casebook.examples.week`) of the kind every
organisation has: one analyzer reads a table that a migration renamed (it errors), one runs a
quadratic self-join (it times out), and one waits for an alert that never fires.

    python -m casebook.examples.week OUT_DIR    # then: casebook coverage --db OUT_DIR/week.duckdb
"""

from __future__ import annotations

import random
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from casebook.sdk import Entity, Finding, Telemetry, analyzer
from casebook.sdk.models import Alert

PACK = "casebook.examples.week"

# (seed scenario, firings this week, firings the week before); each reads its own telemetry.
SEED_REPLAYS = (("nye", 4, 1), ("kv_cache", 5, 2), ("capacity", 3, 2))
NOISE = {
    "DiskSpaceLow": (
        {
            "instance": "db-{n}:9100",
            "mountpoint": "/var/lib/postgresql",
            "device": "nvme1n1",
            "severity": "warning",
        },
        14,
        9,
    ),
    "CertificateExpiringSoon": (
        {"domain": "api.example.com", "issuer": "internal-ca", "severity": "warning"},
        7,
        7,
    ),
    "NodeMemoryPressure": ({"instance": "worker-{n}:9100", "severity": "warning"}, 4, 3),
}
FLAPPING = ("LatencyP99High", {"service": "checkout", "route": "/cart", "severity": "page"})
FLAPPING_BURSTS = ((1, 6), (4, 6))  # (day of the week, firings 30 minutes apart)
FLAPPING_BEFORE = ((2, 4),)


# -- the team pack ---------------------------------------------------------------------------


class PaymentProviderErrors(Finding):
    provider: str
    errors: int


@analyzer(match={"alertname": "HTTP5xxHigh"}, timeout_s=10, category="dependency")
def payment_provider_errors(telemetry: Telemetry, service: str) -> PaymentProviderErrors | None:
    """The payment provider whose calls failed most (reads payment_events, renamed last month)."""
    rows = telemetry.sql(
        "select provider, count(*) as errors from payment_events "
        "where service = ? and status = 'error' group by provider order by errors desc",
        [service],
    )
    if not rows:
        return None
    provider, errors = rows.rows[0]
    return PaymentProviderErrors(
        title=f"{provider} failing",
        summary=f"{errors} failed calls to {provider}",
        category="dependency",
        entities=[Entity(kind="provider", name=provider)],
        evidence=[rows.evidence()],
        provider=provider,
        errors=errors,
    )


class HeavyRoute(Finding):
    route: str


@analyzer(match={"alertname": "HighRequestVolume"}, timeout_s=0.15, category="capacity")
def heavy_route(telemetry: Telemetry, service: str) -> HeavyRoute | None:
    """The route whose requests outweigh the most others (a quadratic self-join: too slow)."""
    rows = telemetry.sql(
        "select a.route, count(*) as heavier from requests a join requests b "
        "on a.route = b.route and b.bytes > a.bytes where a.service = ? "
        "group by a.route order by heavier desc",
        [service],
    )
    if not rows:
        return None
    route = rows.rows[0][0]
    return HeavyRoute(
        title=f"{route} carries the heaviest requests",
        summary=route,
        category="capacity",
        entities=[Entity(kind="route", name=route)],
        route=route,
    )


class QueueBacklog(Finding):
    queue: str


@analyzer(match={"alertname": "QueueBacklogHigh"}, category="capacity")
def queue_backlog(telemetry: Telemetry, queue: str) -> QueueBacklog | None:
    """The consumer group that stopped keeping up (its alert did not fire this week)."""
    rows = telemetry.sql(
        "select max(value) from metrics where name = 'queue_depth' and labels['queue'] = ?", [queue]
    )
    depth = rows.rows[0][0] if rows else None
    if not depth:
        return None
    return QueueBacklog(
        title=f"{queue} backlog at {depth:.0f}",
        summary=queue,
        category="capacity",
        entities=[Entity(kind="queue", name=queue)],
        queue=queue,
    )


# -- the replay ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Firing:
    """One alert to investigate, the store it reads, and when it fired during the week."""

    at: datetime
    alert: Alert
    store: str
    vote: tuple[bool, str, str | None] | None = None  # helpful, comment, analyzer of the finding


@dataclass
class WeekSummary:
    db: Path
    start: datetime
    end: datetime
    investigations: int = 0
    by_alert: dict[str, int] = field(default_factory=dict)
    feedback: int = 0


def replay_week(
    db: str | Path,
    workdir: str | Path,
    *,
    end: datetime | None = None,
    seed: int = 7,
    progress: Callable[[int, int], None] | None = None,
) -> WeekSummary:
    """Investigate two weeks of alerts (ending at `end`, by default now) into a new database."""
    from casebook.examples.seeds import SCENARIOS
    from casebook.executor.errors import UserError
    from casebook.executor.investigation import run_investigation
    from casebook.executor.pipeline import build_registry, narrate_record
    from casebook.executor.results import ResultsStore
    from casebook.executor.runtime.local import LocalRuntime
    from casebook.executor.telemetry_store import TelemetryStore

    db, workdir = Path(db), Path(workdir)
    if db.exists():
        raise UserError(
            f"{db} already exists; replay_week writes a new results database, so "
            "give a path that does not exist yet (or delete that file)"
        )
    end = (end or datetime.now(UTC)).astimezone(UTC)
    start = end - timedelta(days=7)
    seeds = {name: _seed_store(SCENARIOS[name], workdir / name) for name, _, _ in SEED_REPLAYS}
    sources = {name: TelemetryStore.open(path).source() for name, (path, _) in seeds.items()}
    firings = schedule(start, {name: alert for name, (_, alert) in seeds.items()}, seed)
    registry = build_registry([PACK])
    summary = WeekSummary(db=db, start=start, end=end)
    with ResultsStore(db) as results:
        for count, firing in enumerate(firings, start=1):
            record = run_investigation(
                firing.alert,
                registry=registry,
                source=sources[firing.store],
                runtime=LocalRuntime(),
                packs=[PACK],
                investigation_id=f"inv-{firing.at:%Y%m%d-%H%M%S}-{count:03d}",
            )
            record.narrative = narrate_record(record)
            took = (record.finished_at or record.created_at) - record.created_at
            record.created_at, record.finished_at = firing.at, firing.at + took
            results.save(record)
            summary.investigations += 1
            summary.by_alert[firing.alert.name] = summary.by_alert.get(firing.alert.name, 0) + 1
            summary.feedback += _vote(results, record, firing.vote)
            if progress is not None:
                progress(count, len(firings))
    return summary


def schedule(start: datetime, seed_alerts: dict[str, Alert], seed: int = 7) -> list[Firing]:
    """Every firing of the week starting at `start` and of the week before, in time order."""
    rng = random.Random(seed)
    firings = [
        *_firings(start - timedelta(days=7), False, seed_alerts, rng),
        *_firings(start, True, seed_alerts, rng),
    ]
    return sorted(firings, key=lambda f: f.at)


def _firings(
    week_start: datetime, this_week: bool, seed_alerts: dict[str, Alert], rng: random.Random
) -> list[Firing]:
    def moment(day: float, hours: tuple[int, int] = (0, 24)) -> datetime:
        return week_start + timedelta(days=int(day), hours=rng.uniform(*hours))

    firings: list[Firing] = []
    for name, now, before in SEED_REPLAYS:
        for _ in range(now if this_week else before):
            firings.append(
                Firing(
                    moment(rng.randrange(7), (8, 19)),
                    seed_alerts[name],
                    name,
                    _seed_vote(name, rng),
                )
            )
    for alert_name, (labels, now, before) in NOISE.items():
        count = now if this_week else before
        for n in range(count):
            at = moment(n * 7 / count)
            filled = {k: v.format(n=rng.randrange(1, 6)) for k, v in labels.items()}
            firings.append(
                Firing(
                    at,
                    Alert(name=alert_name, labels=filled, starts_at=at, source="alertmanager"),
                    "nye",
                )
            )
    name, labels = FLAPPING
    for day, count in FLAPPING_BURSTS if this_week else FLAPPING_BEFORE:
        first = moment(day, (9, 12))
        for n in range(count):
            at = first + timedelta(minutes=30 * n)
            vote = (
                (
                    False,
                    f"flapped {count} times in {count // 2} hours and nothing was "
                    "found; the threshold needs fixing",
                    None,
                )
                if this_week and n == count - 1
                else None
            )
            firings.append(
                Firing(
                    at,
                    Alert(name=name, labels=labels, starts_at=at, source="alertmanager"),
                    "nye",
                    vote,
                )
            )
    return firings


VOTES = {
    "nye": (
        True,
        "account_cohort",
        (
            "the fake-account cohort was it; suspended them",
            "same cohort again, rate limit now in place",
            "",
        ),
    ),
    "kv_cache": (
        True,
        "cache_collapse",
        ("cache eviction storm confirmed", "kv cache again; raising its memory", ""),
    ),
    "capacity": (
        False,
        "change_event",
        (
            "the flag change had nothing to do with it",
            "real traffic from the new clients; not the flag",
        ),
    ),
}


def _seed_vote(name: str, rng: random.Random) -> tuple[bool, str, str | None] | None:
    if rng.random() < 0.4:
        return None
    helpful, analyzer_name, comments = VOTES[name]
    return helpful, rng.choice(comments), analyzer_name


def _vote(results, record, vote: tuple[bool, str, str | None] | None) -> int:
    if vote is None:
        return 0
    helpful, comment, analyzer_name = vote
    finding = next((f for f in record.findings if f.analyzer == analyzer_name), None)
    results.add_feedback(
        record.id,
        helpful,
        comment=comment,
        source="web",
        finding_id=finding.id if finding is not None else None,
    )
    return 1


def _seed_store(scenario, directory: Path) -> tuple[Path, Alert]:
    """Generate a seed case once and lay its telemetry out as a Parquet store."""
    from casebook.executor.alerts import load_alerts

    case = directory / "case"
    if not (case / "alert.json").exists():
        scenario.generate(case)
    store = directory / "store"
    for table in sorted((case / "telemetry").glob("*.parquet")):
        target = store / table.stem / "part-0.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copyfile(table, target)
    return store, load_alerts(case / "alert.json")[0]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m casebook.examples.week OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    summary = replay_week(out / "week.duckdb", out / "week")
    print(
        f"{summary.investigations} investigations over the two weeks to "
        f"{summary.end:%Y-%m-%d %H:%M} UTC in {summary.db}"
    )
    print(f"next: casebook coverage --db {summary.db} --html {out / 'coverage.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
