"""Secrets planted where telemetry and alerts carry them never leave: not to the model, not to
the results store, not to any report.

Over twenty kinds of secret are planted in log lines, span attributes, alert labels and
annotations and event summaries. An analyzer copies all of it into its finding (title, summary,
facts, entities, evidence rows, mitigations), another fails with a DSN in its error; the model
(the fake Messages API on loopback) answers with a leaked token and then an API error that
repeats one. Then every place the text can end up is read back.
"""

import io
import json
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from rich.console import Console

sys.path.insert(0, str(Path(__file__).parents[1] / "fakes"))

from anthropic_server import FakeAnthropic, status, tool_answer  # noqa: E402

from casebook.executor.investigation import run_investigation  # noqa: E402
from casebook.executor.narration import narrate  # noqa: E402
from casebook.executor.reports.html import render_html  # noqa: E402
from casebook.executor.reports.markdown import render_markdown  # noqa: E402
from casebook.executor.reports.terminal import render  # noqa: E402
from casebook.executor.results import ResultsStore  # noqa: E402
from casebook.executor.runtime.local import LocalRuntime  # noqa: E402
from casebook.sdk import (  # noqa: E402
    Alert,
    Entity,
    Finding,
    Mitigation,
    Telemetry,
    analyzer,
)
from casebook.sdk.analyzer import spec_of  # noqa: E402
from casebook.sdk.registry import Registry  # noqa: E402
from casebook.sdk.testing import TinyStore, log, make_alert, span  # noqa: E402

# kind: (the text planted, the secret part that must never appear again)
SECRETS = {
    "aws key id": ("key AKIAQYLPMN5HHHFPZAM2 in use", "AKIAQYLPMN5HHHFPZAM2"),
    "aws secret assignment": ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",
                              "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"),
    "aws secret after key id": ("creds AKIAIOSFODNN7EXAMPLF:je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEZ",
                                "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEZ"),
    "bearer token": ("Authorization: Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0",
                     "9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
    "jwt": ("session eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhY2N0LTQyIn0.Xk3hQ9c2vB8nT1mR5sW7yZ0aL4pD6fG",
            "Xk3hQ9c2vB8nT1mR5sW7yZ0aL4pD6fG"),
    "private key": ("-----BEGIN RSA PRIVATE KEY-----\\nMIIEowIBAAKCAQEAq7BFUpkGp3+LQmlQ\\n"
                    "-----END RSA PRIVATE KEY-----", "MIIEowIBAAKCAQEAq7BFUpkGp3+LQmlQ"),
    "postgres url": ("dial postgres://orders:pg-Sup3rSecret@db.internal:5432/orders",
                     "pg-Sup3rSecret"),
    "mysql url": ("mysql://app:my5qlPassw0rd@mysql:3306/app", "my5qlPassw0rd"),
    "mysql dsn": ("dsn=app:Dsn-Passw0rd-77@tcp(mysql:3306)/orders", "Dsn-Passw0rd-77"),
    "mongodb url": ("mongodb+srv://svc:M0ngoPass!x@cluster0.example.net/db", "M0ngoPass!x"),
    "redis url": ("redis://:r3disPassw0rd@cache:6379/0", "r3disPassw0rd"),
    "amqp url": ("amqp://queue:Amqp-Pa55@rabbit:5672/", "Amqp-Pa55"),
    "slack bot token": ("xoxb-2048-4096-AbCdEfGhIjKlMnOpQrStUvWx", "xoxb-2048-4096-AbCdEfGhIjKlMnOpQrStUvWx"),
    "slack user token": ("xoxp-1111-2222-3333-0123456789abcdef", "xoxp-1111-2222-3333-0123456789abcdef"),
    "slack app token": ("xapp-1-A0123ABCD-1234567890-0a1b2c3d4e5f", "xapp-1-A0123ABCD-1234567890-0a1b2c3d4e5f"),
    "slack webhook": ("notify https://hooks.slack.com/services/T0AAA1111/B0BBB2222/c3CCCc3CCCc3CCCc3CCCc3CC",
                      "c3CCCc3CCCc3CCCc3CCCc3CC"),
    "github pat classic": ("ghp_Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2", "ghp_Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"),
    "github oauth": ("gho_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8", "gho_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"),
    "github fine-grained": ("github_pat_11AAAAAAA0abcdefghijkl_MNOPQRSTUVWXYZ0123456789",
                            "github_pat_11AAAAAAA0abcdefghijkl_MNOPQRSTUVWXYZ0123456789"),
    "stripe secret": ("charge with sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    "stripe restricted": ("rk_live_51H8x2Lk9Qw3Er5Ty7Ui9Op1", "rk_live_51H8x2Lk9Qw3Er5Ty7Ui9Op1"),
    "google api key": ("maps key AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"),
    "anthropic key": ("ANTHROPIC sk-ant-api03-Leaked-Key-0123456789abcdef", "sk-ant-api03-Leaked-Key-0123456789abcdef"),
    "password assignment": ("DB_PASSWORD=correct-horse-battery", "correct-horse-battery"),
    "secret assignment": ("APP_CLIENT_SECRET=Qm9vbS1zZWNyZXQtdmFsdWUtOTk", "Qm9vbS1zZWNyZXQtdmFsdWUtOTk"),
    "token assignment": ("DEPLOY_TOKEN: dG9rZW4tZm9yLWRlcGxveS0xMjM0", "dG9rZW4tZm9yLWRlcGxveS0xMjM0"),
    "card number": ("card 4242 4242 4242 4242 declined", "4242 4242 4242 4242"),
    "card number plain": ("pan=5555555555554444", "5555555555554444"),
    "sendgrid key": ("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",
                     "TwL2iGABf9DHoTf-09kqeF8tAmbihYzrnopKc-1s5cr"),
    "email": ("login by jane.doe+ops@corp-mail.example.com", "jane.doe+ops@corp-mail.example.com"),
    "custom pattern": ("ticket INTERNAL-ID-884421 attached", "INTERNAL-ID-884421"),
}
PLANTED = [text for text, _ in SECRETS.values()]
LEAKS = [secret for _, secret in SECRETS.values()]


class Leak(Finding):
    lines: list[str]
    labels: dict[str, str]


@analyzer(name="leaky_copy")
def leaky_copy(alert: Alert, telemetry: Telemetry) -> Leak:
    """Copies everything it reads into its finding, the worst an analyzer can do."""
    logs = telemetry.sql("select service, message from logs")
    spans = telemetry.sql("select name, attributes from spans")
    events = telemetry.sql("select kind, summary from events")
    lines = [r[1] for r in logs] + [str(r[1]) for r in spans] + [r[1] for r in events]
    return Leak(
        title=f"Copied {lines[0]}",
        summary=" | ".join(lines[:6]) + " " + " ".join(alert.annotations.values()),
        category="code",
        confidence=0.9,
        entities=[Entity(kind="account", name="jane.doe+ops@corp-mail.example.com")],
        evidence=[logs.evidence(), spans.evidence(), events.evidence()],
        mitigations=[Mitigation(action=events.rows[0][1], detail=lines[1])],
        lines=lines,
        labels=dict(alert.labels),
    )


@analyzer(name="leaky_error")
def leaky_error(alert: Alert, telemetry: Telemetry) -> Leak | None:
    raise ConnectionError(f"cannot reach {SECRETS['postgres url'][0]} with {PLANTED[0]}")


@pytest.fixture(scope="module")
def leaked(tmp_path_factory):
    """One investigation, narrated and stored; each test reads a different place back."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield _leak(monkeypatch, tmp_path_factory.mktemp("leak"))


def _leak(monkeypatch, tmp_path):
    monkeypatch.setenv("CASEBOOK_REDACT_PATTERNS", r"INTERNAL-ID-\d{6}")
    store = TinyStore()
    alert = make_alert(
        "CheckoutErrors",
        service="checkout",
        token=SECRETS["slack bot token"][0],
        dsn=SECRETS["mysql url"][0],
        card=SECRETS["card number plain"][0],
        annotations={"summary": " ".join(PLANTED[:12]), "runbook": " ".join(PLANTED[12:])},
    )
    moment = alert.starts_at - timedelta(minutes=5)
    store.add("logs", [log(moment, "checkout", "error", text) for text in PLANTED])
    store.add("spans", [span("t1", f"s{i}", "", "checkout", "POST /pay", moment, 12.0,
                             header=text) for i, text in enumerate(PLANTED)])
    store.add("events", [{"ts": moment, "kind": "deploy", "service": "checkout",
                          "summary": text, "attributes": {"note": text}} for text in PLANTED])
    registry = Registry([spec_of(leaky_copy), spec_of(leaky_error)])
    record = run_investigation(alert, registry=registry, source=store.source,
                               runtime=LocalRuntime())

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0000000000000000")
    monkeypatch.setenv("CASEBOOK_NARRATOR_LEDGER", str(tmp_path / "ledger.json"))
    for name in ("CASEBOOK_NARRATOR", "CASEBOOK_TOKEN_BUDGET_INVESTIGATION",
                 "CASEBOOK_TOKEN_BUDGET_DAY", "CASEBOOK_NARRATOR_MAX_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    # The model only saw redacted text; a model that invents a credential-shaped string anyway
    # has it quoted back in the verifier's reasons, which are redacted too.
    answer = {
        "headline": {"text": f"Leak of {LEAKS[16]} caused it.", "finding_ids": ["F1"]},
        "facts": [{"text": f"The keys {LEAKS[0]} and {LEAKS[19]} were used.",
                   "finding_ids": ["F1"]}],
    }
    with FakeAnthropic([tool_answer(answer),
                        status(400, f"invalid request near {PLANTED[6]} {PLANTED[19]}")]) as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        record.narrative = narrate(record)
    db = tmp_path / "results.duckdb"
    with ResultsStore(db) as results:
        results.save(record)
    return record, fake, db


def absent(text: str, where: str) -> None:
    found = [leak for leak in LEAKS if leak in text]
    assert found == [], f"{where} holds {found}"


def test_the_corpus_has_over_twenty_kinds_and_each_is_caught():
    from casebook.executor.redaction import redact

    assert len(SECRETS) >= 20
    for kind, (text, secret) in SECRETS.items():
        if kind != "custom pattern":
            assert secret not in redact(text), kind


def test_the_analyzer_really_copied_everything(leaked):
    record, _, _ = leaked
    [finding] = record.findings
    assert len(finding.evidence) == 3 and len(finding.facts["lines"]) == 3 * len(PLANTED)
    assert "[redacted aws-access-key-id]" in finding.title
    assert "[redacted card-number]" in record.alert.labels["card"]
    error = next(i.error for i in record.invocations if i.analyzer == "leaky_error")
    assert error.startswith("ConnectionError: cannot reach dial postgres://orders:"
                            "[redacted password]@db.internal:5432/orders with key "
                            "[redacted aws-access-key-id] in use")


def test_no_secret_reaches_the_model(leaked):
    _, fake, _ = leaked
    assert len(fake.requests) == 2
    absent(json.dumps(fake.requests, ensure_ascii=False), "the model requests")
    absent(json.dumps(fake.requests), "the model requests (escaped)")


def test_no_secret_is_stored(leaked):
    record, _, db = leaked
    assert record.narrative.narrator == "deterministic"
    assert record.narrative.fallback_reason.startswith("The Claude API failed (HTTP 400): ")
    assert "[redacted" in record.narrative.fallback_reason and record.narrative.rejections
    con = duckdb.connect(str(db), read_only=True)
    tables = [r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()]
    assert {"investigations", "invocations", "findings", "narratives"} <= set(tables)
    for table in tables:
        rows = con.execute(f"select * from {table}").fetchall()
        absent(repr(rows), f"table {table}")
        absent(json.dumps(rows, default=str, ensure_ascii=False), f"table {table}")
    con.close()


def test_no_secret_reaches_any_report(leaked):
    record, _, db = leaked
    with ResultsStore(db, read_only=True) as results:
        stored = results.get(record.id)
    for shown in (record, stored):
        console = Console(file=io.StringIO(), width=240, record=True)
        render(shown, console)
        absent(console.export_text(), "the terminal report")
        absent(render_markdown(shown), "the Markdown report")
        absent(render_html(shown), "the HTML report")
        absent(json.dumps(shown.contract_json(), ensure_ascii=False), "the JSON report")


def test_a_record_made_outside_the_executor_is_redacted_too(tmp_path):
    """The intake service stores a record of its own before (and when) an investigation fails."""
    from casebook.executor.record import InvestigationRecord
    from casebook.sdk import TimeWindow

    alert = make_alert("CheckoutErrors", service="checkout", dsn=SECRETS["postgres url"][0],
                       annotations={"summary": SECRETS["aws secret assignment"][0]})
    record = InvestigationRecord(
        id="inv-intake", alert=alert,
        window=TimeWindow.around(alert.starts_at, timedelta(hours=1), timedelta(minutes=15)),
        status="failed", notes=[f"The investigation failed: {SECRETS['mysql dsn'][0]}"],
    )
    with ResultsStore(tmp_path / "results.duckdb") as results:
        results.begin(record)
        results.save(record)
        stored = results.get("inv-intake")
    assert stored.alert.labels["dsn"] == (
        "dial postgres://orders:[redacted password]@db.internal:5432/orders"
    )
    assert stored.notes == [
        "The investigation failed: dsn=app:[redacted password]@tcp(mysql:3306)/orders"
    ]
    absent(stored.model_dump_json(), "the stored record")
