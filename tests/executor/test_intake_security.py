"""`casebook serve` in process, on guard: the token, Grafana's HMAC signature, body limits,
cross-site requests, and only the routes it has."""

import base64
import hashlib
import hmac
import json
import re
import time

import pytest
from test_intake_app import am_alert, build_kv_store, post, serving, webhook


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return build_kv_store(tmp_path_factory.mktemp("kv_cache"))


def test_a_token_guards_everything_but_the_health_check(tmp_path, store):
    with serving(tmp_path, store, token="s3cret") as (client, _):
        refused = post(client, "/webhook/alertmanager", webhook(am_alert()))
        assert refused.status_code == 401
        assert refused.json() == {
            "error": "missing or wrong token: send `Authorization: Bearer "
            "<token>` with the token given to casebook serve "
            "--token"
        }
        assert refused.headers["www-authenticate"] == "Bearer"
        wrong = post(
            client, "/webhook/alertmanager", webhook(am_alert()), Authorization="Bearer s3cre"
        )
        assert wrong.status_code == 401
        right = post(
            client, "/webhook/alertmanager", webhook(am_alert()), Authorization="Bearer s3cret"
        )
        assert right.status_code == 202
        for path in ("/api/investigations", "/metrics"):
            assert client.get(path).status_code == 401
        page = client.get("/")
        assert page.status_code == 401 and "Sign in with the casebook token" in page.text
        assert page.headers["www-authenticate"] == 'Basic realm="casebook"'
        basic = base64.b64encode(b"anyone:s3cret").decode()
        assert client.get("/", headers={"Authorization": f"Basic {basic}"}).status_code == 200
        assert client.get("/healthz").status_code == 200


def sign(secret: str, raw: bytes, stamp: str | None = None) -> str:
    message = raw if stamp is None else stamp.encode() + b":" + raw
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def test_grafana_webhooks_are_checked_against_their_hmac_signature(tmp_path, store):
    grafana = {**webhook(am_alert()), "orgId": 1, "state": "alerting", "title": "[FIRING:1]"}
    raw = json.dumps(grafana).encode()
    with serving(tmp_path, store, token="s3cret", grafana_secret="hush") as (client, _):
        signed = post(
            client, "/webhook/grafana", raw, **{"X-Grafana-Alerting-Signature": sign("hush", raw)}
        )
        assert signed.status_code == 202  # the signature authenticates; no token needed
        tampered = post(
            client,
            "/webhook/grafana",
            raw.replace(b"kv1", b"kv9"),
            **{"X-Grafana-Alerting-Signature": sign("hush", raw)},
        )
        assert tampered.status_code == 401
        assert tampered.json()["error"] == (
            "the X-Grafana-Alerting-Signature signature does not match the body; check that "
            "Grafana and casebook serve use the same secret"
        )
        unsigned = post(client, "/webhook/grafana", raw, Authorization="Bearer s3cret")
        assert unsigned.json()["error"].startswith(
            "the request has no X-Grafana-Alerting-Signature header"
        )
        # the Alertmanager endpoint still wants the token
        assert post(client, "/webhook/alertmanager", raw).status_code == 401


def test_a_signing_timestamp_must_be_fresh(tmp_path, store):
    raw = json.dumps({**webhook(am_alert()), "orgId": 1}).encode()
    stamp_header = "X-Grafana-Alerting-Signature-Timestamp"
    with serving(tmp_path, store, grafana_secret="hush", grafana_timestamp_header=stamp_header) as (
        client,
        _,
    ):
        now = str(int(time.time()))
        fresh = post(
            client,
            "/webhook/grafana",
            raw,
            **{stamp_header: now, "X-Grafana-Alerting-Signature": sign("hush", raw, now)},
        )
        assert fresh.status_code == 202
        old = str(int(time.time()) - 3600)
        replayed = post(
            client,
            "/webhook/grafana",
            raw,
            **{stamp_header: old, "X-Grafana-Alerting-Signature": sign("hush", raw, old)},
        )
        assert replayed.status_code == 401
        assert re.fullmatch(
            f"{stamp_header} is 360[01] s away from this machine's clock "
            r"\(at most 300 s is accepted, to refuse replayed requests\)",
            replayed.json()["error"],
        )


def test_bodies_that_are_too_large_not_json_or_not_alerts_are_refused(tmp_path, store):
    with serving(tmp_path, store, max_body_bytes=2048) as (client, _):
        big = webhook(*[am_alert(f"fp{i}") for i in range(10)])
        too_large = post(client, "/webhook/alertmanager", big)
        assert too_large.status_code == 413
        assert too_large.json() == {
            "error": "the body is larger than the limit of 2048 bytes; "
            "raise it with casebook serve --max-body-bytes"
        }
        # without a Content-Length the limit holds while reading
        chunks = (json.dumps(big).encode()[i : i + 500] for i in range(0, 6000, 500))
        streamed = client.post(
            "/webhook/alertmanager", content=chunks, headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413
        form = client.post(
            "/webhook/alertmanager",
            content=b"alerts=1",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert (form.status_code, form.json()) == (
            415,
            {
                "error": "expected Content-Type: application/json, found "
                "application/x-www-form-urlencoded"
            },
        )
        broken = post(client, "/webhook/alertmanager", b"{alerts: []}")
        assert (broken.status_code, broken.json()["error"]) == (
            400,
            "the body is not JSON (line 1, column 2: Expecting property name enclosed in "
            "double quotes)",
        )
        no_start = post(client, "/webhook/alertmanager", webhook({"labels": {"alertname": "X"}}))
        assert no_start.json()["error"] == (
            "the alertmanager body: alerts[0] (X) has no 'startsAt'; expected an RFC 3339 time"
        )


def test_only_the_routes_of_the_service_exist(tmp_path, store):
    with serving(tmp_path, store) as (client, _):
        for path in ("/docs", "/openapi.json", "/redoc", "/static/x", "/investigations/"):
            assert client.get(path).status_code == 404, path
        for ident in ("..", "%2E%2E", "inv;drop", "..%2F..%2Fetc%2Fpasswd", "%00"):
            answer = client.get(f"/api/investigations/{ident}")
            assert answer.status_code == 404, ident
        dots = client.get("/api/investigations/%2E%2E")
        assert dots.json() == {"error": "no investigation '..'; GET /api/investigations lists them"}
        assert client.get("/investigations/inv-missing").status_code == 404
        rebound = client.get("/healthz", headers={"Host": "attacker.example:9095"})
        assert rebound.status_code == 421
        assert rebound.json() == {"error": "this service answers to 127.0.0.1, ::1, localhost only"}
        assert client.get("/healthz", headers={"Host": "localhost:9095"}).status_code == 200
        headers = client.get("/").headers
        assert headers["x-content-type-options"] == "nosniff"
        assert "connect-src 'self'" in headers["content-security-policy"]


def test_posts_from_another_site_are_refused(tmp_path, store):
    with serving(tmp_path, store) as (client, service):
        forged = post(
            client, "/webhook/alertmanager", webhook(am_alert()), Origin="http://evil.example"
        )
        assert (forged.status_code, forged.json()) == (
            403,
            {"error": "cross-site request refused: Origin http://evil.example is not this service"},
        )
        assert service.queue.depth() == 0
        # The service's own pages post with their own origin; tools send none.
        own = post(client, "/webhook/alertmanager", webhook(am_alert()), Origin="http://127.0.0.1")
        assert own.status_code == 202
        # A form posted from elsewhere never reaches the feedback table either.
        planted = client.post(
            "/api/investigations/x/feedback",
            data={"helpful": "true"},
            headers={"Origin": "null", "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert planted.status_code == 403
