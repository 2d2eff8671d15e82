"""Reading a request body into a model, for every route that takes JSON.

    given = read_model(raw, Feedback, expected='{"helpful": true|false}')

The JSON is parsed within a depth limit (deeper bodies are answered 400 before the parser
recurses), non-finite numbers are refused, and a model that refuses the body is answered 422
naming the field: `alerts[0].labels: expected an object of string values, got a list`. Size is
limited before this, while the body is read (bodies.read_body answers 413).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from casebook.executor.intake.bodies import RequestProblem, parse_json
from casebook.executor.json_input import DEFAULT_MAX_DEPTH, describe_errors

Model = TypeVar("Model", bound=BaseModel)


def read_model(
    raw: bytes, model: type[Model], *, max_depth: int = DEFAULT_MAX_DEPTH, expected: str = ""
) -> Model:
    """The body as `model`, or a RequestProblem (400 not JSON or too deep, 422 wrong fields)."""
    return validate_model(parse_json(raw, max_depth), model, expected=expected)


def validate_model(data: Any, model: type[Model], *, expected: str = "") -> Model:
    """Parsed JSON as `model`, or a 422 RequestProblem whose message names each wrong field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message = describe_errors(exc)
        if expected:
            message += f"; expected {expected}"
        raise RequestProblem(422, message, "invalid") from None
