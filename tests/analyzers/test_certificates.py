"""Certificates: an expired certificate is found from its lifetime metric or, without one, from
handshake errors and the server spans that stopped."""

from datetime import timedelta

from casebook.analyzers.certificates import certificate_expiry
from casebook.sdk.testing import DEFAULT_START, TinyStore, log, make_alert, run, span

ONSET = DEFAULT_START
ALERT = make_alert("CheckoutErrors", service="web", starts_at=ONSET)


def handshakes(with_metric: bool) -> TinyStore:
    """web calls payments; from the onset the handshake fails: no payments span, web logs it."""
    spans, lines, rows = [], [], []
    for i in range(-40, 10):
        ts = ONSET + timedelta(minutes=i)
        spans.append(span(f"t{i}", "a", None, "web", "POST /pay", ts, 40.0,
                          "error" if i >= 0 else "ok"))
        if i < 0:
            spans.append(span(f"t{i}", "b", "a", "payments", "Charge", ts, 30.0))
        else:
            lines.append(log(ts, "web", "error", "tls: failed to verify certificate: x509: "
                                                 "certificate has expired or is not yet valid"))
        rows.append({"ts": ts, "name": "tls_cert_remaining_seconds", "service": "payments",
                     "value": float(-60 * i) if i >= 0 else 3600.0 - 60 * (i + 40)})
    store = TinyStore().add("spans", spans).add("logs", lines)
    return store.add("metrics", rows) if with_metric else store


def test_a_certificate_lifetime_at_zero_names_the_server():
    finding = run(certificate_expiry, alert=ALERT, store=handshakes(with_metric=True)).finding
    assert finding.title == "TLS certificate of payments expired"
    assert finding.category == "security"
    assert finding.summary.startswith("payments: its certificate lifetime "
                                      "(tls_cert_remaining_seconds) reached zero at 12:00 UTC")


def test_without_the_metric_the_callee_whose_spans_stopped_is_the_server():
    finding = run(certificate_expiry, alert=ALERT, store=handshakes(with_metric=False)).finding
    assert finding.service == "payments"
    assert finding.how == "its server spans stopped while its clients' handshakes failed"
    assert finding.logged_by == ["web"]


def test_no_certificate_trouble_no_finding():
    store = TinyStore().add("logs", [log(ONSET, "web", "error", "card declined")])
    assert run(certificate_expiry, alert=ALERT, store=store).finding is None


def test_a_handshake_failing_before_the_zero_sample_dates_the_expiry():
    store = handshakes(with_metric=True).add("logs", [log(
        ONSET - timedelta(seconds=40), "web", "error", "x509: certificate has expired")])
    finding = run(certificate_expiry, alert=ALERT, store=store).finding
    assert finding.onset == ONSET - timedelta(seconds=40)
    assert finding.summary.startswith("payments: its certificate lifetime "
                                      "(tls_cert_remaining_seconds) reached zero at 11:59 UTC")
    assert "latency_origin" in finding.explains  # clients wait on the failed handshakes
