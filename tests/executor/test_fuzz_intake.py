"""Property-based checks of the intake parsers: whatever arrives, the answer is a clean refusal
(4xx, AlertFormatError, JSONInputError) or alerts that can be investigated, never another
exception. Examples are derandomized and bounded so every run checks the same bodies."""

import json
import string
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_intake_app import build_kv_store

from casebook.executor.alert_bodies import EARLIEST, LATEST, LOOKAHEAD, LOOKBACK
from casebook.executor.alerts import AlertFormatError, parse_alerts
from casebook.executor.intake.app import create_app
from casebook.executor.intake.bodies import RequestProblem
from casebook.executor.intake.config import IntakeConfig
from casebook.executor.intake.feedback import FORM, read_feedback
from casebook.executor.intake.service import IntakeService
from casebook.executor.investigation import window_for
from casebook.executor.json_input import JSONInputError, load_json, nesting_depth

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers() | st.sampled_from([10**400, -(10**400), 2**63])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
def maybe(valid, wrong=json_values):
    """Mostly `valid`, one time in twelve `wrong`, so many bodies get through and all paths run."""
    return st.integers(min_value=0, max_value=11).flatmap(lambda n: wrong if n == 0 else valid)


offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
moments = st.builds(
    lambda moment, zone, zulu: moment.replace(tzinfo=zone).isoformat().replace(
        "+00:00", "Z" if zulu else "+00:00"),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30))
    | st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(1970, 1, 2)),
    offsets,
    st.booleans(),
)
edge_moments = st.sampled_from([
    "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00-14:00",
    "9999-12-31T23:59:59Z", "9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59+14:00",
    "1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999999999Z", "2026-01-01T12:00:00.123456789Z",
    "2026-02-30T00:00:00Z", "yesterday", "", "1e300", "NaN",
])
times = maybe(moments, edge_moments | st.integers(min_value=-(10**20), max_value=10**20)
               | json_values)
label_maps = st.dictionaries(st.text(string.ascii_letters + "_", min_size=1, max_size=10),
                             st.text(max_size=20), max_size=4)
window_values = maybe(
    st.floats(min_value=0, max_value=10080).map(repr),
    st.floats().map(repr)
    | st.sampled_from(["inf", "-inf", "1e300", "1e8", "NaN", "-5", "0", "10080", "10081", "x"]),
)
annotations = st.fixed_dictionaries(
    {}, optional={LOOKBACK: window_values, LOOKAHEAD: window_values, "summary": st.text()}
)


alerts = st.fixed_dictionaries(
    {"labels": maybe(label_maps.map(lambda labels: {"alertname": "Fuzz", **labels}))},
    optional={
        "status": maybe(st.sampled_from(["firing", "resolved"])),
        "annotations": maybe(annotations),
        "startsAt": times,
        "endsAt": times,
        "fingerprint": maybe(st.text(string.hexdigits, max_size=16)),
        "generatorURL": maybe(st.just("http://prometheus:9090/graph")),
    },
)
alertmanager_bodies = st.fixed_dictionaries(
    {"alerts": maybe(st.lists(maybe(alerts), max_size=4))},
    optional={
        "version": maybe(st.just("4")),
        "commonLabels": maybe(label_maps),
        "commonAnnotations": maybe(label_maps),
        "groupLabels": maybe(label_maps),
        "truncatedAlerts": maybe(st.integers(min_value=0, max_value=5)),
    },
)
grafana_bodies = alertmanager_bodies.map(
    lambda body: {**body, "orgId": 1, "state": "alerting", "title": "[FIRING:1] Fuzz"}
)
legacy_bodies = st.fixed_dictionaries(
    {"ruleName": maybe(st.text(max_size=10))},
    optional={"tags": maybe(label_maps), "startsAt": times, "time": times,
              "state": maybe(st.sampled_from(["alerting", "ok", "no_data"])),
              "evalMatches": maybe(st.lists(st.dictionaries(st.text(max_size=5), scalars))),
              "message": maybe(st.text(max_size=20))},
)
casebook_bodies = st.fixed_dictionaries(
    {"name": maybe(st.text(min_size=1, max_size=10)), "starts_at": times},
    optional={"labels": maybe(label_maps), "annotations": maybe(annotations),
              "status": maybe(st.sampled_from(["firing", "resolved"])), "ends_at": times},
)
bodies = alertmanager_bodies | grafana_bodies | legacy_bodies | casebook_bodies | json_values


@FUZZ
@given(bodies)
def test_a_body_is_refused_cleanly_or_gives_alerts_that_can_be_investigated(body):
    try:
        parsed = parse_alerts(body, origin="fuzz")
    except AlertFormatError as exc:
        assert exc.status == 422 and str(exc)
        return
    for alert in parsed:
        assert EARLIEST <= alert.starts_at <= LATEST
        window = window_for(alert)  # accepted means it can be investigated: never lost later
        assert window.start < window.end


@FUZZ
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())
       | st.integers(min_value=0, max_value=3000).map(lambda n: b"[" * n + b"]" * n))
def test_json_text_is_parsed_or_refused_with_400_or_413(raw):
    try:
        value = load_json(raw, max_bytes=2048)
    except JSONInputError as exc:
        assert exc.status in (400, 413) and str(exc)
        return
    assert nesting_depth(raw) <= 64
    json.dumps(value, allow_nan=False)  # what was accepted is plain, finite JSON


@FUZZ
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()),
       st.sampled_from(["application/json", FORM]))
def test_feedback_is_read_or_refused_with_4xx(raw, content_type):
    try:
        given_ = read_feedback(raw, content_type, "inv-1")
    except RequestProblem as exc:
        assert 400 <= exc.status < 500 and exc.message
        return
    assert isinstance(given_.helpful, bool)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_serve")
    config = IntakeConfig(telemetry=build_kv_store(root), db=root / "results.duckdb", local=True)
    service = IntakeService.open(config)
    with TestClient(create_app(service, run_worker=False), base_url="http://127.0.0.1") as http:
        yield http


@FUZZ
@given(bodies, st.sampled_from(["/webhook/alertmanager", "/webhook/grafana",
                                "/api/investigations"]))
def test_the_service_answers_every_body_with_202_or_4xx(client, body, path):
    raw = json.dumps(body).encode()
    answer = client.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert answer.status_code in (202, 400, 413, 422), answer.text
    if answer.status_code == 202:
        for receipt in answer.json()["alerts"]:
            if receipt["investigation_id"] and not receipt["duplicate"]:
                found = client.get(f"/api/investigations/{receipt['investigation_id']}")
                assert found.status_code == 202  # queued, not lost
    else:
        assert answer.json()["error"]


def depth_of(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


tricky_text = st.text(alphabet='[]{}"\\ab\n', max_size=12)
tricky_values = st.recursive(
    st.none() | st.integers() | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=15,
)


@FUZZ
@given(tricky_values, st.booleans())
def test_the_depth_scan_agrees_with_the_parsed_value(value, ascii_only):
    assert nesting_depth(json.dumps(value, ensure_ascii=ascii_only).encode()) == depth_of(value)
