"""`casebook analyzers new`: an analyzer and its test, written from a template."""

from __future__ import annotations

from pathlib import Path

from casebook.executor.errors import UserError

ANALYZER = '''"""{title}: what an on-call engineer should know when it fires."""

from casebook.sdk import Alert, Entity, Finding, Severity, Telemetry, analyzer


class {cls}(Finding):
    errors: int
    baseline_errors: int


@analyzer(match={{"alertname": "HighErrorRate"}}, timeout_s=10, category="code")
def {name}(alert: Alert, telemetry: Telemetry, service: str) -> {cls} | None:
    """Error log lines of the alerting service jumped compared with the hour before."""
    query = "select count(*) from logs where service = ? and level = 'error'"
    now = telemetry.sql(query, [service])
    before = telemetry.baseline().sql(query, [service]).scalar()
    errors = now.scalar()
    if errors < 10 or errors < 3 * max(before, 1):
        return None
    return {cls}(
        title=f"Error logs on {{service}} up {{errors}} vs {{before}}",
        summary=f"{{service}} logged {{errors}} errors in the window, {{before}} the hour before.",
        severity=Severity.WARNING, confidence=0.6, category="code",
        entities=[Entity.service(service)], evidence=[now.evidence()],
        errors=errors, baseline_errors=before,
    )
'''

TEST = '''from datetime import timedelta

from {module} import {name}

from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert, run


def error_logs(count, minutes_before):
    moment = DEFAULT_START - timedelta(minutes=minutes_before)
    return [{{"ts": moment, "service": "api", "level": "error", "message": "boom"}}] * count


def test_{name}_finds_an_error_jump():
    store = TinyStore().add("logs", error_logs(40, minutes_before=5))
    outcome = run({name}, alert=make_alert("HighErrorRate", service="api"), store=store)
    assert outcome.status == "found"
    assert outcome.finding.errors == 40


def test_{name}_stays_quiet_on_steady_errors():
    store = TinyStore().add("logs", error_logs(40, 5) + error_logs(40, 70))
    outcome = run({name}, alert=make_alert("HighErrorRate", service="api"), store=store)
    assert outcome.status == "nothing"
'''


def write_analyzer(name: str, directory: Path, force: bool = False) -> list[Path]:
    """Write NAME.py and test_NAME.py into directory; refuse to overwrite unless forced."""
    directory.mkdir(parents=True, exist_ok=True)
    cls = "".join(part.capitalize() for part in name.split("_"))
    files = {
        directory / f"{name}.py": ANALYZER.format(name=name, cls=cls,
                                                  title=name.replace("_", " ").capitalize()),
        directory / f"test_{name}.py": TEST.format(name=name, module=name),
    }
    existing = [p for p in files if p.exists()]
    if existing and not force:
        raise UserError(f"{existing[0]} already exists; pick another name or pass --force")
    for path, text in files.items():
        path.write_text(text)
    return list(files)
