"""Abuse: many requests from few accounts at once, from accounts created together and unused."""

from __future__ import annotations

from datetime import datetime, timedelta

from casebook.analyzers.capacity import TrafficSurge
from casebook.analyzers.clients import requests_cte
from casebook.analyzers.errors import ErrorLogSpike, ErrorOrigin
from casebook.analyzers.routes import RouteSurge
from casebook.sdk import Entity, Finding, Mitigation, Severity, Telemetry, analyzer

# Minutes in which an account sent far more than its own average, kept where dozens of
# accounts did so in the same minute (coordination, not one heavy client).
BURST_SQL = """
, per_minute as (
    select account_id, time_bucket(interval '1 minute', ts) as minute, count(*) as n
    from client_requests where service = ? group by all
), per_account as (
    select account_id, sum(n) / ? as mean_n from per_minute group by account_id
), spikes as (
    select p.account_id, p.minute, p.n from per_minute p join per_account a using (account_id)
    where p.n >= 10 and p.n >= 8 * a.mean_n
), crowded as (
    select minute from spikes group by minute having count(*) >= 20
)
select account_id, minute, n from spikes where minute in (select minute from crowded)
order by minute, n desc"""

ERROR_ACCOUNTS_SQL = """
select count(*) filter (where attributes['account'] in (select unnest(?::varchar[]))) as burst,
       count(*) as total
from logs where level in ('error', 'fatal') and attributes['account'] is not null"""


class RequestBurst(Finding):
    service: str
    accounts: list[str]
    minutes: list[datetime]
    requests: int
    per_account: float
    error_share: float


@analyzer(timeout_s=30, category="abuse",
          reads=["requests.account_id", "spans", "logs", "attributes:account"])
def request_burst(telemetry: Telemetry, service: str,
                  error_log_spike: ErrorLogSpike | None, error_origin: ErrorOrigin | None,
                  traffic_surge: TrafficSurge | None) -> RequestBurst | None:
    """Dozens of accounts each sent many requests in the same minute (a coordinated burst).

    When the failing requests come from those accounts, the errors are the attack's effect.
    """
    source = requests_cte(telemetry)
    if source is None:
        return None
    minutes_in_window = telemetry.window.duration.total_seconds() / 60
    bursts = telemetry.sql(source + BURST_SQL, [service, minutes_in_window])
    accounts = sorted({r[0] for r in bursts})
    if len(accounts) < 20:
        return None
    minutes = sorted({r[1] for r in bursts})
    total = sum(r[2] for r in bursts)
    per_account = total / (len(accounts) * len(minutes))
    share = 0.0
    evidence = [bursts.evidence(limit=15, note="accounts with a burst of requests in one minute")]
    if telemetry.has_table("logs"):
        errors = telemetry.sql(ERROR_ACCOUNTS_SQL, [accounts])
        burst_errors, all_errors = errors.rows[0]
        share = burst_errors / all_errors if all_errors else 0.0
        evidence.append(errors.evidence(note="error log lines from the burst accounts"))
    explains = ["retry_storm"]  # bursts of requests per calling span look like retries
    if share >= 0.5:
        explains += [n for n, f in (("error_log_spike", error_log_spike),
                                    ("error_origin", error_origin)) if f is not None]
    if traffic_surge is not None:
        explains.append("traffic_surge")
    errors_text = f"; they account for {share:.0%} of error log lines" if share else ""
    return RequestBurst(
        title=f"{len(accounts)} accounts sent synchronized request bursts",
        summary=f"{len(accounts)} accounts each sent about {per_account:.0f} requests to "
                f"{service} in the same minute, {len(minutes)} time(s) from "
                f"{minutes[0]:%H:%M} UTC{errors_text}.",
        severity=Severity.CRITICAL, confidence=0.7, category="abuse",
        entities=[Entity.service(service)], evidence=evidence, onset=minutes[0],
        explains=explains,
        mitigations=[Mitigation(action=f"Rate-limit {service} per account",
                                detail=f"{len(accounts)} accounts in the burst", risk="low")],
        service=service, accounts=accounts, minutes=minutes, requests=int(total),
        per_account=round(per_account, 1), error_share=round(share, 4),
    )


# The densest hour of the bursting accounts' creation, and the span they were created in.
COHORT_SQL = """
with burst as (select unnest(?::varchar[]) as account_id),
created as (select a.created_at from accounts a join burst using (account_id)),
densest as (
    select time_bucket(interval '1 hour', created_at) as hour, count(*) as n
    from created group by hour order by n desc limit 1
)
select d.hour, d.n, min(c.created_at) as first, max(c.created_at) as last
from densest d join created c
  on c.created_at >= d.hour - interval '1 hour' and c.created_at < d.hour + interval '2 hours'
group by d.hour, d.n"""

COHORT_MEMBERS_SQL = """
select count(*) as members,
       count(*) filter (where last_active_at is null
                        or last_active_at < created_at + interval '1 day') as dormant,
       min(created_at) as first, max(created_at) as last
from accounts where created_at >= ? and created_at < ?"""

# Sign-ups in a usual hour: the table's accounts over the hours it spans (a batch is rare, so
# it barely moves this; a quantile of per-hour counts would not be, on a small table).
TYPICAL_HOUR_SQL = """
select count(*) / greatest(date_diff('hour', min(created_at), max(created_at)), 1)
from accounts"""


MIN_NEW_ACCOUNTS = 50  # new clients of a surge worth checking for a batch of sign-ups
# A route's new clients are that route's alone (not every newcomer of a busy service), so a
# batch of a few dozen among them is enough; the sign-up rate test below still has to pass.
MIN_ROUTE_BATCH = 20
ROUTE_BATCH_SHARE = 0.15


class AccountCohort(Finding):
    service: str
    created_from: datetime
    created_to: datetime
    members: int
    dormant_share: float
    in_burst: int


@analyzer(timeout_s=30, category="abuse",
          reads=["accounts.account_id", "accounts.created_at", "accounts.last_active_at"])
def account_cohort(telemetry: Telemetry, service: str, request_burst: RequestBurst | None,
                   traffic_surge: TrafficSurge | None,
                   route_surge: RouteSurge | None) -> AccountCohort | None:
    """The bursting accounts, or the new clients of a surge, were created together, in a batch
    of mostly dormant accounts.

    The second catches low-and-slow abuse: a hundred new accounts, each under any per-account
    limit, whose traffic together looks like a capacity surge. When the surge came on one
    route of the edge, the route's new clients are checked, and the abuse is placed on the
    service the route ran out of capacity.
    """
    if not telemetry.has_table("accounts"):
        return None
    if route_surge is not None:
        service = route_surge.service
    if request_burst is not None:
        accounts, onset, what = request_burst.accounts, request_burst.onset, "bursting"
        needed = 0.5 * len(accounts)  # a burst is mostly the cohort
    elif route_surge is not None and len(route_surge.new_accounts) >= MIN_ROUTE_BATCH:
        accounts, onset, what = route_surge.new_accounts, route_surge.onset, "new"
        needed = max(MIN_ROUTE_BATCH, ROUTE_BATCH_SHARE * len(accounts))
    elif traffic_surge is not None and traffic_surge.new_clients >= MIN_NEW_ACCOUNTS:
        accounts, onset, what = traffic_surge.new_accounts, traffic_surge.onset, "new"
        # A surge's new clients also hold real newcomers, so a batch of dozens is enough.
        needed = max(MIN_NEW_ACCOUNTS, 0.25 * len(accounts))
    else:
        return None
    top = telemetry.sql(COHORT_SQL, [accounts])
    if not top or top.rows[0][1] < needed:
        return None
    _, in_burst, burst_first, burst_last = top.rows[0]
    margin = timedelta(minutes=5)
    members = telemetry.sql(COHORT_MEMBERS_SQL, [burst_first - margin, burst_last + margin])
    count, dormant, first, last = members.rows[0]
    hours = max((last - first).total_seconds() / 3600, 1 / 60)
    typical = telemetry.sql(TYPICAL_HOUR_SQL).scalar() or 0
    if count < 10 * max(typical, 1) * max(hours, 1):
        return None  # no more than sign-ups usually bring: not a batch
    share = dormant / count if count else 0.0
    spread = max(1, round((last - first).total_seconds() / 60))
    return AccountCohort(
        title=f"Fake-account cohort: {count:,} accounts created within {spread} minutes",
        summary=f"{in_burst} of the {len(accounts)} {what} accounts sending to {service} belong "
                f"to {count:,} accounts created between {first:%Y-%m-%d %H:%M} and "
                f"{last:%H:%M} UTC; {share:.0%} of them were never used after creation. This is "
                "abuse, not a code bug.",
        severity=Severity.CRITICAL, confidence=0.9 if share >= 0.8 else 0.7, category="abuse",
        entities=[Entity.service(service),
                  Entity(kind="account_cohort", name=f"created {first:%Y-%m-%d %H:%M}")],
        evidence=[top.evidence(note="creation hour of the bursting accounts"),
                  members.evidence(note="accounts created around that hour")],
        onset=onset,
        explains=["error_log_spike", "error_origin", "traffic_surge", "compute_saturation",
                  "retry_storm", "route_surge"],
        mitigations=[
            Mitigation(action=f"Suspend the {count:,} accounts created "
                              f"{first:%Y-%m-%d %H:%M}–{last:%H:%M} UTC pending review",
                       risk="medium"),
            Mitigation(action="Add a sign-up velocity check", risk="low"),
        ],
        service=service, created_from=first, created_to=last, members=int(count),
        dormant_share=round(share, 4), in_burst=int(in_burst),
    )
