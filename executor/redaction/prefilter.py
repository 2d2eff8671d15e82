"""What a text must contain for a detector to match it: the redaction step's fast path.

Most texts that pass the redaction step (invocation keys, finding titles, entity names) hold no
secret, and running ~70 regular expressions over each one cost ~100 µs a text, most of a large
investigation's driver time. Each detector's pattern is read once (Python's own regex parser)
for strings that every match must contain: a run of literal characters, one of a branch's
alternatives, one of a small set of characters. A text that holds none of one requirement's
strings cannot match, so the detector is skipped without changing the result: the requirement is
a necessary condition, never a guess. Patterns that yield no requirement always run.

Requirements are checked only on ASCII texts, where Python's case folding and `\\d` agree with
plain lowercase and `0-9`; any other text runs every detector.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

try:  # the parser behind `re.compile`; a Python without it simply runs every detector
    from re import _constants as _c
    from re import _parser
except ImportError:  # pragma: no cover
    _parser = None  # type: ignore[assignment]

MAX_SET = 12  # a character set larger than this says too little to be worth checking
_DIGITS = tuple("0123456789")


@dataclass(frozen=True)
class Requirement:
    """Every match holds at least one of `strings` (lowercase when `folded`)."""

    strings: tuple[str, ...]
    folded: bool  # checked against the lowercased text

    def met(self, text: str, lowered: str) -> bool:
        haystack = lowered if self.folded else text
        return any(s in haystack for s in self.strings)


def requirements(pattern: re.Pattern[str]) -> tuple[Requirement, ...]:
    """The requirements every match of `pattern` meets (empty: nothing is known)."""
    if _parser is None:
        return ()
    try:
        parsed = _parser.parse(pattern.pattern, pattern.flags)
    except Exception:  # a pattern the parser of this Python reads differently: always run it
        return ()
    folded = bool(pattern.flags & re.IGNORECASE)
    found = [_requirement(options, folded) for options in _sequence(list(parsed))]
    kept = [r for r in found if r is not None]
    # The most selective first: their shortest string is the longest.
    kept.sort(key=lambda r: -min(len(s) for s in r.strings))
    return tuple(kept[:3])


def _requirement(options: set[str] | None, folded: bool) -> Requirement | None:
    if not options or any(not s for s in options):
        return None
    if folded:
        if not all(s.isascii() for s in options):
            return None
        options = {s.lower() for s in options}
    return Requirement(tuple(sorted(options)), folded)


def _sequence(items: list[tuple[object, object]]) -> list[set[str]]:
    """Sets of strings, each of which a match of this sequence holds one of."""
    needs: list[set[str]] = []
    run: list[str] = []

    def close() -> None:
        if run:
            needs.append({"".join(run)})
            run.clear()

    for op, av in items:
        if op is _c.LITERAL:
            run.append(chr(av))  # type: ignore[arg-type]
            continue
        close()
        needs.extend(_element(op, av))
    close()
    return needs


def _element(op: object, av: object) -> list[set[str]]:
    """What one parsed element requires of every match (an empty list: nothing)."""
    if op is _c.SUBPATTERN:
        _, add_flags, del_flags, sub = av  # type: ignore[misc]
        # Flags scoped to the group change how its letters match: nothing is claimed there.
        return [] if add_flags or del_flags else _sequence(list(sub))
    if op is _c.ATOMIC_GROUP:
        return _sequence(list(av))  # type: ignore[call-overload]
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)):
        low, _, sub = av  # type: ignore[misc]
        return _sequence(list(sub)) if low >= 1 else []
    if op is _c.BRANCH:
        _, alternatives = av  # type: ignore[misc]
        union: set[str] = set()
        for alternative in alternatives:
            needs = _sequence(list(alternative))
            if not needs:
                return []  # one alternative needs nothing, so the branch needs nothing
            union |= min(needs, key=lambda n: (-min(len(s) for s in n), len(n)))
        return [union] if len(union) <= 4 * MAX_SET else []
    if op is _c.IN:
        chars = _characters(av)  # type: ignore[arg-type]
        return [chars] if chars and len(chars) <= MAX_SET else []
    return []


def _characters(items: list[tuple[object, object]]) -> set[str] | None:
    """The characters a class matches, when it is a short list (or the digits)."""
    chars: set[str] = set()
    for op, av in items:
        if op is _c.LITERAL:
            chars.add(chr(av))  # type: ignore[arg-type]
        elif op is _c.CATEGORY and av in (_c.CATEGORY_DIGIT, _c.CATEGORY_UNI_DIGIT):
            chars.update(_DIGITS)  # all of them in an ASCII text
        elif op is _c.RANGE:
            low, high = av  # type: ignore[misc]
            if high - low > MAX_SET:
                return None
            chars.update(chr(c) for c in range(low, high + 1))
        else:
            return None  # a negated set, a wide category: nearly every text has one
    return chars




class Screen:
    """Which detectors can match a text, from one pass over it (Aho-Corasick, in C).

    Built once per set of detectors. `candidates(text)` gives the indices of the detectors to
    run, in order: those without a requirement, and those whose requirement the text meets. Each
    detector is screened by its most selective requirement; requirements of single letters or
    digits are dropped first (nearly every text holds them), which only makes the screen run
    more detectors, never fewer.
    """

    def __init__(self, patterns: list[re.Pattern[str]]) -> None:
        import ahocorasick

        self.count = len(patterns)
        # The fewest characters a match takes: a shorter text cannot hold one.
        self.widths = [_shortest(p) for p in patterns]
        self.always: list[int] = []
        words: dict[tuple[str, bool], list[int]] = {}
        for i, pattern in enumerate(patterns):
            kept = [r for r in requirements(pattern)
                    if not any(len(s) == 1 and s.isalnum() for s in r.strings)]
            if not kept:
                self.always.append(i)
                continue
            for string in kept[0].strings:
                words.setdefault((string, kept[0].folded), []).append(i)
        self._raw, self._folded = ahocorasick.Automaton(), ahocorasick.Automaton()
        for (string, folded), indices in words.items():
            (self._folded if folded else self._raw).add_word(string, tuple(indices))
        # An automaton without words cannot search: such a side is simply not looked at.
        self._sides = [(a, lower) for a, lower in ((self._raw, False), (self._folded, True))
                       if len(a)]
        for automaton, _ in self._sides:
            automaton.make_automaton()

    def candidates(self, text: str) -> list[int]:
        """Indices of the detectors that may match `text` (all of them if it is not ASCII)."""
        length, widths = len(text), self.widths
        if not text.isascii():
            return [i for i in range(self.count) if widths[i] <= length]
        chosen = [i for i in self.always if widths[i] <= length]
        for automaton, lower in self._sides:
            for _, indices in automaton.iter(text.lower() if lower else text):
                chosen.extend(i for i in indices if widths[i] <= length)
        if len(chosen) > 1:
            chosen = sorted(set(chosen))
        return chosen

def _shortest(pattern: re.Pattern[str]) -> int:
    """The fewest characters any match of `pattern` holds (0 when it cannot be told)."""
    if _parser is None:
        return 0
    try:
        return int(_parser.parse(pattern.pattern, pattern.flags).getwidth()[0])
    except Exception:
        return 0
