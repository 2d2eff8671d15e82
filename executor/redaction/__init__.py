"""One redaction step for everything that leaves an analyzer: records, reports, model requests.

`redact(text)` replaces each secret with a marker that keeps the shape of the text
(`aws_secret_access_key=[redacted aws-secret-key]`), so a report still reads. The detectors are
detect-secrets' plugins plus casebook's own (casebook.executor.redaction.detectors), and any
patterns an operator adds: `CASEBOOK_REDACT_PATTERNS` (one regular expression per line) or
`configure(patterns=[...])` from a configuration file. A pattern with a group named `secret`
replaces only that group.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from functools import lru_cache, partial
from typing import Any

from pydantic import BaseModel

from casebook.executor.redaction.detectors import MARKER, OWN, Detector, vendor_detectors
from casebook.executor.redaction.prefilter import Screen

__all__ = [
    "MARKER", "PatternError", "configure", "redact", "redact_value", "redactor", "secrets_in",
]

ENV = "CASEBOOK_REDACT_PATTERNS"
_configured: list[str] = []


class PatternError(ValueError):
    """A configured redaction pattern that is not a regular expression."""


def configure(patterns: list[str] | None = None) -> None:
    """Add operator patterns (from a configuration file) to the ones in CASEBOOK_REDACT_PATTERNS."""
    _configured[:] = list(patterns or [])
    _detectors.cache_clear()
    _screened.cache_clear()
    _redact.cache_clear()


def _custom(sources: tuple[str, ...]) -> list[Detector]:
    detectors = []
    for source in sources:
        try:
            pattern = re.compile(source)
        except re.error as exc:
            raise PatternError(
                f"the redaction pattern {source!r} is not a regular expression ({exc}); fix it "
                f"in {ENV} (one pattern per line) or the configuration's redaction patterns"
            ) from None
        group = "secret" if "secret" in pattern.groupindex else 0
        detectors.append(Detector("custom", pattern, group))
    return detectors


@lru_cache(maxsize=4)
def _detectors(env_patterns: str) -> tuple[Detector, ...]:
    custom = [p for p in env_patterns.splitlines() if p.strip()] + _configured
    return (*_custom(tuple(custom)), *OWN, *vendor_detectors())


@lru_cache(maxsize=4)
def _screened(env_patterns: str) -> tuple[tuple[Detector, ...], Screen]:
    """The detectors, and what a text must hold for each to match (prefilter.py)."""
    detectors = _detectors(env_patterns)
    return detectors, Screen([d.pattern for d in detectors])


def _all() -> tuple[Detector, ...]:
    return _detectors(os.environ.get(ENV, ""))


def _replace(detector: Detector, text: str, found: list[str]) -> str:
    def swap(match: re.Match[str]) -> str:
        whole = match.group(0)
        start, end = _span(detector, match)
        secret = match.string[start:end]
        if not secret or MARKER.fullmatch(secret) or "[redacted " in secret:
            return whole
        if detector.accept is not None and not detector.accept(secret):
            return whole
        found.append(detector.kind)
        offset = match.start(0)
        return whole[: start - offset] + f"[redacted {detector.kind}]" + whole[end - offset :]

    return detector.pattern.sub(swap, text)


def _span(detector: Detector, match: re.Match[str]) -> tuple[int, int]:
    if detector.group != -1:
        return match.span(detector.group)
    groups = [i for i in range(1, (match.re.groups or 0) + 1) if match.group(i)]
    if groups:
        return match.span(groups[-1])
    # detect-secrets' patterns may take the delimiter around a token: keep it in the text.
    start, end = match.span(0)
    while start < end and match.string[start] in " \t\n=:\"'":
        start += 1
    while end > start and match.string[end - 1] in " \t\n\"'":
        end -= 1
    return start, end


@lru_cache(maxsize=65536)
def _redact(text: str, env_patterns: str) -> tuple[str, tuple[str, ...]]:
    found: list[str] = []
    detectors, screen = _screened(env_patterns)
    # A detector the screen leaves out cannot match this text. One that runs and replaces a
    # secret may make the text match a later one, so the rest are screened again after it.
    candidates = screen.candidates(text)
    if not candidates:
        return text, ()
    position = 0
    while position < len(candidates):
        index = candidates[position]
        position += 1
        replaced = _replace(detectors[index], text, found)
        if replaced != text:
            text = replaced
            candidates = [i for i in screen.candidates(text) if i > index]
            position = 0
    return text, tuple(dict.fromkeys(found))


def redact(text: str) -> str:
    """`text` with every secret replaced by `[redacted KIND]`."""
    if len(text) < 6:
        return text
    return _redact(text, os.environ.get(ENV, ""))[0]


def secrets_in(text: str) -> list[str]:
    """The kinds of secret `text` holds (empty when it is clean)."""
    if len(text) < 6:
        return []
    return list(_redact(text, os.environ.get(ENV, ""))[1])


def redact_value(value: Any) -> Any:
    """A JSON-like value with every string in it (keys included) redacted."""
    return _walk(value, partial(_text, env=os.environ.get(ENV, "")))


def redactor(*, remember: bool = False) -> Callable[[Any], Any]:
    """`redact_value` with the patterns read once, for redacting many values in a row.

    With `remember`, each distinct text is redacted once for the life of the returned function:
    the records of a large investigation repeat more texts (keys, parents, entity names) than
    the step's own cache holds, and each miss there runs the screened detectors again.
    """
    plain = partial(_text, env=os.environ.get(ENV, ""))
    if not remember:
        return partial(_walk, text=plain)
    seen: dict[str, str] = {}

    def remembered(value: str) -> str:
        done = seen.get(value)
        if done is None:
            done = seen[value] = plain(value)
        return done

    return partial(_walk, text=remembered)


_PLAIN = (int, float, bool, type(None))
_PLAIN_TYPES = frozenset(_PLAIN)
_TEXTUAL = (str, dict, list, tuple, BaseModel)


def _text(value: str, env: str) -> str:
    return value if len(value) < 6 else _redact(value, env)[0]


def _walk(value: Any, text: Callable[[str], str]) -> Any:
    kind = type(value)
    if kind is str:
        return text(value)
    if kind in _PLAIN_TYPES:
        return value
    if kind is dict:
        return {_walk(k, text): _walk(v, text) for k, v in value.items()}
    if kind is list or kind is tuple:
        # Series points and numeric rows hold no text: keep them as they are.
        if all(type(v) in _PLAIN_TYPES for v in value):
            return value
        if all(type(v) is str for v in value):
            items = [text(v) for v in value]
            return items if kind is list else tuple(items)
    return _walk_any(value, text)


def _walk_any(value: Any, text: Callable[[str], str]) -> Any:
    """`_walk` for subclasses (a str enum, a dict subclass, a model): the general rules."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, dict):
        return {_walk(k, text): _walk(v, text) for k, v in value.items()}
    if isinstance(value, list | tuple):
        # Series points and numeric rows hold no text: keep them as they are.
        if all(isinstance(v, _PLAIN) or not isinstance(v, _TEXTUAL) for v in value):
            return value
        items = [_walk(v, text) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, BaseModel):
        return _walk(value.model_dump(), text)
    return value
