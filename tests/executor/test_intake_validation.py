"""read_model: the one way a route reads a JSON body into a model, with the answer it gives."""

import pytest
from pydantic import BaseModel

from casebook.executor.intake.bodies import RequestProblem
from casebook.executor.intake.validation import read_model


class Change(BaseModel):
    kind: str
    service: str
    attributes: dict[str, str] = {}


def problem(raw: bytes, **options) -> tuple[int, str]:
    with pytest.raises(RequestProblem) as caught:
        read_model(raw, Change, **options)
    return caught.value.status, caught.value.message


def test_a_good_body_becomes_the_model():
    assert read_model(b'{"kind": "deploy", "service": "api"}', Change) == Change(
        kind="deploy", service="api"
    )


def test_wrong_fields_are_named_with_their_path_and_all_reported():
    assert problem(b'{"kind": ["deploy"], "attributes": {"team": 1}}',
                   expected='{"kind", "service"}') == (
        422,
        "kind: Input should be a valid string; service: Field required; "
        "attributes.team: Input should be a valid string; expected {\"kind\", \"service\"}",
    )
    assert problem(b"[1, 2]") == (422, "expected an object, got a list")


def test_depth_numbers_and_syntax_are_refused_before_the_model():
    assert problem(b'{"kind": [[[[1]]]]}', max_depth=3) == (
        400, "the body nests arrays and objects 5 levels deep; at most 3 are accepted"
    )
    assert problem(b'{"kind": -Infinity}') == (
        400, "the body holds -Infinity, which is not a JSON number; send a finite number or a "
        "string"
    )
    assert problem(b'{"kind": }')[0] == 400
