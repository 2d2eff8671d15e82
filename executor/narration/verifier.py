"""The verifier: every sentence of a narrative must rest on the findings it cites.

A sentence is rejected when it cites an unknown finding, cites none, or states a number, a time,
a date or a name (service, account, host, class, metric: anything that looks like an identifier)
that none of its cited findings contains. What a finding "contains" is what its analyzer wrote
(title, summary, entities, facts, mitigations, evidence notes) plus the structured cells of its
evidence (numbers, single-token names). Free text copied from telemetry (a log message, an event
summary in a row) never supports a claim: it can be written by anyone, so an instruction planted
in a log line cannot smuggle a name or a number into a verified narrative.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from casebook.executor.narration.claims import extract, stem
from casebook.executor.narration.redaction import secrets_in
from casebook.executor.record import FindingRecord, InvestigationRecord, SentenceRecord

KINDS = ("headline", "fact", "hypothesis", "next_step")


@dataclass
class Support:
    """What a set of findings states, in the forms a sentence is compared against."""

    names: set[str] = field(default_factory=set)
    numbers: set[float] = field(default_factory=set)
    exact_numbers: set[float] = field(default_factory=set)
    times: set[str] = field(default_factory=set)
    dates: set[str] = field(default_factory=set)
    words: set[str] = field(default_factory=set)

    def add_text(self, text: str) -> None:
        """Everything `text` states counts as support (text an analyzer wrote)."""
        claims = extract(text)
        self.names.update(n.lower() for n in claims.names)
        for number in claims.numbers:
            self.numbers.add(number.value / 100 if number.percent else number.value)
            if number.percent:
                self.numbers.add(number.value)
        self.times.update(claims.times)
        self.dates.update(claims.dates)
        self.words.update(claims.words)
        for token in text.replace("/", " ").split():
            self.names.add(token.strip(".,;:()'\"").lower())

    def add_moment(self, moment: datetime | None) -> None:
        if moment is not None:
            self.times.add(f"{moment:%H:%M}")
            self.dates.add(f"{moment:%Y-%m-%d}")

    def add_value(self, value: Any, *, trusted: bool) -> None:
        """A fact or an evidence cell: numbers and single-token names, never free text.

        A string with spaces in a fact or a row is usually telemetry text (a log sample) that
        anyone can write, so it supports nothing. Trusted values (facts) support rounded numbers;
        evidence cells only exact ones.
        """
        if isinstance(value, bool) or value is None:
            return
        if isinstance(value, int | float):
            if math.isfinite(value):
                (self.numbers if trusted else self.exact_numbers).add(abs(float(value)))
        elif isinstance(value, str):
            if any(c.isspace() for c in value) or len(value) > 100:
                return
            if trusted:
                self.add_text(value)
            else:
                self.names.add(value.lower())
                self.names.update(n.lower() for n in extract(value).names)
        elif isinstance(value, dict):
            for key, item in value.items():
                self.names.add(str(key).lower())
                self.add_value(item, trusted=trusted)
        elif isinstance(value, list | tuple | set):
            for item in value:
                self.add_value(item, trusted=trusted)

    def merge(self, other: Support) -> Support:
        merged = Support()
        for name in ("names", "numbers", "exact_numbers", "times", "dates", "words"):
            getattr(merged, name).update(getattr(self, name), getattr(other, name))
        return merged


def finding_support(finding: FindingRecord) -> Support:
    """What one finding states: its analyzer's words, its facts and its evidence's structure."""
    support = Support()
    for text in (finding.title, finding.summary, finding.analyzer, finding.category, finding.id):
        support.add_text(text)
    for entity in finding.entities:
        support.add_text(entity.name)
        support.names.add(entity.kind.lower())
    for mitigation in finding.mitigations:
        support.add_text(mitigation.action)
        support.add_text(mitigation.detail)
    support.add_moment(finding.onset)
    for key, value in finding.facts.items():
        support.names.add(key.lower())
        support.add_value(value, trusted=True)
    for evidence in finding.evidence:
        support.add_text(evidence.note)
        for name in [*evidence.columns, *evidence.series]:
            support.add_text(name)
        support.add_value(evidence.params, trusted=False)
        support.add_value(evidence.rows, trusted=False)
    return support


def record_support(record: InvestigationRecord) -> Support:
    """What every sentence may state: the alert, its window and the investigation's counts."""
    support = Support()
    alert = record.alert
    support.add_text(alert.name)
    for key, value in alert.labels.items():
        support.names.add(key.lower())
        support.add_text(value)
    for value in alert.annotations.values():
        support.add_text(value)
    for moment in (alert.starts_at, record.window.start, record.window.end):
        support.add_moment(moment)
    counts = [
        len(record.causes),
        len(record.findings),
        len(record.invocations),
        *record.status_counts().values(),
    ]
    support.numbers.update(float(n) for n in counts)
    support.names.update({"utc", record.id.lower()})
    for cause in record.causes:
        support.names.update({cause.category.lower(), cause.entity.kind.lower()})
    return support


def verify(sentences: Sequence[SentenceRecord], record: InvestigationRecord) -> list[str]:
    """The reasons to reject a narrative; empty when every sentence rests on its findings."""
    reasons: list[str] = []
    if not sentences:
        return ["the narrative has no sentences"]
    headlines = [s for s in sentences if s.kind == "headline"]
    if len(headlines) != 1:
        reasons.append(f"the narrative needs exactly one headline, found {len(headlines)}")
    by_id = {f.id: f for f in record.findings}
    base = record_support(record)
    supports = {fid: finding_support(f) for fid, f in by_id.items()}
    for number, sentence in enumerate(sentences, start=1):
        reasons.extend(_sentence_reasons(number, sentence, by_id, supports, base))
    return reasons


def _sentence_reasons(
    number: int,
    sentence: SentenceRecord,
    by_id: dict[str, FindingRecord],
    supports: dict[str, Support],
    base: Support,
) -> list[str]:
    label = f'sentence {number} ("{_short(sentence.text)}")'
    if sentence.kind not in KINDS:
        return [f"{label} has kind {sentence.kind!r}; expected one of {', '.join(KINDS)}"]
    unknown = [fid for fid in sentence.finding_ids if fid not in by_id]
    if unknown:
        return [
            f"{label} cites {_ids(unknown)}, which {'is' if len(unknown) == 1 else 'are'} "
            f"not a finding of this investigation (the findings are {_ids(by_id)})"
        ]
    if not sentence.finding_ids and by_id:
        return [f"{label} cites no finding; every sentence must cite the findings it rests on"]
    cited = _ids(sentence.finding_ids) if sentence.finding_ids else "the alert"
    support = base
    for fid in sentence.finding_ids:
        support = support.merge(supports[fid])
    reasons = []
    secrets = secrets_in(sentence.text)
    if secrets:
        reasons.append(f"{label} contains what looks like a secret ({', '.join(secrets)})")
    claims = extract(sentence.text)
    anchored = False
    missing: list[str] = []
    for claim in claims.numbers:
        if _number_supported(claim.value, claim.tolerance, claim.percent, support):
            anchored = True
        else:
            missing.append(claim.text)
    for time in claims.times:
        anchored = anchored or time in support.times
        missing.extend([time] if time not in support.times else [])
    for date in claims.dates:
        anchored = anchored or date in support.dates
        missing.extend([date] if date not in support.dates else [])
    for name in claims.names:
        if name in by_id and name not in sentence.finding_ids:
            reasons.append(f"{label} mentions {name} without citing it")
        elif name.lower() in support.names or name in by_id:
            anchored = anchored or name not in by_id
        else:
            missing.append(f'"{name}"')
    if missing:
        missing = list(dict.fromkeys(missing))
        listed = (
            missing[0] if len(missing) == 1 else (", ".join(missing[:-1]) + " and " + missing[-1])
        )
        reasons.append(f"{label} states {listed}, not found in {cited}")
    if not anchored and sentence.finding_ids and not reasons:
        words = {stem(w) for w in claims.words}
        if not words & support.words:
            reasons.append(
                f"{label} shares no name, number or word with {cited}: say what those findings say"
            )
    return reasons


def _number_supported(value: float, tolerance: float, percent: bool, support: Support) -> bool:
    candidates = [(value, tolerance)]
    if percent:
        candidates.append((value / 100, tolerance / 100))
    for candidate, tol in candidates:
        if any(abs(known - candidate) <= tol + 1e-9 for known in support.numbers):
            return True
        if candidate in support.exact_numbers:
            return True
    return False


def _ids(ids: Iterable[str]) -> str:
    return ", ".join(ids)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
