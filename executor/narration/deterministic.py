"""The deterministic narrator: offline, and every sentence is made of its findings' own words.

The story is told in the order a person woken by the alert wants it: what happened (the symptom
the alert saw), why (each cause once, then the chain it set off, from cause to effect), the
evidence, what else was seen and why it was ruled out (explained by the cause, began after the
onset, or on an unrelated path), and what to do (the findings' mitigations).
"""

from __future__ import annotations

from casebook.executor.record import (
    CauseRecord,
    FindingRecord,
    InvestigationRecord,
    NarrativeRecord,
    SentenceRecord,
)

# Causes scoring at least this share of the top cause are told as standing together with it.
CONTRIBUTING_SHARE = 0.6
MAX_OTHERS = 6
MAX_NEXT_STEPS = 3


def narrate_deterministic(record: InvestigationRecord) -> NarrativeRecord:
    """Tell the findings behind each cause in the order a person would read them."""
    from casebook.executor.narration.narrative import assemble
    from casebook.executor.narration.verifier import verify

    sentences = _story(record) if record.findings else _nothing_found(record)
    return assemble(sentences, narrator="deterministic", verified=not verify(sentences, record))


def _story(record: InvestigationRecord) -> list[SentenceRecord]:
    by_id = {f.id: f for f in record.findings}
    causes = [c for c in record.causes if c.finding_ids and c.finding_ids[0] in by_id]
    top = causes[0].score if causes else 0.0
    contributing = [c for c in causes if c.score >= top * CONTRIBUTING_SHARE] or causes[:1]
    lesser = [c for c in causes if c not in contributing]
    leads = [by_id[c.finding_ids[0]] for c in contributing]

    sentences = [_headline(record, leads)]
    told: set[str] = set()

    def tell(text: str, ids: list[str], kind: str = "fact") -> None:
        told.update(ids[:1])
        sentences.append(SentenceRecord(text=text, finding_ids=ids, kind=kind))

    # What happened: the symptom the alert saw, in the words of the finding that measured it.
    effects = _effects(leads, by_id)
    symptom = _symptom(record, effects) if leads else None
    alert = record.alert
    where = f" on {alert.service}" if alert.service else ""
    if symptom is not None:
        tell(f"{alert.name} fired{where}: {_as_sentence(_lower(symptom.summary))}", [symptom.id])

    # Why: each cause once, then what it set off, written from cause to effect.
    for number, (cause, lead) in enumerate(zip(contributing, leads, strict=True)):
        opening = ("Behind it, " if number == 0 else "Alongside it, ") if symptom else ""
        tell(opening + _as_sentence(_lower(lead.summary) if opening else lead.summary), [lead.id])
        chain = [f for f in _downstream(lead, by_id) if f.id != lead.id]
        if chain:
            tell(_as_sentence(_capital(_led_to(lead, by_id, set()))), [lead.id, *(f.id for f in chain)])
            told.update(f.id for f in chain)
        for fid in cause.finding_ids[1:]:
            if fid in by_id and fid not in told:
                tell("The evidence: " + _as_sentence(by_id[fid].summary), [fid])

    for cause in lesser:
        lead = by_id[cause.finding_ids[0]]
        tell(
            f"{_title(lead)} may also contribute ({cause.category} on {cause.entity.name}).",
            [lead.id],
            "hypothesis",
        )

    # What else was seen, and why it was ruled out.
    ranked = {fid for c in causes for fid in c.finding_ids}
    others = [f for f in record.findings if f.id not in told and f.id not in ranked]
    for finding in others[:MAX_OTHERS]:
        tell(_ruled_out(finding, leads, effects), [finding.id, *_because(finding, leads, effects)])
    if len(others) > MAX_OTHERS:
        rest = others[MAX_OTHERS:]
        tell(
            "Also seen and not ranked: " + "; ".join(_mid(f.title) for f in rest[:MAX_OTHERS]) + ".",
            [f.id for f in rest[:MAX_OTHERS]],
        )

    sentences.extend(_next_steps(record, causes, by_id))
    return sentences


def _effects(leads: list[FindingRecord], by_id: dict[str, FindingRecord]) -> dict[str, str]:
    """Every finding the causes explain, directly or through another: {effect id: lead id}."""
    effects: dict[str, str] = {}
    for lead in leads:
        for finding in _downstream(lead, by_id):
            if finding.id != lead.id:
                effects.setdefault(finding.id, lead.id)
    return effects


def _downstream(lead: FindingRecord, by_id: dict[str, FindingRecord]) -> list[FindingRecord]:
    """The lead and what it explains, breadth first: the chain from cause to effect."""
    ordered, queue, seen = [], [lead.id], {lead.id}
    while queue:
        fid = queue.pop(0)
        ordered.append(by_id[fid])
        for nxt in by_id[fid].explains:
            if nxt in by_id and nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return ordered


def _led_to(finding: FindingRecord, by_id: dict[str, FindingRecord], seen: set[str]) -> str:
    """'A, which led to B and C': each step an `explains` edge, from cause to effect."""
    seen.add(finding.id)
    children = [by_id[e] for e in finding.explains if e in by_id and e not in seen]
    seen.update(c.id for c in children)
    if not children:
        return _mid(finding.title)
    parts = [_led_to(child, by_id, seen) for child in children]
    joined = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{_mid(finding.title)}, which led to {joined}"


def _symptom(record: InvestigationRecord, effects: dict[str, str]) -> FindingRecord | None:
    """The effect on the alerting service, else the last effect: what the alert saw."""
    found = [f for f in record.findings if f.id in effects]
    service = record.alert.service
    on_service = [f for f in found if any(e.name == service for e in f.entities)]
    return (on_service or found[-1:] or [None])[0]


def _ruled_out(
    finding: FindingRecord, leads: list[FindingRecord], effects: dict[str, str]
) -> str:
    lead = leads[0] if leads else None
    title = _title(finding)
    if lead is None:
        return f"{title} was also seen; no cause was ranked."
    if finding.id in effects:
        return f"{title} was also seen and is explained by {_mid(lead.title)}."
    if finding.onset and lead.onset and finding.onset > lead.onset:
        return (
            f"{title} was also seen but began at {finding.onset:%H:%M} UTC, after the onset at "
            f"{lead.onset:%H:%M} UTC, so it followed rather than started the incident."
        )
    return f"{title} was also seen but lies on an unrelated path: no finding links it to the others."


def _because(
    finding: FindingRecord, leads: list[FindingRecord], effects: dict[str, str]
) -> list[str]:
    """The findings a ruled-out sentence also rests on (the cause it is measured against)."""
    if not leads:
        return []
    if finding.id in effects:
        return [effects[finding.id]]
    if finding.onset and leads[0].onset and finding.onset > leads[0].onset:
        return [leads[0].id]
    return []


def _lower(text: str) -> str:
    """A sentence as it reads after a colon: 'Traffic rose' -> 'traffic rose', names kept."""
    first = text.split(" ", 1)[0]
    if first[:1].isupper() and first[1:].islower() and first.isalpha():
        return text[0].lower() + text[1:]
    return text


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:] if text[:1].islower() and not _is_name(text) else text


def _is_name(text: str) -> bool:
    first = text.split(" ", 1)[0]
    return any(c in first for c in "-_.") or any(c.isdigit() for c in first)


def _headline(record: InvestigationRecord, leads: list[FindingRecord]) -> SentenceRecord:
    alert = record.alert
    where = f" on {alert.service}" if alert.service else ""
    if not leads:
        return SentenceRecord(
            text=f"No cause was ranked for {alert.name}{where}; the findings are listed below.",
            finding_ids=[f.id for f in record.findings[:3]],
            kind="headline",
        )
    if len(leads) == 1:
        text = f"{_title(leads[0])} — the most likely cause of {alert.name}{where}."
    else:
        names = [_title(leads[0]), *(_mid(f.title) for f in leads[1:])]
        joined = ", ".join(names[:-1]) + " and " + names[-1]
        text = f"{joined} together are the most likely cause of {alert.name}{where}."
    return SentenceRecord(text=text, finding_ids=[f.id for f in leads], kind="headline")


def _next_steps(
    record: InvestigationRecord, causes: list[CauseRecord], by_id: dict[str, FindingRecord]
) -> list[SentenceRecord]:
    ordered = [by_id[fid] for c in causes for fid in c.finding_ids if fid in by_id]
    # What a cause explains is a symptom: its remedies (scale out the surge) are not next steps.
    explained = {fid for f in record.findings for fid in f.explains}
    steps: list[SentenceRecord] = []
    seen: set[str] = set()
    for finding in _unique([*ordered, *record.findings]):
        if finding.id in explained:
            continue
        for mitigation in finding.mitigations:
            text = _as_sentence(mitigation.action)
            if text.lower() in seen or len(steps) >= MAX_NEXT_STEPS:
                continue
            seen.add(text.lower())
            steps.append(SentenceRecord(text=text, finding_ids=[finding.id], kind="next_step"))
    return steps


def _nothing_found(record: InvestigationRecord) -> list[SentenceRecord]:
    alert = record.alert
    where = f" on {alert.service}" if alert.service else ""
    counts = record.status_counts()
    ran = len(record.invocations)
    headline = (
        f"The investigation of {alert.name}{where} failed: no analyzer that ran could answer, "
        "so it says nothing about the cause."
        if record.status == "failed"
        else f"No analyzer found anything notable for {alert.name}{where}."
    )
    sentences = [SentenceRecord(text=headline, kind="headline")]
    if ran:
        detail = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        plural = "s" if ran != 1 else ""
        sentences.append(SentenceRecord(text=f"{ran} invocation{plural} ran ({detail})."))
    failed = sum(counts.get(s, 0) for s in ("error", "timeout", "crashed", "oom"))
    if failed:
        sentences.append(
            SentenceRecord(
                text=f"{failed} did not finish; the cause may be in what they would have checked.",
                kind="hypothesis",
            )
        )
    if not ran:
        sentences.append(
            SentenceRecord(
                text="No analyzer applies to this alert yet; `casebook new-analyzer` starts one.",
                kind="next_step",
            )
        )
    return sentences


def _chain(finding_id: str, by_id: dict[str, FindingRecord]) -> list[FindingRecord]:
    """The finding and those that led to it, earliest first."""
    ordered: list[FindingRecord] = []
    seen: set[str] = set()

    def walk(fid: str) -> None:
        if fid in seen or fid not in by_id:
            return
        seen.add(fid)
        for parent in by_id[fid].led_from:
            walk(parent)
        ordered.append(by_id[fid])

    walk(finding_id)
    return ordered


def _unique(findings: list[FindingRecord]) -> list[FindingRecord]:
    seen: set[str] = set()
    return [f for f in findings if not (f.id in seen or seen.add(f.id))]


def _as_sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    return text if text[-1] in ".!?" else text + "."


def _title(finding: FindingRecord) -> str:
    return finding.title.rstrip(".")


def _mid(title: str) -> str:
    """A title as it reads inside a sentence: 'Traffic to api' -> 'traffic to api'."""
    title = title.rstrip(".")
    first = title.split(" ", 1)[0]
    rest = first[1:].replace("-", "")
    if first[:1].isupper() and rest.isalpha() and rest.islower():
        return title[0].lower() + title[1:]
    return title
