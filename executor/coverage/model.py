"""The coverage report's typed shape, and how its numbers read in every format."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

# An analyzer whose errors and timeouts pass this share of the invocations it ran needs fixing.
UNRELIABLE_SHARE = 0.10


@dataclass(frozen=True)
class Period:
    """A reporting period, [start, end)."""

    start: datetime
    end: datetime

    def previous(self) -> Period:
        """The period of the same length just before this one (for week-over-week figures)."""
        return Period(self.start - (self.end - self.start), self.start)

    @property
    def days(self) -> float:
        return (self.end - self.start) / timedelta(days=1)

    @property
    def label(self) -> str:
        last = self.end - timedelta(microseconds=1)
        if _is_midnight(self.start) and _is_midnight(self.end):
            return f"{self.start:%Y-%m-%d} to {last:%Y-%m-%d}"
        return f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC"


def _is_midnight(moment: datetime) -> bool:
    return (moment.hour, moment.minute, moment.second, moment.microsecond) == (0, 0, 0, 0)


@dataclass(frozen=True)
class Figure:
    """A headline figure with its value in the previous period."""

    label: str
    value: float | None
    previous: float | None
    kind: str = "count"  # count, share, ms, usd
    better: str = ""  # "up", "down" or "" when neither direction is good news

    @property
    def text(self) -> str:
        return format_value(self.value, self.kind)

    @property
    def change(self) -> str:
        """The change against the previous period, in words a reader takes in at once."""
        if self.value is None:
            return "no data"
        if self.previous is None:
            return "new"
        delta = self.value - self.previous
        if abs(delta) < 1e-9:
            return "no change"
        sign = "+" if delta > 0 else "-"
        if self.kind == "share":
            return f"{sign}{abs(delta) * 100:.0f} pts"
        return f"{sign}{format_value(abs(delta), self.kind)}"

    @property
    def tone(self) -> str:
        """good, bad or neutral: whether the change is news to welcome."""
        if self.value is None or self.previous is None or not self.better:
            return "neutral"
        delta = self.value - self.previous
        if abs(delta) < 1e-9:
            return "neutral"
        return "good" if (delta > 0) == (self.better == "up") else "bad"


@dataclass(frozen=True)
class AlertCoverage:
    """One alert name over the period."""

    name: str
    volume: int
    previous_volume: int
    covered: int
    with_finding: int
    median_first_finding_ms: float | None
    covered_without_finding: int = 0

    @property
    def covered_share(self) -> float:
        return self.covered / self.volume if self.volume else 0.0

    @property
    def finding_share(self) -> float:
        return self.with_finding / self.volume if self.volume else 0.0


@dataclass(frozen=True)
class AnalyzerCoverage:
    """One analyzer over the period: alerts it applied to, and what its invocations did."""

    name: str
    applicable: int  # investigations with at least one invocation of it
    ran: int  # investigations where at least one of its invocations was not skipped
    found_in: int  # investigations where it found something
    invocations: int
    found: int
    nothing: int
    skipped: int
    error: int  # error and crashed
    timeout: int
    p50_ms: float | None
    p95_ms: float | None
    helpful: int
    not_helpful: int
    catch_all: bool = False
    registered: bool = True
    owner: str | None = None
    missing_data: int = 0  # skipped because data its reads= declares was missing
    missing_reason: str | None = None  # e.g. "metric 'disk_usage_ratio'"

    @property
    def ran_invocations(self) -> int:
        return self.invocations - self.skipped

    @property
    def failure_share(self) -> float:
        """Errors and timeouts as a share of the invocations that ran."""
        ran = self.ran_invocations
        return (self.error + self.timeout) / ran if ran else 0.0

    @property
    def unreliable(self) -> bool:
        return self.error + self.timeout > 0 and self.failure_share >= UNRELIABLE_SHARE

    @property
    def disliked(self) -> bool:
        """People marked its findings not helpful more often than helpful."""
        return self.not_helpful > self.helpful


@dataclass(frozen=True)
class UncoveredAlert:
    """An alert name that fired without any analyzer written for it running."""

    name: str
    uncovered: int
    volume: int
    label_keys: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class CauseCount:
    """A probable cause (category and entity) and how often it ranked first or in the top 3."""

    category: str
    entity: str
    top: int
    top3: int
    alerts: tuple[str, ...]


@dataclass(frozen=True)
class Comment:
    investigation_id: str
    alert_name: str
    finding_id: str | None
    analyzer: str | None
    helpful: bool
    comment: str
    created_at: datetime | None


@dataclass(frozen=True)
class FeedbackSummary:
    helpful: int = 0
    not_helpful: int = 0
    on_findings: int = 0
    comments: tuple[Comment, ...] = ()

    @property
    def total(self) -> int:
        return self.helpful + self.not_helpful

    @property
    def helpful_share(self) -> float | None:
        return self.helpful / self.total if self.total else None


@dataclass(frozen=True)
class NarrationSpend:
    """Narratives by one narrator and model: how many, tokens, cost, fallbacks."""

    narrator: str
    model: str
    narratives: int
    tokens_in: int
    tokens_out: int
    cost_usd: float
    fallbacks: int
    unverified: int


@dataclass(frozen=True)
class Day:
    """Alerts investigated on one day, and how many of them were covered."""

    day: date
    volume: int
    covered: int


@dataclass(frozen=True)
class CoverageReport:
    """Everything the coverage report shows, computed from the results database."""

    database: str
    period: Period
    generated_at: datetime
    investigations: int
    previous_investigations: int
    figures: tuple[Figure, ...]
    alerts: tuple[AlertCoverage, ...]
    analyzers: tuple[AnalyzerCoverage, ...]
    never_applied: tuple[str, ...]
    uncovered: tuple[UncoveredAlert, ...]
    unexplained: tuple[AlertCoverage, ...]
    causes: tuple[CauseCount, ...]
    days: tuple[Day, ...]
    categories: tuple[tuple[str, int], ...]
    feedback: FeedbackSummary
    narration: tuple[NarrationSpend, ...]
    first_day: datetime | None = None
    last_day: datetime | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    owners: dict[str, str] = field(default_factory=dict)  # analyzer -> owning team

    def owner_of(self, analyzer: str) -> str:
        return self.owners.get(analyzer) or "no owner"

    @property
    def empty(self) -> bool:
        return self.investigations == 0

    @property
    def never_found(self) -> tuple[AnalyzerCoverage, ...]:
        """Analyzers that ran this period and never found anything."""
        return tuple(a for a in self.analyzers if a.ran and not a.found)

    @property
    def always_skipped(self) -> tuple[AnalyzerCoverage, ...]:
        """Analyzers that applied this period but were skipped every time."""
        return tuple(a for a in self.analyzers
                     if a.applicable and not a.ran and not a.missing_data)

    @property
    def missing_data(self) -> tuple[AnalyzerCoverage, ...]:
        """Analyzers that could not run for lack of the data they declare they read."""
        return tuple(a for a in self.analyzers if a.missing_data)

    @property
    def unreliable(self) -> tuple[AnalyzerCoverage, ...]:
        """Analyzers whose errors and timeouts pass UNRELIABLE_SHARE of what they ran."""
        return tuple(
            sorted(
                (a for a in self.analyzers if a.unreliable),
                key=lambda a: (-a.failure_share, a.name),
            )
        )

    @property
    def claude_used(self) -> bool:
        return any(
            n.narrator != "deterministic" or n.tokens_in or n.tokens_out for n in self.narration
        )


def format_value(value: float | None, kind: str) -> str:
    """A figure as people read it: 1,234 / 42% / 850 ms / 1.2 s / $0.42."""
    if value is None:
        return "-"
    if kind == "share":
        return f"{value * 100:.0f}%"
    if kind == "ms":
        return format_ms(value)
    if kind == "usd":
        return f"${value:,.2f}"
    if kind == "tokens":
        return f"{value:,.0f}"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def format_ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return "<1 ms"
    if value < 1000:
        return f"{value:.0f} ms"
    if value < 60_000:
        return f"{value / 1000:.1f} s"
    return f"{value / 60_000:.1f} min"


def format_share(part: int, whole: int) -> str:
    return f"{part / whole * 100:.0f}%" if whole else "-"


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


DEFINITIONS = (
    (
        "Alert",
        "one firing alert that was investigated, counted in the period its "
        "investigation was created; resolved notifications are not counted.",
    ),
    (
        "Covered",
        "at least one analyzer written for the alert ran on it (was not skipped). Catch-all "
        "analyzers (no matchers, no predicate, no parameters; marked 'any alert') run on every "
        "alert and would make every alert look covered, so they do not count; nor does an "
        "analyzer that applied but was skipped (for example for lack of a service label).",
    ),
    ("With a finding", "the investigation stored at least one finding."),
    (
        "Time to first finding",
        "from the start of the investigation to the end of the first "
        "invocation that found something.",
    ),
    (
        "Applied, ran, found in",
        "investigations with an invocation of the analyzer, with one "
        "that was not skipped, with one that found something.",
    ),
    (
        "found, nothing, skipped, error, timeout",
        "invocations (a fan-out analyzer has several "
        "per alert); error includes crashed workers. "
        "p50 and p95 are over invocations that ran.",
    ),
    (
        "High error or timeout rate",
        f"errors and timeouts are {UNRELIABLE_SHARE:.0%} or more "
        "of the invocations the analyzer ran.",
    ),
    (
        "Top causes",
        "counted once per investigation where the cause ranked first; 'in top 3' "
        "where it ranked first to third.",
    ),
    (
        "Feedback",
        "helpful / not helpful records on investigations of the period (`casebook "
        "feedback` or the buttons on the investigation page); per analyzer, those on "
        "its findings.",
    ),
    ("Change", "against the period of the same length just before this one."),
)
