"""Who sent the requests: the `requests` table, else the `account` attribute on spans or logs.

docs/telemetry.md documents both: an extra table `requests` (ts, service, account_id) when a
system records every request, and the `account` attribute that spans and log lines may carry.
Analyzers that count requests per account read them through `requests_cte`, so they work with
whichever a system has.
"""

from __future__ import annotations

from casebook.sdk import Telemetry

FROM_TABLE = "select ts, service, account_id from requests"
FROM_SPANS = """select start_ts as ts, service, attributes['account'] as account_id from spans
where attributes['account'] is not null"""
FROM_LOGS = """select ts, service, attributes['account'] as account_id from logs
where attributes['account'] is not null"""
HAS_ACCOUNTS_SQL = "select count(*) > 0 from {table} where attributes['account'] is not null"


def requests_cte(telemetry: Telemetry) -> str | None:
    """A `with client_requests as (...)` clause over the best source of requests per account."""
    if telemetry.has_table("requests"):
        return f"with client_requests as ({FROM_TABLE})"
    for table, query in (("spans", FROM_SPANS), ("logs", FROM_LOGS)):
        if telemetry.has_table(table) and \
                telemetry.shared(HAS_ACCOUNTS_SQL.format(table=table)).scalar():
            return f"with client_requests as ({query})"
    return None
