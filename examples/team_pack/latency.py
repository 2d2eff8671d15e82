from casebook.sdk import Entity, Finding, Telemetry, analyzer


class SlowOperation(Finding):
    operation: str
    p95_ms: float
    baseline_p95_ms: float


@analyzer(match={"alertname": "LatencyHigh"}, timeout_s=10)
def slow_operation(telemetry: Telemetry, service: str) -> SlowOperation | None:
    """The operation of the service whose p95 latency grew the most against the hour before."""
    query = ("select name, quantile_cont(duration_ms, 0.95) as p95 from spans "
             "where service = ? group by name")
    now = telemetry.sql(query, [service])
    before = telemetry.baseline().sql(query, [service]).by("name")
    growth = {name: p95 / before[name]["p95"] for name, p95 in now if name in before}
    if not growth or max(growth.values()) < 2:
        return None
    op = max(growth, key=growth.__getitem__)
    return SlowOperation(
        title=f"{service} {op} is {growth[op]:.1f}x slower",
        summary=f"p95 of {op} rose from {before[op]['p95']:.0f} ms to {dict(now.rows)[op]:.0f} ms.",
        category="code", entities=[Entity.service(service)], evidence=[now.evidence()],
        operation=op, p95_ms=dict(now.rows)[op], baseline_p95_ms=before[op]["p95"],
    )
