"""The verifier: every sentence of a narrative must rest on the findings it cites, in meaning.

A sentence is rejected when it cites an unknown finding or none; when it states a number, a time,
a date or a name that none of its cited findings contains; when a number's unit, entity or
direction is not the one the findings give it ("378 seconds" for 378 ms, one service's latency
attached to another, "recovered" for a fall); when a multiplier, an approximation or a relative
time does not follow from the cited values ("tenfold" for 19.5x, "nearly all" for 29%,
"8 minutes before" for 6); when it states cause and effect against the ranking and the
`explains` graph; when it proposes a command or a next step that no cited mitigation contains.
What counts as a finding's support is in casebook.executor.narration.support: text a finding
copied from telemetry supports nothing. docs/narration.md lists the checks with examples.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from casebook.executor.narration.claims import QUOTED, NumberClaim, content_stems, extract, stem
from casebook.executor.narration.meaning import (
    Sentence,
    action_reasons,
    approximation_reasons,
    causal_reasons,
    direction_reasons,
    order_reasons,
)
from casebook.executor.narration.support import (
    Support,
    finding_support,
    mentions,
    normal,
    record_support,
)
from casebook.executor.record import FindingRecord, InvestigationRecord, SentenceRecord
from casebook.executor.redaction import secrets_in

KINDS = ("headline", "fact", "hypothesis", "next_step")
# Causes scoring at least this share of the top cause stand together with it.
CONTRIBUTING_SHARE = 0.6
RUN_WORDS = re.compile(
    r"\b(?:invocations?|analy[sz]ers?|ran|runs?|skipped|timed out|time-?outs?|errored|crashed|"
    r"checks?|checked|findings?|causes|did not finish|finished)\b", re.I)
ALERT_WORDS = re.compile(r"\b(?:alert|alerts|fired|firing|paged|page)\b", re.I)
ENTITY_COLUMN = re.compile(
    r"^(?:service|service_name|host|hostname|pod|node|instance|account|account_id|cache|queue|"
    r"database|db|peer|caller|callee|upstream|downstream)$", re.I)
BY = re.compile(r"\bby\s*$", re.I)
STRAIGHT_QUOTE = re.compile(r'"([^"]{3,})"')


class Supports(dict):
    """Each finding's support, worked out the first time a sentence cites it."""

    def __init__(self, by_id: dict[str, FindingRecord]):
        super().__init__()
        self.by_id = by_id

    def __missing__(self, fid: str) -> Support:
        self[fid] = support = finding_support(self.by_id[fid])
        return support


class Context:
    """What every sentence of one narrative is checked against, computed once."""

    def __init__(self, record: InvestigationRecord):
        self.record = record
        self.by_id = {f.id: f for f in record.findings}
        self.supports = Supports(self.by_id)
        self.base, self.counters = record_support(record)
        causes = [c for c in record.causes if c.finding_ids]
        top = causes[0].score if causes else 0.0
        lead = [c for c in causes if c.score >= top * CONTRIBUTING_SHARE] or causes[:1]
        self.leading = {fid for c in lead for fid in c.finding_ids}
        self.ranked = {fid for c in causes for fid in c.finding_ids}
        self.entities: dict[str, set[str]] = {}
        for finding in record.findings:
            for entity in finding.entities:
                self.entities.setdefault(entity.name.lower(), set()).add(finding.id)
        for cause in record.causes:
            self.entities.setdefault(cause.entity.name.lower(), set()).update(cause.finding_ids)
        # Every name a sentence must cite the owner of: the findings' entities and those of the
        # telemetry (services, hosts, pods, accounts in their evidence). Numbers bind only to the
        # findings' own entities.
        self.named = {name: set(owners) for name, owners in self.entities.items()}
        for finding in record.findings:
            for evidence in finding.evidence:
                keep = [i for i, c in enumerate(evidence.columns) if ENTITY_COLUMN.search(c)]
                for row in evidence.rows:
                    for i in keep:
                        cell = row[i] if i < len(row) else None
                        if isinstance(cell, str) and cell and not any(c.isspace() for c in cell):
                            self.named.setdefault(cell.lower(), set()).add(finding.id)


def verify(sentences: Sequence[SentenceRecord], record: InvestigationRecord) -> list[str]:
    """The reasons to reject a narrative; empty when every sentence rests on its findings."""
    if not sentences:
        return ["the narrative has no sentences"]
    reasons: list[str] = []
    headlines = [s for s in sentences if s.kind == "headline"]
    if len(headlines) != 1:
        reasons.append(f"the narrative needs exactly one headline, found {len(headlines)}")
    context = Context(record)
    for number, sentence in enumerate(sentences, start=1):
        reasons.extend(_sentence_reasons(number, sentence, context))
    return reasons


def _sentence_reasons(number: int, sentence: SentenceRecord, context: Context) -> list[str]:
    label = f'sentence {number} ("{_short(sentence.text)}")'
    by_id = context.by_id
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
    supports = [context.supports[fid] for fid in sentence.finding_ids]
    support = _merged([context.base, *supports])
    reasons = []
    secrets = secrets_in(sentence.text)
    if secrets:
        reasons.append(f"{label} contains what looks like a secret ({', '.join(secrets)})")
    text, bad_quote = _unquoted(sentence.text, support)
    if bad_quote:
        reasons.append(f"{label} quotes {bad_quote!r}, which no cited finding's evidence contains")
    claims = extract(text)
    about_run = bool(RUN_WORDS.search(text))
    anchored = False
    missing: list[str] = []
    for claim in claims.numbers:
        owner = _owner(text, claim, context, sentence.finding_ids)
        scope = [context.supports[fid] for fid in owner] if owner else supports
        if _number_supported(claim, [context.base, *scope], context, about_run, text, supports):
            anchored = True
        elif owner and _number_supported(
            claim, [context.base, *supports], context, about_run, text, supports
        ):
            entity = _entity_before(text, claim.start, context) or ""
            missing.append(f"{claim.text} for {entity}")
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
    for entity in dict.fromkeys(name for name, _ in mentions(text, context.named)):
        owners = context.named[entity]
        if entity not in support.names and entity not in support.entities:
            reasons.append(
                f"{label} names {entity}, an entity of {_ids(sorted(owners))}, which it does "
                "not cite"
            )
    meant = Sentence(text, sentence.kind, list(sentence.finding_ids), content_stems(text))
    cited_findings = [by_id[fid] for fid in sentence.finding_ids]
    for problem in (
        *approximation_reasons(meant, supports),
        *direction_reasons(meant, supports),
        *order_reasons(meant, context.record),
        *causal_reasons(meant, context.record, context.leading, context.ranked),
        *action_reasons(meant, cited_findings),
    ):
        reasons.append(f"{label} {problem}")
    if not anchored and sentence.finding_ids and not reasons:
        words = {stem(w) for w in claims.words}
        if not words & support.words:
            reasons.append(
                f"{label} shares no name, number or word with {cited}: say what those findings say"
            )
    return reasons


def _number_supported(
    claim: NumberClaim,
    supports: list[Support],
    context: Context,
    about_run: bool,
    about: str,
    cited: list[Support],
) -> bool:
    """Whether the supports state the claim, in its unit. Durations may also be the time
    between two moments the cited findings state (whoever they are about); a number written
    after "by" may be the difference of two values one finding states ("rose by 258 ms")."""
    value, tolerance = claim.value, claim.tolerance + 1e-9
    quantities = [q for s in supports for q in s.quantities]

    def near(known: float, exact: bool) -> bool:
        return known == value if exact and not claim.word else abs(known - value) <= tolerance

    if claim.unit == "x":
        if any(q.unit == "x" and near(q.value, False) for q in quantities):
            return True
        return any(_ratio_near(s, value, tolerance) for s in supports)
    if BY.search(about[: claim.start]) and any(_difference_near(s, claim, near) for s in supports):
        return True
    if claim.unit == "s":
        if any(q.unit == "s" and near(q.value, q.exact) for q in quantities):
            return True
        moments = [m for s in cited for m in s.moments]
        if ALERT_WORDS.search(about) or context.record.alert.name.lower() in about.lower():
            moments.append(context.record.alert.starts_at)
        gaps = {abs((a - b).total_seconds()) for a in moments for b in moments}
        # Times of day an analyzer wrote ("between 11:30 and 11:40") bound durations too.
        clock = [int(t[:2]) * 60 + int(t[3:]) for s in cited for t in s.times]
        gaps |= {abs(a - b) * 60.0 for a in clock for b in clock}
        return any(abs(gap - value) <= max(tolerance, 30.0) for gap in gaps if gap)
    if claim.unit == "%":
        if any(q.unit == "%" and near(q.value, q.exact) for q in quantities):
            return True
        return any(q.unit == "" and q.value == claim.raw for q in quantities)
    if any(q.unit in ("", "%", claim.unit) and near(q.value, q.exact) for q in quantities):
        return True
    if any(q.unit in ("s", "x") and near(q.value, q.exact) for q in quantities):
        return True
    return about_run and any(abs(n - value) <= tolerance for n in context.counters)


def _difference_near(support: Support, claim: NumberClaim, near) -> bool:
    values = [q for q in support.quantities if not q.exact and q.unit == claim.unit]
    return any(a is not b and near(abs(a.value - b.value), False) for a in values for b in values)


def _ratio_near(support: Support, value: float, tolerance: float) -> bool:
    """Whether two values one finding states, of one unit, stand in the ratio `value`."""
    values = [q for q in support.quantities if q.value > 0 and q.unit not in ("x",)]
    for a in values:
        for b in values:
            if a is not b and a.unit == b.unit and abs(b.value / a.value - value) <= tolerance:
                return True
    return False


def _owner(text: str, claim: NumberClaim, context: Context, cited: list[str]) -> list[str]:
    """The cited findings about the entity a number is written after, if the sentence names one."""
    entity = _entity_before(text, claim.start, context)
    if entity is None:
        return []
    return [fid for fid in cited if fid in context.entities.get(entity, set())]


CLAUSE_BREAK = re.compile(r"[;,(→]|\bwhile\b|\bwhereas\b|\bbut\b|\band\b|\bthen\b")


def _entity_before(text: str, position: int, context: Context) -> str | None:
    """The entity a number is about: the nearest named before it in its clause, else after it."""
    head = CLAUSE_BREAK.split(text[:position])[-1]
    head = " ".join(head.split()[-8:])
    tail = CLAUSE_BREAK.split(text[position:])[0]
    before = mentions(head, context.entities)
    if before:
        return max(before, key=lambda m: m[1])[0]
    after = mentions(tail, context.entities)
    return min(after, key=lambda m: m[1])[0] if after else None


def _unquoted(text: str, support: Support) -> tuple[str, str | None]:
    """The sentence without its verbatim quotes of copied text, and a quote that is not one."""
    bad = None

    def drop(match: re.Match[str]) -> str:
        nonlocal bad
        quote = normal(match.group(0).strip("“”\""))
        if any(quote and (quote == known or quote in known) for known in support.quotes):
            return " "
        if match.group(0).startswith("“"):
            bad = match.group(0).strip("“”")
        return match.group(0)

    text = QUOTED.sub(drop, text)
    text = STRAIGHT_QUOTE.sub(drop, text)
    return text, bad


def _merged(supports: Iterable[Support]) -> Support:
    merged = Support()
    for support in supports:
        merged.quantities.extend(support.quantities)
        merged.changes.extend(support.changes)
        merged.moments.extend(support.moments)
        for name in ("names", "times", "dates", "words", "topic", "quotes", "entities"):
            getattr(merged, name).update(getattr(support, name))
    return merged


def _ids(ids: Iterable[str]) -> str:
    return ", ".join(ids)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


__all__ = ["FindingRecord", "verify"]
