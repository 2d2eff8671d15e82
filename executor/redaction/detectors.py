"""Secret detectors: Yelp detect-secrets' regex plugins, plus the shapes they do not cover.

detect-secrets (its plugin classes' `denylist` patterns, used in-process: no baseline, no git
scan) knows the vendor token formats. Its patterns are written to flag a line, not to cut a span,
so the detectors below run first where the whole secret must go: a private key's body, a JWT's
signature, an AWS secret key written without quotes, URL and DSN passwords, Slack app tokens and
webhook URLs, Stripe restricted keys, card numbers (with a Luhn check), e-mail addresses and
`*_SECRET*=` / `*PASSWORD*=` / `*TOKEN*=` assignments.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

MARKER = re.compile(r"\[redacted [a-z0-9-]+\]")


@dataclass(frozen=True)
class Detector:
    """One kind of secret: where it is in a text and which part of the match is the secret."""

    kind: str
    pattern: re.Pattern[str]
    group: int | str = 0  # the part replaced; 0 is the whole match
    accept: Callable[[str], bool] | None = None  # a check on the secret itself (Luhn, entropy)


def luhn(digits: str) -> bool:
    """Whether a card number passes the Luhn check."""
    numbers = [int(c) for c in digits if c.isdigit()]
    if not 13 <= len(numbers) <= 19 or len(set(numbers)) == 1:
        return False
    total = 0
    for i, n in enumerate(reversed(numbers)):
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    if not text:
        return 0.0
    counts = {c: text.count(c) for c in set(text)}
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _secret_value(value: str) -> bool:
    """A value assigned to a token/secret/key name that looks like a credential, not a count."""
    value = value.strip("\"'")
    if MARKER.fullmatch(value) or value.lower() in PLACEHOLDERS:
        return False
    if re.fullmatch(r"[\d.,]+", value):
        return False
    return len(value) >= 8 and entropy(value) >= 2.5


def _token_like(value: str) -> bool:
    """A credential rather than a word: digits or base64 symbols, or long mixed case."""
    if any(c.isdigit() or c in "+/=" for c in value):
        return True
    return len(value) >= 16 and value != value.lower() and value != value.upper()


def _password_value(value: str) -> bool:
    value = value.strip("\"'")
    return bool(value) and not MARKER.fullmatch(value) and value.lower() not in PLACEHOLDERS


PLACEHOLDERS = {"", "null", "none", "true", "false", "***", "****", "redacted", "<redacted>", "-"}

_ASSIGN = r"[\"']?\s*[:=]\s*[\"']?"
_VALUE = r"(?P<secret>[^\s\"'&,;{}<>\[\]]+)"

OWN: list[Detector] = [
    Detector(
        "private-key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?"
            r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|$)",
            re.S,
        ),
    ),
    Detector("jwt", re.compile(r"\beyJ[\w-]{5,}\.eyJ[\w-]{5,}\.[\w-]{5,}")),
    Detector("jwt", re.compile(r"\beyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]{5,}")),
    # AWS secret access keys: in an assignment, or as 40 base64 characters after a key id.
    Detector(
        "aws-secret-key",
        re.compile(
            r"aws[\w.-]{0,20}?(?:secret|key|pwd|pw|password|pass|token)[\w.-]*" + _ASSIGN
            + r"(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
            re.I,
        ),
        "secret",
    ),
    Detector(
        "aws-secret-key",
        re.compile(
            r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}[\s:,;|/\"'=]{1,6}"
            r"(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
        "secret",
    ),
    Detector("aws-access-key-id", re.compile(r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b")),
    Detector(
        "password",
        re.compile(r"\b[a-z][a-z0-9+.\-]*://[^\s/:@]*:(?P<secret>[^\s/@]+)@", re.I),
        "secret",
    ),
    # Go-style MySQL DSN: user:password@tcp(host:3306)/db
    Detector(
        "password",
        re.compile(r"\b[\w.-]+:(?P<secret>[^\s/@:]+)@(?:tcp|unix|udp)\("),
        "secret",
    ),
    Detector(
        "slack-webhook",
        re.compile(r"https?://hooks\.slack\.com/(?:services|workflows|triggers)/[\w/+-]+", re.I),
    ),
    Detector("slack-token", re.compile(r"\bxox[abposre]-[\w-]{8,}")),
    Detector("slack-token", re.compile(r"\bxapp-[\w-]{8,}")),
    Detector("github-token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}")),
    Detector("github-token", re.compile(r"\bgithub_pat_\w{20,}")),
    Detector("stripe-key", re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[0-9a-zA-Z]{10,}")),
    Detector("stripe-key", re.compile(r"\bwhsec_[0-9a-zA-Z]{16,}")),
    Detector("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    Detector("anthropic-key", re.compile(r"\bsk-ant-[\w-]{8,}")),
    Detector("api-key", re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}")),
    Detector("gitlab-token", re.compile(r"\bglpat-[\w-]{20,}")),
    Detector(
        "bearer-token",
        re.compile(r"\bbearer\s+(?P<secret>[A-Za-z0-9\-._~+/]{8,}=*)", re.I),
        "secret",
        lambda s: _token_like(s),
    ),
    Detector(
        "basic-auth",
        re.compile(r"\bbasic\s+(?P<secret>[A-Za-z0-9+/]{8,}={0,2})", re.I),
        "secret",
        lambda s: _token_like(s),
    ),
    Detector(
        "password",
        re.compile(r"(?:\b|_)(?:password|passwd|pwd|passphrase)[\w.-]*" + _ASSIGN + _VALUE, re.I),
        "secret",
        _password_value,
    ),
    Detector(
        "secret",
        re.compile(
            r"\b[\w.-]*(?:secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential"
            r"|authorization|auth)[\w.-]*" + _ASSIGN + _VALUE,
            re.I,
        ),
        "secret",
        _secret_value,
    ),
    Detector("card-number", re.compile(r"(?<![\d.])\d(?:[ -]?\d){12,18}(?![\d.])"), 0, luhn),
    Detector(
        "email", re.compile(r"\b[\w.+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b")
    ),
]

# detect-secrets plugins left out: public IP addresses are telemetry, not secrets; the keyword and
# high-entropy plugins are not regex lists (the assignment detectors above do their job).
SKIPPED_PLUGINS = {"IPPublicDetector"}


@lru_cache(maxsize=1)
def vendor_detectors() -> tuple[Detector, ...]:
    """detect-secrets' regex plugins as detectors, one per pattern of each plugin class."""
    import detect_secrets.plugins as package
    from detect_secrets.plugins.base import RegexBasedDetector

    found: list[Detector] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, RegexBasedDetector)
                and value is not RegexBasedDetector
                and value.__module__ == module.__name__
                and value.__name__ not in SKIPPED_PLUGINS
            ):
                kind = re.sub(r"[^a-z0-9]+", "-", str(value.secret_type).lower()).strip("-")
                found.extend(Detector(kind, pattern, -1) for pattern in value.denylist)
    return tuple(found)
