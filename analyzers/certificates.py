"""Certificates: a service's TLS certificate expired, so its clients can no longer connect.

Three signs, any of which points at the server: a certificate-lifetime metric (name with
`cert` and `remaining`, `expiry` or `valid`) at or below zero; TLS handshake or certificate
errors logged on either side of the connection; and the server's own spans stopping while its
callers fail, because a failed handshake never reaches the server's code. The server is the one
whose certificate says so, else the logging service that is called by the others, else the
callee whose server spans vanished.
"""

from __future__ import annotations

from datetime import datetime

from casebook.analyzers.periods import naive
from casebook.sdk import Alert, Entity, Finding, Mitigation, Severity, Telemetry, analyzer
from casebook.sdk.models import utc

CERT_METRIC = r"cert.*(remaining|expir|valid|ttl)"
TLS_ERROR = r"(handshake|certificate|x509).*(fail|error|expired|bad|unknown|invalid)|" \
            r"(expired|bad|invalid).*certificate"

# Failed handshakes are errors, retries, new code paths and waiting in the clients.
CLIENT_SYMPTOMS = ["error_log_spike", "error_origin", "code_path_change", "retry_storm",
                   "failure_origin", "latency_origin"]

EXPIRED_SQL = """
select service, name, min(ts) filter (where value <= 0) as expired_at, min(value) as lowest
from metrics where regexp_matches(name, ?, 'i')
group by all having min(value) <= 0 order by expired_at"""
LINES_SQL = """
select service, min(ts) as first, count(*) as lines, any_value(message) as example
from logs where regexp_matches(message, ?, 'i') and level in ('warn', 'error', 'fatal')
group by service order by lines desc"""
EDGES_SQL = """
select p.service as caller, c.service as callee, count(*) as calls,
       count(*) filter (where c.start_ts >= ?) as calls_after
from spans c join spans p on c.trace_id = p.trace_id and c.parent_span_id = p.span_id
where c.service <> p.service group by all"""


class CertificateExpired(Finding):
    service: str
    expired_at: datetime | None
    logged_by: list[str]
    how: str


@analyzer(timeout_s=30, category="security",
          reads=["metrics:*cert*remaining*", "logs.message", "logs.level", "spans"])
def certificate_expiry(alert: Alert, telemetry: Telemetry) -> CertificateExpired | None:
    """A certificate expired: its lifetime metric hit zero or TLS handshakes started failing."""
    expired = telemetry.sql(EXPIRED_SQL, [CERT_METRIC]) if telemetry.has_table("metrics") \
        else None
    lines = telemetry.sql(LINES_SQL, [TLS_ERROR])
    loggers = {r[0]: r for r in lines.rows}
    evidence, server, when, how = [], None, None, ""
    if expired is not None and expired.rows:
        server, _, when, _ = expired.rows[0]
        how = f"its certificate lifetime ({expired.rows[0][1]}) reached zero"
        evidence.append(expired.evidence(note="certificate lifetimes at or below zero"))
    if loggers:
        evidence.append(lines.evidence(note="TLS handshake and certificate errors per service"))
    if server is None and loggers:
        server, how = _server_of(telemetry, alert, loggers)
        if server is None:
            return None
        when = min(r[1] for r in loggers.values())
    if server is None:
        return None
    if loggers and when is not None:
        # A lifetime sample at zero says it expired since the sample before; the first failed
        # handshake may date it earlier.
        when = min(naive(when), naive(min(r[1] for r in loggers.values())))
    said = (f"; {sum(r[2] for r in loggers.values())} TLS error line(s) from "
            f"{', '.join(sorted(loggers))}" if loggers else "")
    return CertificateExpired(
        title=f"TLS certificate of {server} expired",
        summary=f"{server}: {how} at {when:%H:%M} UTC{said}.",
        severity=Severity.CRITICAL, confidence=0.9 if how and loggers else 0.75,
        category="security", entities=[Entity.service(server)], evidence=evidence,
        onset=utc(when),
        explains=CLIENT_SYMPTOMS,
        mitigations=[Mitigation(action=f"Renew and roll out {server}'s certificate; check "
                                       "the renewal job",
                                detail="clients refuse the handshake until then", risk="low")],
        service=server, expired_at=utc(when), logged_by=sorted(loggers), how=how,
    )


def _server_of(telemetry: Telemetry, alert: Alert,
               loggers: dict[str, tuple]) -> tuple[str | None, str]:
    """The server side of the failing handshakes, from the call graph."""
    if not telemetry.has_table("spans"):
        only = next(iter(loggers))
        return only, "TLS handshakes with it failed"
    onset = naive(min(r[1] for r in loggers.values()))
    edges = telemetry.sql(EDGES_SQL, [onset]).rows
    called = [s for s in loggers if any(e[1] == s and e[0] in loggers for e in edges)]
    if called:
        return called[0], "its clients' TLS handshakes with it failed"
    # Only the clients logged: the callee whose server spans stopped after the errors began.
    vanished: dict[str, float] = {}
    before = max((onset - naive(telemetry.window.start)).total_seconds(), 1.0)
    after = max((naive(telemetry.window.end) - onset).total_seconds(), 1.0)
    for caller, callee, calls, calls_after in edges:
        if caller in loggers and callee not in loggers:
            rate_before = (calls - calls_after) / before
            drop = 1.0 - (calls_after / after) / rate_before if rate_before else 0.0
            vanished[callee] = max(vanished.get(callee, 0.0), drop)
    if vanished:
        best = max(sorted(vanished), key=lambda s: vanished[s])
        if vanished[best] >= 0.5:
            return best, "its server spans stopped while its clients' handshakes failed"
    return next(iter(loggers)), "TLS handshakes with it failed"
