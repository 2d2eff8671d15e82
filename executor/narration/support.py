"""What findings state, in the forms a sentence is compared against.

A finding supports what its analyzer wrote: title, summary, entities, typed facts (with the unit
their key names: `p95_ms`, `minutes_before`, `error_share`), mitigations, evidence notes and the
structured cells of its evidence. Text it copied from telemetry supports nothing: spans between
“curly quotes” in its title or summary (the SDK's `quoted()`), strings with spaces in its facts
and rows, and every cell of a text column (message, summary, annotation, ...). Such text is
evidence of what was logged, never of a cause, a team or an action.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from casebook.executor.narration.claims import QUOTED, content_stems, extract
from casebook.executor.record import FindingRecord, InvestigationRecord

# Evidence columns and fact keys whose values are telemetry text, whatever their shape.
TEXT_KEYS = re.compile(
    r"(?:^|_)(?:message|msg|summary|sample|samples|line|lines|body|annotation|annotations|"
    r"description|text|change|note|reason|detail|attributes)s?$",
    re.I,
)
UNIT_OF_KEY = [
    (re.compile(r"(?:^|_)per(?:_|$)"), "", 1.0),  # a rate (requests per minute), not a duration
    (re.compile(r"(?:^|_)(?:ms|millis|milliseconds)(?:_|$)"), "s", 0.001),
    (re.compile(r"(?:^|_)(?:s|sec|secs|seconds)(?:_|$)"), "s", 1.0),
    (re.compile(r"(?:^|_)(?:min|mins|minutes)(?:_|$)(?!.*per)"), "s", 60.0),
    (re.compile(r"(?:^|_)(?:h|hours)(?:_|$)"), "s", 3600.0),
    (re.compile(r"(?:^|_)(?:pct|percent)(?:_|$)"), "%", 0.01),
]
FRACTION_KEY = re.compile(r"share|fraction|ratio|rate|ratio|proportion|portion", re.I)
MULTIPLIER_KEY = re.compile(r"^(?:ratio|factor|multiplier|times|fold|x)$|_(?:factor|multiplier|x)$")
PAIR_PREFIX = re.compile(r"^(?:baseline|before|previous|prior|normal|usual|from|old)_")
PAIR_AFTER = re.compile(r"^(?:after|now|current|level|peak|to|new|observed)_")


@dataclass(frozen=True)
class Quantity:
    value: float
    unit: str  # "", "s", "%", "x" or a written unit
    context: frozenset[str]  # the words it is about (fact key parts, words around it)
    exact: bool = False  # evidence cells support only their exact value


@dataclass(frozen=True)
class Change:
    """A value that went from `before` to `after` (a baseline and a level, "from A to B")."""

    before: float
    after: float
    context: frozenset[str]

    @property
    def direction(self) -> int:
        return (self.after > self.before) - (self.after < self.before)


@dataclass
class Support:
    quantities: list[Quantity] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    moments: list[datetime] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    times: set[str] = field(default_factory=set)
    dates: set[str] = field(default_factory=set)
    words: set[str] = field(default_factory=set)
    topic: set[str] = field(default_factory=set)  # what the finding is about, for binding
    quotes: set[str] = field(default_factory=set)  # copied text, quotable verbatim
    entities: set[str] = field(default_factory=set)

    def add_text(self, text: str) -> None:
        """What an analyzer wrote: everything but the spans it quoted from telemetry."""
        for quote in QUOTED.findall(text):
            self.quotes.add(normal(quote.strip("“”")))
        own = QUOTED.sub(" ", text)
        claims = extract(own)
        self.names.update(n.lower() for n in claims.names)
        for number in claims.numbers:
            context = frozenset(content_stems(own))
            self.quantities.append(Quantity(number.value, number.unit, context))
            if number.unit == "%":
                self.quantities.append(Quantity(number.raw, "", context))
        self.times.update(claims.times)
        self.dates.update(claims.dates)
        self.words.update(claims.words)
        self.topic.update(content_stems(own))
        for token in own.replace("/", " ").split():
            self.names.add(token.strip(".,;:()'\"").lower())
        for before, after in _from_to(own):
            self.changes.append(Change(before, after, frozenset(content_stems(own))))

    def add_moment(self, moment: datetime | None) -> None:
        if moment is not None:
            self.moments.append(moment)
            self.times.add(f"{moment:%H:%M}")
            self.dates.add(f"{moment:%Y-%m-%d}")

    def add_fact(self, key: str, value: Any, *, exact: bool = False) -> None:
        """A typed fact (or an evidence cell under its column name)."""
        if isinstance(value, bool) or value is None:
            return
        words = frozenset(content_stems(key.replace("_", " ")))
        if isinstance(value, int | float):
            if not math.isfinite(value):
                return
            number = abs(float(value))
            unit, factor = _unit_of(key, number)
            self.quantities.append(Quantity(number * factor, unit, words, exact))
            if unit:
                self.quantities.append(Quantity(number, "", words, exact))
        elif isinstance(value, str):
            if TEXT_KEYS.search(key) or any(c.isspace() for c in value) or len(value) > 100:
                return
            moment = _moment(value)
            if moment is not None:
                self.add_moment(moment)
            elif exact:
                self.names.add(value.lower())
                self.names.update(n.lower() for n in extract(value).names)
            else:
                self.add_text(value)
        elif isinstance(value, dict):
            for inner, item in value.items():
                self.names.add(str(inner).lower())
                self.add_fact(f"{key}_{inner}" if key else str(inner), item, exact=exact)
        elif isinstance(value, list | tuple | set):
            for item in value:
                self.add_fact(key, item, exact=exact)


def normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s/.-]", " ", text.lower()).split()).strip(". ")


def finding_support(finding: FindingRecord) -> Support:
    """What one finding states."""
    support = Support()
    for text in (finding.title, finding.summary):
        support.add_text(text)
    if getattr(finding, "owner", None):  # the team the registry says owns the analyzer
        support.names.add(str(finding.owner).lower())
    for text in (finding.analyzer, finding.category, finding.id):
        support.names.add(text.lower())
        support.topic.update(content_stems(text.replace("_", " ")))
    for entity in finding.entities:
        support.add_text(entity.name)
        support.names.add(entity.kind.lower())
        support.entities.add(entity.name.lower())
    for mitigation in finding.mitigations:
        support.add_text(mitigation.action)
        support.add_text(mitigation.detail)
    support.add_moment(finding.onset)
    for key, value in finding.facts.items():
        support.names.add(key.lower())
        support.topic.update(content_stems(key.replace("_", " ")))
        support.add_fact(key, value)
    support.changes.extend(_fact_changes(finding.facts))
    for evidence in finding.evidence:
        support.add_text(evidence.note)
        for name in [*evidence.columns, *evidence.series]:
            support.add_text(name)
        support.add_fact("params", evidence.params, exact=True)
        for row in evidence.rows:
            for index, cell in enumerate(row):
                column = evidence.columns[index] if index < len(evidence.columns) else ""
                support.add_fact(column, cell, exact=True)
    return support


def record_support(record: InvestigationRecord) -> tuple[Support, list[float]]:
    """What every sentence may state (the alert's name, labels and start, the window), and the
    counters about the run, which only sentences about the run may use. Annotations are text
    the alert's sender wrote: like telemetry text, they support nothing."""
    support = Support()
    alert = record.alert
    support.add_text(alert.name)
    for key, value in alert.labels.items():
        support.names.add(key.lower())
        support.names.add(value.lower())
        support.names.update(n.lower() for n in extract(value).names)
        support.entities.add(value.lower())
    for moment in (alert.starts_at, record.window.start, record.window.end):
        support.add_moment(moment)
    support.names.update({"utc", record.id.lower()})
    for cause in record.causes:
        support.names.update({cause.category.lower(), cause.entity.kind.lower()})
    counters = [
        len(record.causes),
        len(record.findings),
        len(record.invocations),
        *record.status_counts().values(),
    ]
    return support, [float(n) for n in counters]


NAME_TOKEN = re.compile(r"[\w][\w.\-/:]*[\w]|[\w]")


def mentions(text: str, names: dict[str, set[str]]) -> list[tuple[str, int]]:
    """(name, position) for each known name written in `text` as a whole token (or, for names
    with spaces, as a phrase)."""
    lower = text.lower()
    found = []
    for match in NAME_TOKEN.finditer(lower):
        token = match.group(0)
        for candidate in {token, token.rstrip(".:"), *token.split("/")}:
            if candidate in names:
                found.append((candidate, match.start()))
    for name in (n for n in names if " " in n):
        where = lower.find(name)
        if where >= 0:
            found.append((name, where))
    return list(dict.fromkeys(found))


def _unit_of(key: str, value: float) -> tuple[str, float]:
    lower = key.lower()
    for pattern, unit, factor in UNIT_OF_KEY:
        if pattern.search(lower):
            return unit, factor
    if MULTIPLIER_KEY.search(lower) and value >= 1:
        return "x", 1.0
    if FRACTION_KEY.search(lower) and 0 <= value <= 1:
        return "%", 1.0
    return "", 1.0


def _fact_changes(facts: dict[str, Any]) -> list[Change]:
    """baseline_x / x, before_x / after_x, baseline_per_min / level_per_min, ... pairs."""
    numeric = {k: float(v) for k, v in facts.items()
               if isinstance(v, int | float) and not isinstance(v, bool)}
    changes = []
    for key, before in numeric.items():
        if not PAIR_PREFIX.match(key):
            continue
        rest = PAIR_PREFIX.sub("", key)
        for other, after in numeric.items():
            if other != key and (other == rest or PAIR_AFTER.sub("", other) == rest):
                changes.append(Change(before, after, frozenset(content_stems(rest.replace("_", " ")))))
    return changes


def _from_to(text: str) -> list[tuple[float, float]]:
    pairs = []
    numbers = extract(text).numbers
    for first, second in zip(numbers, numbers[1:], strict=False):
        between = text[first.end:second.start].lower()
        before = text[: first.start].lower().rstrip()
        if before.endswith("from") and re.fullmatch(r"\s*(?:\S+\s+){0,3}?to\s*", between):
            pairs.append((first.value, second.value))
        elif before.endswith("to") and re.fullmatch(r"\s*(?:\S+\s+){0,3}?from\s*", between):
            pairs.append((second.value, first.value))
    return pairs


def _moment(value: str) -> datetime | None:
    if not re.match(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", value):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
