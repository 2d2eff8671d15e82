"""Results delivered where people are, end to end: a real Alertmanager feeds `casebook serve
--config`, whose investigation goes to a generic webhook and a Slack-format receiver (real HTTP
servers here) that are down at first; serve is killed with SIGKILL while the messages wait, and
after the restart each receiver gets each message exactly once."""

import hashlib
import hmac
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "fakes"))

from receiver import Receiver  # noqa: E402
from test_intake_end_to_end import (  # noqa: E402
    ALERTMANAGER,
    KV_LABELS,
    STARTS,
    Chromium,
    Served,
    _answers,
    call,
    free_port,
    store,  # noqa: F401 (the fixture)
    wait_for,
)

pytestmark = pytest.mark.slow

SECRET = "webhook-secret-1"
RUNBOOK = "https://runbooks.example/inference/high-request-volume"
GENERATOR = "http://prometheus.example:9090/graph?g0.expr=rate(requests_total%5B1m%5D)"


def casebook_yaml(webhook: Receiver, slack: Receiver, public_url: str, tickets: Path) -> str:
    return f"""
server:
  public_url: {public_url}
packs: [casebook.examples.team_pack]
sinks:
  - name: cache-tickets
    type: markdown
    directory: {tickets}
  - name: audit-hook
    type: webhook
    url: {webhook.url}/casebook
    secret: {SECRET}
  - name: oncall-slack
    type: slack
    url: {slack.url}/services/T000/B000/XXXX
routes:
  - match: {{team: inference}}
    sinks: [audit-hook, oncall-slack]
links:
  service: "https://grafana.example/d/svc?var-service={{service}}"
delivery:
  backoff_s: 0.2
  max_backoff_s: 0.5
  max_attempts: 1000
"""


def alertmanager_yml(webhook_url: str) -> str:
    return f"""
route:
  receiver: casebook
  group_by: [alertname, pod]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: casebook
    webhook_configs:
      - url: {webhook_url}
"""


@pytest.mark.skipif(
    not Path(ALERTMANAGER).exists(),
    reason="needs Debian's prometheus-alertmanager (make system-deps installs it)",
)
def test_alertmanager_to_webhook_and_slack_survives_a_dead_receiver_and_a_kill(tmp_path, store):  # noqa: F811
    webhook, slack = Receiver(free_port()), Receiver(free_port())  # not listening yet: down
    public_url = "https://casebook.example"
    port = free_port()  # the same after the restart: Alertmanager keeps sending there
    config = tmp_path / "casebook.yaml"
    config.write_text(casebook_yaml(webhook, slack, public_url, tmp_path / "tickets"))
    check = subprocess.run(
        [sys.executable, "-c", "from casebook.executor.cli import main; main()", "config",
         "check", str(config)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr

    served = Served(tmp_path, store, "--config", str(config), port=port)
    am_port = free_port()
    (tmp_path / "alertmanager.yml").write_text(
        alertmanager_yml(f"{served.url}/webhook/alertmanager"))
    am_log = (tmp_path / "alertmanager.log").open("w")
    am = subprocess.Popen(
        [ALERTMANAGER, f"--config.file={tmp_path / 'alertmanager.yml'}",
         f"--storage.path={tmp_path / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
         "--cluster.listen-address=", "--log.level=warn"],
        stdout=am_log, stderr=subprocess.STDOUT)
    am_url = f"http://127.0.0.1:{am_port}"
    again = None
    try:
        wait_for(lambda: _answers(f"{am_url}/-/ready"), 30, "Alertmanager ready")
        first = {"labels": {**KV_LABELS, "pod": "gpu-1"}, "startsAt": STARTS,
                 "annotations": {"summary": "requests far above normal", "runbook_url": RUNBOOK},
                 "generatorURL": GENERATOR}
        assert call("POST", f"{am_url}/api/v2/alerts", [first])[0] == 200

        def done_ids():
            rows = call("GET", f"{served.url}/api/investigations")[1]["investigations"]
            return [r["id"] for r in rows if r["status"] == "done"]

        [ident] = wait_for(done_ids, 60, "the alert investigated")

        def retried():
            deliveries = call("GET", f"{served.url}/api/investigations/{ident}")[1]["deliveries"]
            waiting = [d for d in deliveries if d["state"] == "pending" and d["attempts"] >= 2]
            return len(waiting) == 2 and deliveries

        deliveries = wait_for(retried, 30, "both deliveries failing and retried")
        assert [(d["sink"], d["state"]) for d in deliveries] == [
            ("cache-tickets", "delivered"), ("audit-hook", "pending"), ("oncall-slack", "pending")]
        down = deliveries[1:]
        assert all("cannot reach http://127.0.0.1:" in d["last_error"] for d in down)
        assert [e["outcome"] for e in down[0]["log"]][:2] == ["retry", "retry"]
        served.stop(signal.SIGKILL)  # between the investigation and its delivery

        webhook.start()
        slack.start()
        again = Served(tmp_path, store, "--config", str(config), port=port)

        def delivered():
            log = call("GET", f"{again.url}/api/investigations/{ident}")[1]["deliveries"]
            return all(d["state"] == "delivered" for d in log) and log

        log = wait_for(delivered, 30, "both deliveries made after the restart")[1:]
        record = call("GET", f"{again.url}/api/investigations/{ident}")[1]

        # The generic webhook: one signed JSON object, field by field.
        [hook] = webhook.received
        assert hook.path == "/casebook"
        assert hook.headers["Idempotency-Key"] == f"{ident}:audit-hook"
        expected = "sha256=" + hmac.new(SECRET.encode(), hook.body, hashlib.sha256).hexdigest()
        assert hook.headers["X-Casebook-Signature"] == expected
        body = hook.json
        assert body["id"] == ident
        assert body["alert"]["name"] == "HighRequestVolume"
        assert body["alert"]["labels"]["pod"] == "gpu-1"
        assert body["alert"]["generator_url"] == GENERATOR
        assert body["causes"] == record["causes"]
        assert body["causes"][0]["entity"] == {"kind": "service", "name": "kv-cache"}
        assert body["narrative"]["text"] == record["narrative"]["text"] != ""
        assert body["report_url"] == f"{public_url}/investigations/{ident}"
        assert body["seen_before"] == []
        links = [(link["kind"], link["url"]) for link in body["links"]]
        assert links[:2] == [("runbook", RUNBOOK), ("generator", GENERATOR)]
        services = [url for kind, url in links if kind == "service"]
        assert services[0] == "https://grafana.example/d/svc?var-service=kv-cache"  # the top cause

        # Slack: Block Kit with the headline, the causes with scores and the report button.
        [chat] = slack.received
        assert chat.headers["Idempotency-Key"] == f"{ident}:oncall-slack"
        blocks = chat.json["blocks"]
        assert blocks[0]["type"] == "header"
        assert blocks[0]["text"]["text"].startswith("HighRequestVolume: ")
        causes = next(b["text"]["text"] for b in blocks
                      if b["type"] == "section" and b["text"]["text"].startswith("*Probable"))
        top = body["causes"][0]
        assert f"1. *{top['category']}* on service `kv-cache` (score {top['score']:.2f})" in causes
        [button] = next(b for b in blocks if b["type"] == "actions")["elements"]
        assert button["url"] == body["report_url"]
        assert f"<{RUNBOOK}|Runbook>" in str(blocks)
        for entry in log:  # failed twice or more while down, then delivered once
            outcomes = [e["outcome"] for e in entry["log"]]
            assert outcomes[-1] == "delivered" and outcomes.count("delivered") == 1
            assert set(outcomes[:-1]) == {"retry"} and len(outcomes) >= 3

        # The team pack's post-processor: a note on the investigation and a ticket file.
        assert ("cache_ticket: kv-cache is owned by the cache team (#cache-oncall)."
                in record["notes"])
        ticket = (tmp_path / "tickets" / f"{ident}-cache_ticket-2.md").read_text()
        assert ticket.startswith("# kv-cache: cache collapse behind HighRequestVolume\n")
        assert [d["kind"] for d in record["deliveries"]] == [
            "ticket", "investigation", "investigation"]

        # The same alert again with another pod: a new investigation that has seen this before.
        second = {**first, "labels": {**KV_LABELS, "pod": "gpu-2"}}
        assert call("POST", f"{am_url}/api/v2/alerts", [second])[0] == 200
        wait_for(lambda: len(webhook.received) == 2, 60, "the second investigation delivered")
        later = webhook.received[1].json
        assert [e["id"] for e in later["seen_before"]] == [ident]
        assert later["seen_before"][0]["report_url"] == body["report_url"]
        assert later["seen_before"][0]["feedback"] == "no feedback"

        # Headless Chromium on the second report: the links and the "seen before" section.
        browser = Chromium(tmp_path / "profile")
        try:
            browser.open(f"{again.url}/investigations/{later['id']}")
            hrefs = browser.evaluate(
                "Object.fromEntries([...document.querySelectorAll('nav.links a')]"
                ".map(a => [a.textContent, a.href]))")
            assert hrefs["Runbook"] == RUNBOOK
            assert hrefs["Alert rule (source)"] == GENERATOR
            seen = browser.evaluate("document.querySelector('#seen-before').innerText")
            assert "1 earlier investigation(s) of HighRequestVolume in the last 30 days" in seen
            assert ident in seen
            assert browser.evaluate(
                "document.querySelector('#seen-before a').getAttribute('href')"
            ) == f"/investigations/{ident}"
            assert "audit-hook" in browser.evaluate(
                "document.querySelector('#deliveries').innerText")
            assert browser.errors() == []
        finally:
            browser.close()
        # Nothing was delivered twice: one message per investigation and sink.
        keys = [r.headers["Idempotency-Key"] for r in webhook.received + slack.received]
        assert len(keys) == len(set(keys)) == 4
    finally:
        am.terminate()
        am.wait(timeout=10)
        am_log.close()
        if again is not None:
            again.stop()
        webhook.stop()
        slack.stop()


def test_coverage_url_reports_on_a_serve_that_is_receiving_alerts(tmp_path, store):  # noqa: F811
    token = "cov-token"
    served = Served(tmp_path, store, "--token", token)
    casebook = [sys.executable, "-c", "from casebook.executor.cli import main; main()"]
    try:
        alert = {"status": "firing", "labels": KV_LABELS, "startsAt": STARTS,
                 "fingerprint": "cov-1"}
        status, _ = call("POST", f"{served.url}/webhook/alertmanager", {"alerts": [alert]},
                         token=token)
        assert status == 202
        wait_for(lambda: [r for r in call("GET", f"{served.url}/api/investigations",
                                          token=token)[1]["investigations"]
                          if r["status"] == "done"], 60, "the alert investigated")
        # The database is serve's: opening it from another process fails, as it always did.
        locked = subprocess.run([*casebook, "coverage", "--db", str(tmp_path / "results.duckdb")],
                                capture_output=True, text=True, timeout=60)
        assert locked.returncode == 2
        assert "read through its API instead" in " ".join(locked.stderr.split())

        report = subprocess.run(
            [*casebook, "coverage", "--url", served.url, "--markdown", str(tmp_path / "w.md"),
             "--html", str(tmp_path / "w.html")],
            capture_output=True, text=True, timeout=60, env={**os.environ,
                                                             "CASEBOOK_TOKEN": token})
        assert report.returncode == 0, report.stderr
        assert "Analyzer coverage" in report.stdout
        markdown = (tmp_path / "w.md").read_text()
        assert markdown.startswith("# Analyzer coverage, ")
        assert "| HighRequestVolume |" in markdown
        assert "<h2>Recurring causes</h2>" in (tmp_path / "w.html").read_text()
        status, data = call("GET", f"{served.url}/api/coverage?since=2000-01-01", token=token)
        assert status == 200 and data["investigations"] == 1
        assert data["alerts"][0]["name"] == "HighRequestVolume"
        assert call("GET", f"{served.url}/api/coverage?format=pdf", token=token) == (
            400, {"error": "format='pdf' is not known; use json, markdown or html"})
        refused = subprocess.run([*casebook, "coverage", "--url", served.url],
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2
        assert "answered 401" in refused.stderr and "--token or CASEBOOK_TOKEN" in refused.stderr
    finally:
        served.stop()
