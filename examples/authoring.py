"""Analyzer patterns quoted by docs/analyzers.md (the tests run every one of them)."""

from casebook.sdk import (
    Entity,
    Finding,
    FollowUp,
    Mitigation,
    Severity,
    Telemetry,
    analyzer,
    from_finding,
)


# --- fan-out over a source -------------------------------------------------------------------
def downstream_of_alert_service(telemetry: Telemetry) -> list[str]:
    """Services the alerting service called in the window (from its spans' children)."""
    rows = telemetry.sql(
        "select distinct c.service from spans p join spans c "
        "on c.trace_id = p.trace_id and c.parent_span_id = p.span_id "
        "where c.service <> p.service order by 1")
    return [service for (service,) in rows]


class FailingDependency(Finding):
    dependency: str
    error_ratio: float


@analyzer(fan_out={"dependency": downstream_of_alert_service}, timeout_s=10)
def failing_dependency(telemetry: Telemetry, dependency: str) -> FailingDependency | None:
    """One invocation per dependency; all of them share one grouped scan of the spans."""
    ratios = telemetry.shared(
        "select service, avg((status = 'error')::int) as ratio from spans group by service"
    ).by("service")
    ratio = ratios.get(dependency, {}).get("ratio", 0.0)
    if ratio < 0.2:
        return None
    return FailingDependency(
        title=f"{dependency} fails {ratio:.0%} of its spans",
        summary=f"{ratio:.0%} of {dependency} spans ended in error in the window.",
        severity=Severity.CRITICAL, confidence=0.8, category="dependency",
        entities=[Entity.service(dependency)], dependency=dependency, error_ratio=ratio,
        followups=[FollowUp(analyzer="dependency_owner", params={"dependency": dependency})],
    )


# --- follow-ups: run another analyzer on the entity a finding names --------------------------
class Owner(Finding):
    team: str


@analyzer(when=lambda alert: False)  # never on its own: only when a finding asks for it
def dependency_owner(telemetry: Telemetry, dependency: str) -> Owner | None:
    """Who owns the failing dependency, from the `owners` table when there is one."""
    if not telemetry.has_table("owners"):
        return None
    team = telemetry.sql("select team from owners where service = ?", [dependency]).scalar()
    if team is None:
        return None
    return Owner(title=f"{dependency} is owned by {team}", summary=f"Page {team}.",
                 severity=Severity.INFO, confidence=1.0, category="other",
                 entities=[Entity.service(dependency)], team=team,
                 mitigations=[Mitigation(action=f"Page {team} about {dependency}", risk="low")])


# --- fan-out over an upstream finding's list -----------------------------------------------
class ErrorAccounts(Finding):
    accounts: list[str]


@analyzer(timeout_s=10)
def error_accounts(telemetry: Telemetry) -> ErrorAccounts | None:
    """Accounts behind most error log lines."""
    rows = telemetry.sql(
        "select attributes['account'] as account, count(*) as n from logs "
        "where level = 'error' and attributes['account'] is not null "
        "group by 1 having count(*) >= 5 order by n desc limit 10")
    if not rows:
        return None
    accounts = rows.column("account")
    return ErrorAccounts(title=f"{len(accounts)} accounts behind the errors",
                         summary=", ".join(accounts), category="abuse",
                         evidence=[rows.evidence()], accounts=accounts)


class AccountAge(Finding):
    account: str
    age_days: float


@analyzer(fan_out={"account": from_finding("error_accounts", "accounts")}, timeout_s=10)
def young_account(telemetry: Telemetry, account: str,
                  error_accounts: ErrorAccounts) -> AccountAge | None:
    """Each account behind the errors, checked for how new it is (one invocation per account)."""
    if not telemetry.has_table("accounts"):
        return None
    age = telemetry.sql(
        "select date_diff('hour', created_at, ?::timestamp) / 24.0 from accounts "
        "where account_id = ?", [telemetry.window.end.replace(tzinfo=None), account]).scalar()
    if age is None or age > 7:
        return None
    return AccountAge(title=f"{account} is {age:.1f} days old", summary="a new account",
                      category="abuse", entities=[Entity(kind="account", name=account)],
                      account=account, age_days=age, explains=["error_accounts"])
