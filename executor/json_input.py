"""JSON from outside (webhook bodies, alert files): parsed within a depth limit, refused whole
when it holds non-finite numbers, and described by field path when a model refuses it.

    load_json(b'{"alerts": []}')          # -> {'alerts': []}
    load_json(b"[" * 100_000)             # JSONInputError: nests deeper than 64 levels
    describe_errors(validation_error)     # -> "alerts[0].labels: expected an object ..."

Python's json module recurses once per level and fails with RecursionError somewhere past a
few thousand, so depth is measured on the raw bytes before parsing, with a few byte-string passes and no
recursion (about 30 ms for a 2 MB webhook body).
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

from pydantic import ValidationError

from casebook.executor.errors import UserError

DEFAULT_MAX_DEPTH = 64  # an Alertmanager body is 4 deep, OTLP/JSON about 12
MAX_NUMBER_DIGITS = 40  # a longer integer is a mistake or an attack, never a measurement
UTF8_BOM = b"\xef\xbb\xbf"
OBJECT_EXPECTED = ("model_type", "model_attributes_type", "dict_type")
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes


class JSONInputError(UserError):
    """JSON that is refused before any model sees it; `status` is the HTTP answer (400 or 413)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def nesting_depth(raw: bytes) -> int:
    """How deep arrays and objects nest in a JSON text (brackets inside strings do not count).

    Escapes go first, so every remaining quote opens or closes a string and the text between
    every other pair of quotes is structure. Up to its first error a text is valid JSON, so
    this agrees with the parser wherever the parser would recurse.
    """
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = unescaped.translate(None, _NOT_STRUCTURE).split(b'"')[0::2]
    steps = b"".join(skeleton).translate(_STEPS)
    return max(accumulate(array("b", steps)), default=0)


def load_json(
    raw: bytes | str,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_bytes: int | None = None,
    what: str = "the body",
) -> Any:
    """Parse JSON text, or raise JSONInputError saying what is wrong and where."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if max_bytes is not None and len(data) > max_bytes:
        raise JSONInputError(
            f"{what} is {len(data)} bytes, over the limit of {max_bytes} bytes", status=413
        )
    depth = nesting_depth(data)
    if depth > max_depth:
        raise JSONInputError(
            f"{what} nests arrays and objects {depth} levels deep; at most {max_depth} are "
            "accepted"
        )
    skip = len(UTF8_BOM) if data.startswith(UTF8_BOM) else 0
    try:
        text = data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = skip + exc.start
        raise JSONInputError(f"{what} is not UTF-8 text (byte {at}: {data[at:at + 1]!r})") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float,
                          parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise JSONInputError(
            f"{what} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except _NumberRefused as exc:
        raise JSONInputError(f"{what} holds {exc}") from None
    except RecursionError:  # only if the depth scan and the parser ever disagree
        raise JSONInputError(f"{what} nests too deeply to read") from None


class _NumberRefused(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NumberRefused(f"{name}, which is not a JSON number; send a finite number or a string")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NumberRefused(
            f"the number {text[:40]}, which is too large to be finite; send a smaller number"
        )
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise _NumberRefused(
            f"an integer of {len(text.lstrip('-'))} digits; at most {MAX_NUMBER_DIGITS} are "
            "accepted"
        )
    return int(text)


def kind_of(value: Any) -> str:
    """A JSON value's kind in words: 'a list', 'an object', 'a string', ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    names = {dict: "an object", list: "a list", str: "a string"}
    return names.get(type(value), type(value).__name__)


def field_path(location: Sequence[int | str]) -> str:
    """('alerts', 0, 'labels') -> 'alerts[0].labels'."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def describe_errors(exc: ValidationError, limit: int = 3) -> str:
    """The first few problems a model found, each as 'field.path: what was wrong'."""
    problems = []
    for error in exc.errors(include_url=False)[:limit]:
        # Union and wrapper types add their own names to the location; users never wrote those.
        location = [p for p in error.get("loc", ()) if not _is_type_name(p)]
        where = field_path(location)
        message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
        if error.get("type") in OBJECT_EXPECTED:  # pydantic would name the model class
            message = f"expected an object, got {kind_of(error.get('input'))}"
        problems.append(f"{where}: {message}" if where else message)
    more = exc.error_count() - len(problems)
    if more > 0:
        problems.append(f"and {more} more problem{'s' if more > 1 else ''}")
    return "; ".join(problems)


def _is_type_name(part: int | str) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))
