"""Secrets out of evidence before it leaves the process: keys, tokens, passwords, e-mails."""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"

# Order matters: whole-credential shapes first, then the generic key=value form.
PATTERNS: list[tuple[str, re.Pattern[str], str]] = [
    (
        "private key",
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S
        ),
        "[redacted private key]",
    ),
    (
        "password in a URL",
        re.compile(r"(?P<keep>\b[a-z][a-z0-9+.\-]*://[^\s/:@]+:)[^\s/@]+(?=@)", re.I),
        rf"\g<keep>{REDACTED}",
    ),
    (
        "bearer token",
        re.compile(r"(?P<keep>\b(?:bearer|basic)\s+)(?=[\w\-.~+/]*[\d+/=])[\w\-.~+/]{8,}=*", re.I),
        rf"\g<keep>{REDACTED}",
    ),
    ("JSON web token", re.compile(r"\beyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]{5,}"), REDACTED),
    (
        "API key",
        re.compile(
            r"\b(?:sk-ant-[\w-]{8,}|sk-(?:proj-)?[A-Za-z0-9]{16,}|(?:AKIA|ASIA)[A-Z0-9]{16}"
            r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}|xox[abprs]-[\w-]{10,}"
            r"|AIza[\w-]{30,}|glpat-[\w-]{20})"
        ),
        REDACTED,
    ),
    (
        "secret assignment",
        re.compile(
            r"(?P<keep>\b(?:password|passwd|pwd|secret|client_secret|api[_-]?key|access[_-]?key"
            r"|secret[_-]?key|auth[_-]?token|access[_-]?token|refresh[_-]?token|token"
            r"|authorization)"
            r"[\"']?\s*[:=]\s*[\"']?)(?!\[redacted|bearer\b|basic\b)[^\s\"'&,;]+",
            re.I,
        ),
        rf"\g<keep>{REDACTED}",
    ),
    (
        "e-mail address",
        re.compile(r"\b[\w.+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b"),
        "[email]",
    ),
]


def redact(text: str) -> str:
    """`text` with every secret-looking part replaced by a marker."""
    for _, pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def secrets_in(text: str) -> list[str]:
    """The kinds of secret `text` appears to contain (empty when it is clean)."""
    found = []
    for kind, pattern, replacement in PATTERNS:
        redacted = pattern.sub(replacement, text)
        if redacted != text:
            found.append(kind)
            text = redacted
    return found


def redact_value(value: Any) -> Any:
    """A JSON-like value with every string in it redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value
