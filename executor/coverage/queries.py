"""One SQL query per section of the coverage report, over the results database.

Every query reads the investigations created in [$since, $until) for firing alerts (resolved
notifications are kept for the record, not investigated). `$catch_all` names the analyzers that
run on every alert (no matchers, no predicate, no parameters): they do not make an alert covered.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

PERIOD = """
with inv as (
    select * from investigations
    where created_at >= $since and created_at < $until
      and coalesce(alert_status, 'firing') = 'firing'),
calls as (
    select v.* from invocations v join inv on inv.id = v.investigation_id)
"""

# Per investigation: did an analyzer written for it run, and when did the first finding arrive.
PER_INVESTIGATION = """,
per_inv as (
    select inv.id, inv.alert_name, inv.alert, inv.created_at,
        coalesce(bool_or(c.status <> 'skipped'
                         and not list_contains(cast($catch_all as varchar[]), c.analyzer)),
                 false) as covered,
        min(c.started_ms + c.duration_ms) filter (where c.status = 'found') as first_finding_ms,
        (select count(*) from findings f where f.investigation_id = inv.id) as findings
    from inv left join calls c on c.investigation_id = inv.id
    group by inv.id, inv.alert_name, inv.alert, inv.created_at)
"""

HEADLINE = (
    PERIOD
    + PER_INVESTIGATION
    + """
select
    (select count(*) from per_inv) as investigations,
    (select count(distinct alert_name) from per_inv) as alert_names,
    (select avg(covered::int) from per_inv) as covered_share,
    (select avg((findings > 0)::int) from per_inv) as finding_share,
    (select median(first_finding_ms) from per_inv) as median_first_finding_ms,
    (select count(*) from per_inv where not covered) as uncovered,
    (select count(*) from calls) as invocations,
    (select count(*) filter (where status in ('error', 'crashed', 'timeout'))
            / nullif(count(*) filter (where status <> 'skipped'), 0) from calls) as failure_share,
    (select avg(helpful::int) from feedback fb join inv on inv.id = fb.investigation_id)
        as helpful_share,
    (select sum(cost_usd) from narratives n join inv on inv.id = n.investigation_id) as cost_usd,
    (select min(created_at) from inv) as first_at,
    (select max(created_at) from inv) as last_at
"""
)

ALERTS = (
    PERIOD
    + PER_INVESTIGATION
    + """
select alert_name, count(*) as volume, count(*) filter (where covered) as covered,
    count(*) filter (where findings > 0) as with_finding,
    count(*) filter (where covered and findings = 0) as covered_without_finding,
    median(first_finding_ms) as median_first_finding_ms
from per_inv group by alert_name
order by volume desc, alert_name
"""
)

DAYS = (
    PERIOD
    + PER_INVESTIGATION
    + """
select cast(date_trunc('day', created_at at time zone 'UTC') as date) as day,
    count(*) as volume, count(*) filter (where covered) as covered
from per_inv group by day order by day
"""
)

ANALYZERS = (
    PERIOD
    + """,
per_alert as (
    select analyzer, investigation_id, bool_or(status <> 'skipped') as ran,
           bool_or(status = 'found') as found
    from calls group by analyzer, investigation_id),
alerts as (
    select analyzer, count(*) as applicable, count(*) filter (where ran) as ran,
           count(*) filter (where found) as found_in
    from per_alert group by analyzer),
outcomes as (
    select analyzer, count(*) as invocations,
        count(*) filter (where status = 'found') as found,
        count(*) filter (where status = 'nothing') as nothing,
        count(*) filter (where status = 'skipped') as skipped,
        count(*) filter (where status = 'skipped' and error like 'missing data: %')
            as missing_data,
        arg_max(error, duration_ms) filter (where status = 'skipped'
            and error like 'missing data: %') as missing_reason,
        count(*) filter (where status in ('error', 'crashed')) as error,
        count(*) filter (where status = 'timeout') as timeout,
        quantile_cont(duration_ms, 0.5) filter (where status <> 'skipped') as p50_ms,
        quantile_cont(duration_ms, 0.95) filter (where status <> 'skipped') as p95_ms
    from calls group by analyzer),
votes as (
    select f.analyzer, count(*) filter (where fb.helpful) as helpful,
           count(*) filter (where not fb.helpful) as not_helpful
    from feedback fb join inv on inv.id = fb.investigation_id
    join findings f on f.investigation_id = fb.investigation_id and f.id = fb.finding_id
    group by f.analyzer)
select a.analyzer, a.applicable, a.ran, a.found_in, o.invocations, o.found, o.nothing,
    o.skipped, o.missing_data, o.missing_reason, o.error, o.timeout, o.p50_ms, o.p95_ms,
    coalesce(v.helpful, 0) as helpful, coalesce(v.not_helpful, 0) as not_helpful
from alerts a join outcomes o using (analyzer) left join votes v using (analyzer)
order by a.applicable desc, a.analyzer
"""
)

# Why the uncovered firings went uncovered: the commonest skip reason, first clause only.
UNCOVERED = (
    PERIOD
    + PER_INVESTIGATION
    + """,
uncovered as (select * from per_inv where not covered),
keys as (
    select alert_name, unnest(json_keys(alert, '$.labels')) as key from uncovered),
reasons as (
    select u.alert_name, split_part(c.error, ';', 1) as reason, count(*) as n
    from uncovered u join calls c on c.investigation_id = u.id
    where c.status = 'skipped' and c.error is not null
    group by all)
select u.alert_name, count(*) as uncovered,
    (select count(*) from per_inv p where p.alert_name = u.alert_name) as volume,
    (select list(distinct key order by key) from keys k where k.alert_name = u.alert_name)
        as label_keys,
    (select arg_max(reason, n) from reasons r where r.alert_name = u.alert_name) as reason
from uncovered u group by u.alert_name
order by uncovered desc, volume desc, u.alert_name
"""
)

CAUSES = (
    PERIOD
    + """
select c.category, c.entity_kind || ':' || c.entity_name as entity,
    count(*) filter (where c.rank = 1) as top, count(*) filter (where c.rank <= 3) as top3,
    list(distinct inv.alert_name order by inv.alert_name) as alerts
from causes c join inv on inv.id = c.investigation_id
group by c.category, c.entity_kind, c.entity_name
having count(*) filter (where c.rank <= 3) > 0
order by top desc, top3 desc, c.category, entity
"""
)

FEEDBACK = (
    PERIOD
    + """
select fb.investigation_id, inv.alert_name, fb.finding_id, f.analyzer, fb.helpful,
    coalesce(fb.comment, '') as comment, fb.created_at
from feedback fb join inv on inv.id = fb.investigation_id
left join findings f on f.investigation_id = fb.investigation_id and f.id = fb.finding_id
order by fb.created_at desc nulls last
"""
)

NARRATION = (
    PERIOD
    + """
select n.narrator, coalesce(n.model, '') as model, count(*) as narratives,
    coalesce(sum(n.tokens_in), 0) as tokens_in, coalesce(sum(n.tokens_out), 0) as tokens_out,
    coalesce(sum(n.cost_usd), 0) as cost_usd,
    count(*) filter (where n.fallback_reason is not null) as fallbacks,
    count(*) filter (where not n.verified) as unverified
from narratives n join inv on inv.id = n.investigation_id
group by all order by narratives desc, n.narrator
"""
)


def fetch(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    since: datetime,
    until: datetime,
    catch_all: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Run one section's query for [since, until) and return its rows as dicts."""
    params: dict[str, Any] = {"since": since, "until": until}
    if "$catch_all" in sql:
        params["catch_all"] = list(catch_all or [])
    cursor = con.execute(sql, params)
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
