"""Feedback from the pages: was an investigation, or one finding of it, helpful?

The list page posts JSON; the report page posts a plain HTML form (it carries no script), so
both encodings are read here into one shape.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from casebook.executor.intake.bodies import RequestProblem
from casebook.executor.intake.validation import read_model, validate_model

FORM = "application/x-www-form-urlencoded"
FINDING_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
EXPECTED = (
    '{"helpful": true|false, "finding_id": "F1" (optional), "comment": "..." (optional)}, '
    "as JSON or as a form"
)
TRUE_WORDS = {"true", "1", "yes", "on"}
FALSE_WORDS = {"false", "0", "no", "off"}
FEEDBACK_DEPTH = 4  # the feedback object is flat


class Feedback(BaseModel):
    """What one click on a feedback button says."""

    model_config = ConfigDict(extra="ignore")

    helpful: StrictBool
    finding_id: str | None = None
    comment: str = Field(default="", max_length=2000)


def read_feedback(raw: bytes, content_type: str, investigation_id: str) -> Feedback:
    """The feedback in a JSON or form body, or a RequestProblem that says what is wrong."""
    if content_type == FORM:
        given = validate_model(_form_fields(raw, investigation_id), Feedback, expected=EXPECTED)
    else:
        given = read_model(raw, Feedback, max_depth=FEEDBACK_DEPTH, expected=EXPECTED)
    if given.finding_id is not None and not FINDING_ID.fullmatch(given.finding_id):
        raise RequestProblem(
            404,
            f"investigation '{investigation_id}' has no finding '{given.finding_id[:64]}'",
            "not_found",
        )
    return given


def _form_fields(raw: bytes, investigation_id: str) -> dict[str, object]:
    try:
        fields = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
    except UnicodeDecodeError:
        raise RequestProblem(400, "the form is not UTF-8 text", "invalid") from None
    named = fields.get("investigation_id")
    if named and named != investigation_id:
        raise RequestProblem(
            400,
            f"the form is about investigation '{named[:80]}' but was posted to "
            f"'{investigation_id}'; post it to /api/investigations/{named[:80]}/feedback",
            "invalid",
        )
    helpful: object = fields.get("helpful")
    if isinstance(helpful, str) and helpful.lower() in TRUE_WORDS | FALSE_WORDS:
        helpful = helpful.lower() in TRUE_WORDS
    return {
        "helpful": helpful,
        "finding_id": fields.get("finding_id") or None,
        "comment": fields.get("comment", ""),
    }
