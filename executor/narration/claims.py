"""What a sentence claims that can be checked: numbers, times, dates, names and content words."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
TIME = re.compile(r"(?<![\d.])(\d{1,2}):(\d{2})(?::\d{2}(?:\.\d+)?)?(?!\d)")
GROUPED = re.compile(r"(?<![\w.,])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w,])")
QUANTITY = re.compile(r"(?P<int>\d+)(?:\.(?P<frac>\d+))?(?P<unit>[A-Za-z]{1,4}|×)?")
RANGE = re.compile(r"\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)+")
TOKEN = re.compile(r"[A-Za-z0-9_](?:[\w\-.]*[A-Za-z0-9_])?")
NUMBER_WORDS = {
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "hundred": 100,
    "thousand": 1000,
    "million": 1_000_000,
    "billion": 1_000_000_000,
    "twice": 2,
    "double": 2,
    "triple": 3,
    "tripled": 3,
    "doubled": 2,
    "half": 0.5,
}
SCALE = {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9}
UNITS = {
    "%",
    "×",
    "x",
    "k",
    "K",
    "M",
    "B",
    "ms",
    "us",
    "s",
    "sec",
    "secs",
    "m",
    "min",
    "mins",
    "h",
    "hr",
    "hrs",
    "d",
    "GB",
    "MB",
    "KB",
    "TB",
    "Gi",
    "Mi",
    "rps",
    "rpm",
    "qps",
}
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
    """A number as written (`text`), its value and how far rounding may have moved it."""

    text: str
    value: float
    tolerance: float
    percent: bool = False


@dataclass
class Claims:
    numbers: list[NumberClaim] = field(default_factory=list)
    times: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)


def extract(text: str) -> Claims:
    """The checkable claims in `text`, each as written (names keep their spelling)."""
    claims = Claims()
    text = _take(DATE, text, lambda m: claims.dates.append(m.group(0)))
    text = _take(TIME, text, lambda m: claims.times.append(f"{int(m.group(1)):02d}:{m.group(2)}"))
    text = _take(
        GROUPED,
        text,
        lambda m: _quantity(
            m.group(0), m.group(0).replace(",", ""), _percent_follows(text, m.end()), claims
        ),
    )
    for match in TOKEN.finditer(text):
        token = match.group(0)
        lower = token.lower()
        percent = _percent_follows(text, match.end())
        if QUANTITY.fullmatch(token) and (QUANTITY.fullmatch(token).group("unit") or "") in (
            UNITS | {""}
        ):
            _quantity(token, token, percent, claims)
        elif RANGE.fullmatch(token):
            for part in token.split("-"):
                _quantity(part, part, percent, claims)
        elif lower in NUMBER_WORDS:
            claims.numbers.append(NumberClaim(token, float(NUMBER_WORDS[lower]), 0.0))
        elif looks_like_name(token):
            claims.names.append(token)
        elif token.isalpha() and len(token) >= 4 and lower not in STOPWORDS:
            claims.words.append(stem(lower))
    return claims


def looks_like_name(token: str) -> bool:
    """True for identifiers: service, account, host, metric and class names (kv-cache, F3, ...)."""
    if any(c in token for c in "-_.") or any(c.isdigit() for c in token):
        return True
    return re.search(r"[a-z][A-Z]|[A-Z]{2}[a-z]", token) is not None


def stem(word: str) -> str:
    """A crude stem so that 'collapsed' and 'collapse' count as the same word."""
    return word[:6]


def _take(pattern: re.Pattern[str], text: str, keep) -> str:
    def blank(match: re.Match[str]) -> str:
        keep(match)
        return " " * len(match.group(0))

    return pattern.sub(blank, text)


def _percent_follows(text: str, end: int) -> bool:
    return text[end : end + 2].lstrip(" ")[:1] == "%"


def _quantity(written: str, plain: str, percent: bool, claims: Claims) -> None:
    match = QUANTITY.fullmatch(plain)
    assert match is not None
    whole, frac, unit = match.group("int"), match.group("frac") or "", match.group("unit") or ""
    value = float(f"{whole}.{frac}" if frac else whole)
    if frac:
        tolerance = 0.5 * 10 ** -len(frac)
    else:
        zeros = len(whole) - len(whole.rstrip("0")) if whole.strip("0") else 0
        # "13,000" may round 13,201, but "200" does not round 182: keep two significant digits.
        tolerance = 0.5 * 10 ** max(0, min(zeros, len(whole) - 2))
    scale = SCALE.get(unit, 1.0)
    claims.numbers.append(
        NumberClaim(
            written + ("%" if percent else ""), value * scale, tolerance * scale, percent=percent
        )
    )
