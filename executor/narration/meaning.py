"""Checks on what a sentence means, beyond the tokens it uses.

Each check returns the reasons a sentence is wrong (empty when it holds):

- `approximation_reasons`: "nearly all", "most", "a few" ... mapped to ranges and compared with
  the shares the cited findings state about the same thing;
- `direction_reasons`: rose / fell / recovered, and "from A to B", against the changes the cited
  findings state (a baseline and a level, "from 0.86 to 0.04");
- `order_reasons`: what came before what, against the findings' onsets;
- `causal_reasons`: who caused what, against the ranking and the `explains` graph;
- `action_reasons`: commands and next steps, which only a cited finding's mitigations supply.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from casebook.executor.narration.claims import content_stems, extract
from casebook.executor.narration.support import NAME_TOKEN, Change, Support, normal
from casebook.executor.record import FindingRecord, InvestigationRecord

# (pattern, low, high): the share of a whole that the words may stand for.
APPROXIMATIONS: list[tuple[re.Pattern[str], float, float]] = [
    (re.compile(p, re.I), low, high)
    for p, low, high in [
        (r"\b(?:nearly|almost|virtually|practically|essentially) (?:all|every|everything)\b", 0.85, 1.0),
        (r"(?<!nearly )(?<!almost )(?<!virtually )(?<!practically )(?<!essentially )"
         r"\b(?:all|every one) of (?:the|its|their)\b", 0.98, 1.0),
        (r"\b(?:hardly any|almost no|nearly no|almost none|virtually no|very few)\b", 0.0, 0.05),
        (r"(?<!the )(?<!\bat )\bmost\b(?! likely| probable| probably| recent| recently| important"
         r"| notabl| severe| affected| common| visible| significant| of all)", 0.5, 1.0),
        (r"\b(?:the|a) (?:large |vast )?majority\b", 0.5, 1.0),
        (r"\b(?:about|roughly|around|nearly|almost)? ?half\b", 0.4, 0.6),
        (r"\b(?:about|roughly|around|under|nearly|almost)? ?a third\b", 0.25, 0.36),
        (r"\b(?:about|roughly|around)? ?a quarter\b", 0.2, 0.3),
        (r"\ba minority\b", 0.0, 0.5),
        (r"\b(?:a few|a handful|a small (?:share|fraction|number)|few)\b", 0.0, 0.2),
    ]
]
FEW = re.compile(r"\b(?:a few|a handful|few)\b", re.I)
UP = {"rose", "risen", "rising", "rises", "increased", "increasing", "increase", "grew", "grown",
      "climbed", "jumped", "spiked", "surged", "soared", "recovered", "rebounded", "doubled",
      "tripled", "quadrupled", "higher", "up", "improved", "restored", "normalized",
      "normalised", "returned"}
DOWN = {"fell", "fallen", "falling", "falls", "dropped", "drop", "declined", "decreased",
        "decreasing", "collapsed", "sank", "plunged", "halved", "shrank", "dipped", "lower", "down"}
CLAUSE = re.compile(r";|,\s*(?:while|but|and|as|whereas)\b|\bwhile\b|\bwhereas\b|\bbut\b|\bas\b")
FORWARD = re.compile(
    r"\b(?:caused|causes|causing|led to|leads to|leading to|triggered|triggers|drove|drives|"
    r"pushed|emptied|overloaded|exhausted|saturated|broke|resulted in|results in|produced|"
    r"brought down|took down|knocked out|explains|explained why|set off|made)\b", re.I)
BACKWARD = re.compile(
    r"\b(?:was caused by|were caused by|is caused by|caused by|because of|due to|driven by|"
    r"triggered by|explained by|the result of|a result of|resulted from|results from|"
    r"stems from|came from|followed from)\b", re.I)
LEADING = re.compile(r"^\s*(?:because|since|as a result of|due to|after)\b([^,;]+)[,;](.+)$", re.I)
NAMED_CAUSE = re.compile(
    r"\b(?:the )?(?:root cause|underlying cause|real cause|actual cause|main cause|cause)"
    r"(?: of [^,;]*?)? (?:is|was|lies in|lay in)\b|"
    r"\b(?:is|was) (?:the )?(?:most likely |probable |likely |root |real |actual |main )?cause\b|"
    r"\bto blame\b", re.I)
BEFORE_WORDS = {"preceded", "before", "ahead of", "earlier than"}
ORDER = re.compile(r"\b(?:preceded|before|ahead of|earlier than|followed|after|later than)\b",
                   re.I)
NOT = re.compile(r",?\s*(?:and )?(?:not|rather than|instead of)\s+", re.I)
COMMAND = re.compile(
    r"`[^`]+`|\b(?:kubectl|helm|terraform|psql|mysql|redis-cli|aws|gcloud|az|systemctl|docker|"
    r"ssh|curl)\s+\w|\b(?:drop|truncate)\s+(?:table|database|schema)\b|\bdelete\s+from\b|"
    r"\brm\s+-\w*[rf]|\b(?:call|use|invoke) the \w+ tool\b|\bdelete (?:the )?(?:namespace|ns|"
    r"pods?|deployments?|cluster|database|table|volume|bucket)s?\b", re.I)


@dataclass
class Sentence:
    """A sentence being checked: its text (quotes of copied text removed), kind and citations."""

    text: str
    kind: str
    cited: list[str]
    stems: set[str]


def approximation_reasons(sentence: Sentence, supports: Sequence[Support]) -> list[str]:
    reasons = []
    for pattern, low, high in APPROXIMATIONS:
        for match in pattern.finditer(sentence.text):
            phrase = match.group(0).strip()
            shares = _bound([q for s in supports for q in s.quantities
                             if q.unit == "%" and not q.exact], sentence.stems)
            if any(low - 1e-9 <= q.value <= high + 1e-9 for q in shares):
                continue
            if FEW.fullmatch(phrase) and any(
                2 <= q.value <= 9 and q.unit == "" for s in supports for q in s.quantities
            ):
                continue
            stated = ", ".join(sorted({f"{q.value:.0%}" for q in shares})) or "no share"
            reasons.append(
                f'says "{phrase}" ({low:.0%}–{high:.0%}), but the cited findings give {stated}'
            )
    return reasons


def direction_reasons(sentence: Sentence, supports: Sequence[Support]) -> list[str]:
    reasons = []
    changes = [c for s in supports for c in s.changes]
    for clause in CLAUSE.split(sentence.text):
        said = _directions(clause)
        if not said or not changes:
            continue
        word, way, subject = said[0]
        numbers = extract(clause).numbers
        pair = _sentence_change(clause, numbers)
        if pair is not None:
            before, after = pair
            if (after > before) - (after < before) not in (way, 0):
                reasons.append(f'says "{word}" but its own numbers go from {_n(before)} to {_n(after)}')
                continue
            if _matches(changes, after, before) and not _matches(changes, before, after):
                reasons.append(
                    f"says it went from {_n(before)} to {_n(after)}; the cited findings say it "
                    f"went from {_n(after)} to {_n(before)}"
                )
            continue
        target = _to_value(clause, numbers)
        if target is not None:
            near = _bound(changes, content_stems(clause), strict=True) or changes
            if any(_close(target, c.before) for c in near) and not any(
                _close(target, c.after) for c in near
            ):
                start = next(c.before for c in near if _close(target, c.before))
                end = next(c.after for c in near if _close(target, c.before))
                reasons.append(
                    f"says it went to {_n(target)}; the cited findings say it went from "
                    f"{_n(start)} to {_n(end)}"
                )
                continue
        for word, way, subject in said:
            bound = _bound(changes, content_stems(subject) or content_stems(clause), strict=True)
            if bound and all(c.direction not in (way, 0) for c in bound):
                went = ", ".join(f"{_n(c.before)} to {_n(c.after)}" for c in bound[:2])
                reasons.append(f'says "{word}" but the cited findings say it went from {went}')
                break
    return reasons


def _directions(clause: str) -> list[tuple[str, int, str]]:
    """(word, +1 or -1, the words before it: its subject) for each direction word in a clause."""
    found = []
    previous = 0
    for match in re.finditer(r"[A-Za-z]+", clause):
        word = match.group(0).lower()
        if word in ("up", "down"):
            before = clause[: match.start()].lower().rstrip()
            after = clause[match.end():].lstrip()
            if not (re.search(r"\b(?:went|go|goes|gone|is|was|are|were|moved|trending)$", before)
                    or re.match(r"\d", after)):
                continue
        if word in UP or word in DOWN:
            found.append((word, 1 if word in UP else -1, clause[previous: match.start()]))
            previous = match.end()
    return found


def order_reasons(sentence: Sentence, record: InvestigationRecord) -> list[str]:
    """"X preceded Y", "X came 6 minutes before Y", "X followed Y": against their onsets."""
    by_id = {f.id: f for f in record.findings}
    for clause in re.split(r";", sentence.text):
        match = ORDER.search(clause)
        if not match:
            continue
        first_text, second_text = clause[: match.start()], clause[match.end():]
        first = _finding_in(CLAUSE.split(first_text)[-1], record, sentence.cited)
        second = _finding_in(CLAUSE.split(second_text)[0], record, sentence.cited)
        if not first or not second or first == second:
            continue
        a, b = by_id[first].onset, by_id[second].onset
        if a is None or b is None or a == b:
            continue
        earlier = match.group(0).lower() in BEFORE_WORDS
        if (a < b) != earlier:
            said = "before" if earlier else "after"
            return [
                f"puts {by_id[first].title} ({first}, {a:%H:%M} UTC) {said} "
                f"{by_id[second].title} ({second}, {b:%H:%M} UTC)"
            ]
    return []


def causal_reasons(
    sentence: Sentence, record: InvestigationRecord, leading: set[str], ranked: set[str]
) -> list[str]:
    """Cause and effect as the ranking and the explains graph have them."""
    text = sentence.text
    by_id = {f.id: f for f in record.findings}
    explains = {f.id: set(f.explains) for f in record.findings}
    reasons: list[str] = []
    allowed = ranked if sentence.kind == "hypothesis" else leading

    def top() -> str:
        lead = next(iter(sorted(leading)), "")
        return f"{by_id[lead].title} ({lead})" if lead in by_id else "none"

    for part in _contrast(text):
        asserted, denied = part
        cause = _finding_in(asserted, record, sentence.cited)
        other = _finding_in(denied, record, sentence.cited)
        if cause and other and cause != other and other in leading and cause not in leading:
            reasons.append(
                f"names {by_id[cause].title} ({cause}) as the cause instead of "
                f"{by_id[other].title} ({other}), which the ranking puts first"
            )
            return reasons
    named = NAMED_CAUSE.search(text)
    if named:
        after, before = text[named.end():], text[: named.start()]
        span = after if re.search(r"(?:is|was|lies in|lay in)$", named.group(0)) else before
        span = NOT.split(span)[0]
        cause = _finding_in(span, record, sentence.cited)
        if cause and cause not in allowed:
            reasons.append(
                f"names {by_id[cause].title} ({cause}) as the cause; the ranked cause is {top()}"
            )
    leading_clause = LEADING.match(text)
    for pattern, forward in ((LEADING, True), (BACKWARD, False), (FORWARD, True)):
        match = pattern.search(text) if pattern is not LEADING else leading_clause
        if not match:
            continue
        if pattern is LEADING:
            cause_text, effect_text = match.group(1), match.group(2)
        else:
            left, right = text[: match.start()], text[match.end():]
            left = CLAUSE.split(left)[-1]
            right = CLAUSE.split(right)[0]
            cause_text, effect_text = (left, right) if forward else (right, left)
        cause = _finding_in(cause_text, record, sentence.cited)
        effect = _finding_in(effect_text, record, sentence.cited)
        if not cause or not effect or cause == effect:
            break
        if cause in explains.get(effect, set()):
            reasons.append(
                f"says {by_id[cause].title} ({cause}) caused {by_id[effect].title} ({effect}), "
                f"but {effect} explains {cause}: cause and effect are inverted"
            )
        elif effect not in explains.get(cause, set()) and cause not in allowed:
            reasons.append(
                f"says {by_id[cause].title} ({cause}) caused {by_id[effect].title} ({effect}); "
                f"no finding says so and the ranked cause is {top()}"
            )
        break
    return reasons


def action_reasons(sentence: Sentence, findings: Sequence[FindingRecord]) -> list[str]:
    """Commands only as a cited mitigation words them; next steps only from mitigations."""
    texts = [t for f in findings for m in f.mitigations for t in (m.action, m.detail) if t]
    # "Roll back the deploy: kubectl rollout undo ..." may be quoted up to its colon.
    parts = [p for t in texts for p in re.split(r":\s+|;\s+|\.\s+", t) if len(p) > 3]
    mitigations = list(dict.fromkeys(normal(t) for t in [*texts, *parts]))
    said = normal(sentence.text)
    commands = [_command(sentence.text, m) for m in COMMAND.finditer(sentence.text)]
    quoted = any(said in m or (m and m in said) for m in mitigations)
    if commands and not any(normal(c) in m for c in commands for m in mitigations):
        return [
            f"proposes {commands[0]!r}, which no cited finding's mitigations contain; next "
            "steps are quoted from mitigations, never written as new commands"
        ]
    if sentence.kind != "next_step" or quoted:
        return []
    for mitigation in mitigations:
        wanted = content_stems(mitigation)
        if wanted and len(wanted & sentence.stems) >= 0.75 * len(wanted) and not (
            sentence.stems - wanted - content_stems("the a then first now next and to")
        ) - _soft_words():
            return []
    return ["is a next step that no cited finding's mitigations suggest"]


def _command(text: str, match: re.Match[str]) -> str:
    """The whole command a match starts: up to the end of its clause or its backticks."""
    if match.group(0).startswith("`"):
        return match.group(0).strip("`")
    return re.split(r"[;,]|\.(?:\s|$)| to | and ", text[match.start():])[0].strip()


def _soft_words() -> set[str]:
    return content_stems("please should could consider then before after first immediately now")


def _bound(items: list, stems: set[str], strict: bool = False) -> list:
    """The items whose context shares the most words with the sentence (when none do: all of
    them, or none when `strict`)."""
    scored = [(len(item.context & stems), item) for item in items]
    best = max((score for score, _ in scored), default=0)
    if best == 0:
        return [] if strict else items
    return [item for score, item in scored if score == best]


def _sentence_change(clause: str, numbers: list) -> tuple[float, float] | None:
    for first, second in zip(numbers, numbers[1:], strict=False):
        before = clause[: first.start].lower().rstrip()
        between = clause[first.end:second.start].lower()
        if before.endswith("from") and re.fullmatch(r"\s*(?:\S+\s+){0,3}?to\s*", between):
            return first.value, second.value
        if before.endswith("to") and re.fullmatch(r"\s*(?:\S+\s+){0,3}?from\s*", between):
            return second.value, first.value
    return None


def _to_value(clause: str, numbers: list) -> float | None:
    """The value a clause says something went to ("rose to 0.86")."""
    for number in numbers:
        if re.search(r"\bto\s*$", clause[: number.start].lower()):
            return number.value
    return None


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= max(0.006, abs(b) * 0.02)


def _matches(changes: list[Change], before: float, after: float) -> bool:
    def near(a: float, b: float) -> bool:
        return abs(a - b) <= max(0.006, abs(b) * 0.02)

    return any(near(before, c.before) and near(after, c.after) for c in changes)


def _n(value: float) -> str:
    return f"{value:g}"


def _contrast(text: str) -> list[tuple[str, str]]:
    """("X", "Y") for "X, not Y" and "X rather than Y" in a sentence about a cause."""
    if not (NAMED_CAUSE.search(text) or FORWARD.search(text) or BACKWARD.search(text)):
        return []
    match = NOT.search(text)
    if not match:
        return []
    left, right = text[: match.start()], text[match.end():]
    right = re.split(r",|\b(?:caused|is|was|led|triggered|drove|emptied)\b", right)[0]
    left = re.split(r"\b(?:cause is|cause was|by|of)\b(?!.*\b(?:by|of)\b)", left)[-1] or left
    return [(left, right)]


def _finding_in(span: str, record: InvestigationRecord, cited: list[str]) -> str | None:
    """The finding a stretch of text is about: by entity names, then by topic words."""
    lower = span.lower()
    stems = content_stems(span) - content_stems("the a an of on in at to deploy change")
    scores: dict[str, float] = {}
    tokens = {token for match in NAME_TOKEN.finditer(lower)
              for token in (match.group(0), match.group(0).rstrip(".:"))}
    for finding in record.findings:
        score = 0.0
        for entity in finding.entities:
            name = entity.name.lower()
            if name in tokens or (" " in name and name in lower):
                score += 3
        topic = content_stems(" ".join([finding.title, finding.analyzer.replace("_", " "),
                                        finding.category]))
        score += len(stems & topic)
        if finding.category and re.search(rf"\b{finding.category[:5]}", lower):
            score += 1
        if finding.id in cited:
            score += 0.5
        if score >= 1.5:
            scores[finding.id] = score
    if not scores:
        return None
    best = max(scores.values())
    winners = [fid for fid, score in scores.items() if score == best]
    return winners[0] if len(winners) == 1 else None
