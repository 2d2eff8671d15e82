"""What a sentence claims that can be checked: quantities with their units, times, dates, names,
content words, and the words that carry meaning (approximations, directions, from-to changes).

Quantities are kept in one unit per dimension so that "378 ms" and "0.378 s" are the same claim
and "378 seconds" is another: durations in seconds, percentages as fractions, multipliers
("19x", "tenfold", "tripled") as factors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
TIME = re.compile(r"(?<![\d.])(\d{1,2}):(\d{2})(?::\d{2}(?:\.\d+)?)?(?!\d)")
GROUPED = re.compile(r"(?<![\w.,])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w,])")
QUANTITY = re.compile(r"(?P<int>\d+)(?:\.(?P<frac>\d+))?(?P<unit>[A-Za-z]{1,4}|×|%)?")
RANGE = re.compile(r"\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)+")
TOKEN = re.compile(r"[A-Za-z0-9_](?:[\w\-.]*[A-Za-z0-9_])?%?")
QUOTED = re.compile(r"“[^”]*”")
ONE_UNIT = re.compile(r"\b(an?|one|half an?)\s+(hour|minute|second|day)\b", re.I)
FOLD = re.compile(r"(\d+(?:\.\d+)?)-?fold")

SMALL = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90,
}
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000}
MULTIPLIER_WORDS = {
    "twice": 2, "double": 2, "doubled": 2, "doubling": 2, "triple": 3, "tripled": 3,
    "tripling": 3, "quadrupled": 4, "quadruple": 4, "halved": 0.5,
}
# Seconds per unit, for durations written with a unit.
DURATION = {
    "ms": 0.001, "msec": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
    "us": 1e-6, "µs": 1e-6, "microsecond": 1e-6, "microseconds": 1e-6,
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
}
SCALE = {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9}
OTHER_UNITS = {"GB", "MB", "KB", "TB", "Gi", "Mi", "rps", "rpm", "qps"}
# "N times" is a multiplier when a comparison follows or a change precedes; else a count.
TIMES_COMPARISON = re.compile(
    r"\s+(?:more|higher|larger|greater|bigger|faster|slower|lower|fewer|as|the|its|their|"
    r"normal|baseline|over|above|below)\b"
)
CHANGE_BEFORE = re.compile(
    r"\b(?:rose|risen|grew|increased|jumped|spiked|surged|climbed|fell|dropped|up|down|by)\s*$"
)

STOPWORDS = set(
    [
        "about",
        "above",
        "after",
        "again",
        "against",
        "also",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "could",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "from",
        "further",
        "have",
        "having",
        "here",
        "into",
        "itself",
        "just",
        "more",
        "most",
        "once",
        "only",
        "other",
        "over",
        "same",
        "should",
        "since",
        "some",
        "such",
        "than",
        "that",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "under",
        "until",
        "very",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "with",
        "would",
        "your",
        "likely",
        "probable",
        "probably",
        "cause",
        "causes",
        "caused",
        "finding",
        "findings",
        "shows",
        "show",
        "shown",
        "alert",
        "investigation",
        "started",
        "began",
        "seen",
        "found",
        "next",
        "step",
        "steps",
        "check",
    ]
)




@dataclass(frozen=True)
class NumberClaim:
    """A number as written (`text`), its value in the canonical unit, and how far rounding may
    have moved it. unit: "" (a count or plain value), "s" (a duration, in seconds), "%" (a
    percentage, as a fraction), "x" (a multiplier), or another written unit ("GB", "rps")."""

    text: str
    value: float
    tolerance: float
    unit: str = ""
    start: int = 0
    end: int = 0
    raw: float = 0.0
    word: bool = False  # written in words ("tenfold", "two hundred")

    @property
    def percent(self) -> bool:
        return self.unit == "%"


@dataclass
class Claims:
    numbers: list[NumberClaim] = field(default_factory=list)
    times: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)


def extract(text: str) -> Claims:
    """The checkable claims in `text`, each as written (names keep their spelling)."""
    # Findings repeat their words from one investigation to the next (the same analyzers,
    # the same incident paging again): each text is read once; callers get their own lists.
    read = _read_claims(text)
    return Claims(list(read.numbers), list(read.times), list(read.dates), list(read.names),
                  list(read.words))


@lru_cache(maxsize=16384)
def _read_claims(text: str) -> Claims:
    claims = Claims()
    text = _take(QUOTED, text, lambda m: None)
    text = _take(DATE, text, lambda m: claims.dates.append(m.group(0)))
    text = _take(TIME, text, lambda m: claims.times.append(f"{int(m.group(1)):02d}:{m.group(2)}"))
    text = _take(
        ONE_UNIT,
        text,
        lambda m: claims.numbers.append(
            _with_unit(m.group(0), 0.5 if m.group(1).lower().startswith("half") else 1.0, 0.0,
                       m.group(2).lower(), m.start(), m.end(), word=True)
        ),
    )
    text = _take(
        GROUPED,
        text,
        lambda m: claims.numbers.append(
            _number(text, m.group(0), m.group(0).replace(",", ""), m.start(), m.end())
        ),
    )
    tokens = list(TOKEN.finditer(text))
    skip = 0
    for index, match in enumerate(tokens):
        if skip:
            skip -= 1
            continue
        token = match.group(0)
        lower = token.lower()
        quantity = QUANTITY.fullmatch(token)
        if quantity and (quantity.group("unit") or "") in _SUFFIXES:
            claims.numbers.append(_number(text, token, token, match.start(), match.end()))
        elif RANGE.fullmatch(token):
            offset = match.start()
            for part in token.split("-"):
                claims.numbers.append(_number(text, part, part, offset, offset + len(part)))
                offset += len(part) + 1
        elif FOLD.fullmatch(lower):
            raw = float(FOLD.fullmatch(lower).group(1))
            frac = lower.split("-")[0].partition(".")[2].rstrip("fold")
            claims.numbers.append(_with_unit(token, raw, _tolerance(lower.split(".")[0], frac),
                                             "x", match.start(), match.end(), word=False))
        elif _word_number(lower) is not None or lower in MULTIPLIER_WORDS:
            claim, used = _words_claim(text, tokens, index)
            if claim is not None:
                claims.numbers.append(claim)
            skip = used - 1
        elif looks_like_name(token):
            claims.names.append(token)
        elif token.isalpha() and len(token) >= 4 and lower not in STOPWORDS:
            claims.words.append(stem(lower))
    for match in re.finditer(r"\bteam[\s:]+([A-Za-z][\w-]*)|\b([A-Za-z][\w-]*)\s+team\b(?!-)", text):
        name = match.group(1) or match.group(2)
        if name.lower() not in STOPWORDS | {"the", "a", "an", "our", "this", "that", "on-call", "by", "of", "to", "for",
                                                 "from", "whose", "which", "each", "every"}:
            claims.names.append(name)
    return claims


def looks_like_name(token: str) -> bool:
    """True for identifiers: service, account, host, metric and class names (kv-cache, F3, ...)."""
    if any(c in token for c in "-_.") or any(c.isdigit() for c in token):
        return True
    return re.search(r"[a-z][A-Z]|[A-Z]{2}[a-z]", token) is not None


def stem(word: str) -> str:
    """A crude stem so that 'collapsed' and 'collapse' count as the same word."""
    return word[:6]


@lru_cache(maxsize=8192)
def content_stems(text: str) -> frozenset[str]:
    """The stems of a text's content words and the lower-cased names in it."""
    out = set()
    for token in TOKEN.findall(text):
        lower = token.lower().rstrip("%")
        if looks_like_name(token):
            out.add(lower)
            out.update(stem(p) for p in re.split(r"[-_.]", lower) if len(p) >= 3)
        elif token.isalpha() and len(token) >= 3 and lower not in STOPWORDS:
            out.add(stem(lower))
    return frozenset(out)


_SUFFIXES = {"", "%", "×", "x", *SCALE, *DURATION, *OTHER_UNITS}


def _take(pattern: re.Pattern[str], text: str, keep) -> str:
    def blank(match: re.Match[str]) -> str:
        keep(match)
        return " " * len(match.group(0))

    return pattern.sub(blank, text)


def _tolerance(whole: str, frac: str) -> float:
    if frac:
        return 0.5 * 10 ** -len(frac)
    zeros = len(whole) - len(whole.rstrip("0")) if whole.strip("0") else 0
    # "13,000" may round 13,201, but "200" does not round 182: keep two significant digits.
    return 0.5 * 10 ** max(0, min(zeros, len(whole) - 2))


def _number(text: str, written: str, plain: str, start: int, end: int) -> NumberClaim:
    match = QUANTITY.fullmatch(plain)
    assert match is not None
    whole, frac, unit = match.group("int"), match.group("frac") or "", match.group("unit") or ""
    raw = float(f"{whole}.{frac}" if frac else whole)
    tolerance = _tolerance(whole, frac)
    if not unit:
        unit, end = _unit_after(text, end, raw)
    return _with_unit(written if end <= start + len(written) else text[start:end].strip(),
                      raw, tolerance, unit, start, end, word=False)


def _unit_after(text: str, end: int, raw: float) -> tuple[str, int]:
    """The unit written as the next word ("378 ms", "29 percent", "3 times more")."""
    follow = re.match(r"\s*(%|×|[A-Za-zµ]+)", text[end:])
    if not follow:
        return "", end
    word = follow.group(1)
    lower = word.lower()
    stop = end + follow.end()
    if word in ("%", "×") or lower == "percent":
        return ("%" if word == "%" or lower == "percent" else "x"), stop
    if lower in ("x", "fold"):
        return "x", stop
    if lower == "times" and (TIMES_COMPARISON.match(text[stop:]) or CHANGE_BEFORE.search(text[:end - len(str(raw))])):
        return "x", stop
    if lower in DURATION and (len(lower) > 1 or lower in ("s", "h", "d")):
        return lower, stop
    if word in OTHER_UNITS:
        return word, stop
    return "", end


def _with_unit(text: str, raw: float, tolerance: float, unit: str, start: int, end: int,
               *, word: bool) -> NumberClaim:
    if unit in SCALE:
        return NumberClaim(text, raw * SCALE[unit], tolerance * SCALE[unit], "", start, end, raw, word)
    if unit == "%":
        return NumberClaim(text, raw / 100, tolerance / 100, "%", start, end, raw, word)
    if unit in ("x", "×"):
        # A multiplier may be rounded to its last digit or by 5% ("19x" for 19.5x), words by 10%.
        spread = max(tolerance, raw * (0.1 if word else 0.05))
        return NumberClaim(text, raw, spread, "x", start, end, raw, word)
    if unit in DURATION:
        factor = DURATION[unit]
        return NumberClaim(text, raw * factor, tolerance * factor, "s", start, end, raw, word)
    return NumberClaim(text, raw, tolerance, unit, start, end, raw, word)


def _word_number(lower: str) -> float | None:
    parts = lower.split("-")
    if all(p in SMALL or p in SCALES for p in parts):
        value = _words_value(parts)
        return value
    if lower.endswith("fold"):
        head = lower[:-4].rstrip("-")
        if head.isdigit():
            return float(head)
        if head and all(p in SMALL or p in SCALES for p in head.split("-")):
            return _words_value(head.split("-"))
    return None


def _words_value(words: list[str]) -> float:
    total, current = 0.0, 0.0
    for word in words:
        if word in SMALL:
            current += SMALL[word]
        elif word == "hundred":
            current = (current or 1) * 100
        else:
            total += (current or 1) * SCALES[word]
            current = 0.0
    return total + current


def _words_claim(text: str, tokens: list[re.Match[str]], index: int) -> tuple[NumberClaim | None, int]:
    """A number written in words starting at tokens[index], and how many tokens it took."""
    first = tokens[index]
    lower = first.group(0).lower()
    if lower in MULTIPLIER_WORDS:
        value = MULTIPLIER_WORDS[lower]
        return _with_unit(first.group(0), value, 0.0, "x", first.start(), first.end(), word=True), 1
    if lower.endswith("fold"):
        value = _word_number(lower)
        assert value is not None
        return _with_unit(first.group(0), value, 0.0, "x", first.start(), first.end(), word=True), 1
    words: list[str] = []
    used = 0
    for match in tokens[index:]:
        part = match.group(0).lower()
        if part == "and" and words and words[-1] in SCALES:
            used += 1
            continue
        pieces = part.split("-")
        if not all(p in SMALL or p in SCALES for p in pieces):
            break
        words.extend(pieces)
        used += 1
    while tokens[index + used - 1].group(0).lower() == "and":
        used -= 1
    value = _words_value(words)
    last = tokens[index + used - 1]
    written = text[first.start():last.end()]
    whole = str(int(value)) if value == int(value) else str(value)
    unit, end = _unit_after(text, last.end(), value)
    return _with_unit(written if end == last.end() else text[first.start():end], value,
                      _tolerance(whole, ""), unit, first.start(), end, word=True), used
