"""Every pattern in docs/analyzers.md runs here through the local executor."""

import re
from datetime import timedelta
from pathlib import Path

from casebook.executor.investigation import run_investigation
from casebook.executor.runtime.local import LocalRuntime
from casebook.sdk.registry import Registry
from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert

ROOT = Path(__file__).parents[2]


def telemetry():
    moment = DEFAULT_START - timedelta(minutes=3)
    spans = []
    for i in range(10):
        spans.append({"trace_id": f"t{i}", "span_id": f"a{i}", "service": "api", "name": "get",
                      "start_ts": moment, "duration_ms": 20.0, "status": "error"})
        spans.append({"trace_id": f"t{i}", "span_id": f"d{i}", "parent_span_id": f"a{i}",
                      "service": "db" if i % 2 else "cache", "name": "query",
                      "start_ts": moment, "duration_ms": 5.0,
                      "status": "error" if i % 2 else "ok"})
    logs = [{"ts": moment, "service": "api", "level": "error", "message": "denied",
             "attributes": {"account": f"acct-{i % 2}"}} for i in range(12)]
    accounts = [{"account_id": "acct-0", "created_at": DEFAULT_START - timedelta(days=1)},
                {"account_id": "acct-1", "created_at": DEFAULT_START - timedelta(days=400)}]
    owners = [{"service": "db", "team": "storage"}]
    return (TinyStore().add("spans", spans).add("logs", logs).add("accounts", accounts)
            .add("owners", owners))


def test_the_patterns_run_together():
    registry = Registry()
    registry.load("casebook.examples.authoring")
    record = run_investigation(make_alert("Errors", service="api"), registry=registry.checked(),
                               source=telemetry().source, runtime=LocalRuntime())
    titles = sorted(f.title for f in record.findings)
    assert titles == ["2 accounts behind the errors", "acct-0 is 1.0 days old",
                      "db fails 100% of its spans", "db is owned by storage"]
    statuses = {i.key: i.status for i in record.invocations}
    assert statuses['failing_dependency{"dependency":"cache"}'] == "nothing"
    assert statuses['young_account{"account":"acct-1"}'] == "nothing"
    owner = next(f for f in record.findings if f.analyzer == "dependency_owner")
    failing = next(f for f in record.findings if f.analyzer == "failing_dependency")
    assert owner.led_from == [failing.id]


def test_docs_quote_the_examples_verbatim():
    doc = (ROOT / "docs" / "analyzers.md").read_text()
    source = (ROOT / "examples" / "authoring.py").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    assert blocks, "docs/analyzers.md has no python blocks"
    for block in blocks:
        if block.startswith("# from examples/authoring.py"):
            body = block.split("\n", 1)[1].rstrip()
            assert body in source, f"docs/analyzers.md quotes code not in examples: {body[:60]}"
