import re
import sys
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).parents[1] / "fakes"))

from investigation_records import investigation  # noqa: E402

from casebook.executor.narration import narrate_deterministic  # noqa: E402
from casebook.executor.reports.html import render_html  # noqa: E402
from casebook.executor.reports.markdown import render_markdown  # noqa: E402
from casebook.executor.reports.terminal import render  # noqa: E402


def narrated(reason=None):
    record = investigation()
    narrative = narrate_deterministic(record)
    if reason:
        narrative = narrative.model_copy(
            update={"fallback_reason": reason, "model": "claude-sonnet-5-5"}
        )
    record.narrative = narrative
    return record


def test_the_page_reads_in_the_order_a_person_needs_it():
    page = render_html(narrated())
    headings = re.findall(r"<h2[^>]*>(.*?)\s*(?:<span|</h2>)", page)
    assert headings == [
        "What happened",
        "Probable causes",
        "Next steps",
        "Hypotheses",
        "Chain of findings",
        "Findings and evidence",
        "Invocations",
    ]
    assert page.startswith("<!doctype html>")
    assert (
        "<title>CheckoutErrors: sessions-cache hit ratio collapsed — the most likely cause "
        "of CheckoutErrors on checkout.</title>"
    ) in page


def test_every_sentence_is_one_click_from_its_findings():
    page = render_html(narrated())
    assert (
        'sessions-cache hit ratio fell from 0.91 to 0.12 at 12:02 UTC.<span class="cites">'
        '<a href="#F1" title="finding F1">F1</a></span>'
    ) in page
    targets = set(re.findall(r'href="#([^"]+)"', page))
    anchors = set(re.findall(r' id="([^"]+)"', page))
    assert targets == {"F1", "F2", "F3"} and targets <= anchors


def test_the_page_is_self_contained():
    page = render_html(narrated())
    for external in ("<script", "<link", "src=", "url(", "@import"):
        assert external not in page
    assert set(re.findall(r"https?://[^\s\"'<]+", page)) == {"http://www.w3.org/2000/svg"}


def test_telemetry_text_is_escaped_and_its_secrets_redacted():
    page = render_html(narrated())
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "sk-ant-api03" not in page and "alice@example.com" not in page
    assert (
        "card declined for [redacted email] &lt;script&gt;alert(1)&lt;/script&gt; "
        "token=[redacted anthropic-key]"
    ) in page


def test_causes_chain_evidence_and_queries_are_shown():
    page = render_html(narrated())
    assert (
        '<span class="rank">#1</span><b>CACHE</b> <span class="meta">on service '
        "sessions-cache</span>"
    ) in page
    assert (
        '<li><a href="#F2"><b>F2</b></a> Traffic to checkout up 3.1x<span class="tag">'
        'traffic_surge</span><span class="tag cause">cause #1</span><ul><li><a href="#F1">'
        '<b>F1</b></a> sessions-cache hit ratio '
        'collapsed<span class="tag">cache_collapse</span><span class="tag cause">cause #1'
        "</span></li></ul></li>"
    ) in page
    assert (
        "<details><summary>Query that produced it</summary><pre><code>select minute, "
        "avg(value) from metrics where name = ? and service = ?</code></pre>"
    ) in page
    # The key chart (cache hit ratio against requests) at the top, then one per series evidence.
    assert page.count('<svg class="chart"') == 3
    assert "checkout requests per minute (right axis)" in page
    assert "onset 12:02" in page


def test_a_fallback_is_announced_and_the_narrator_recorded():
    assert 'class="banner"' not in render_html(narrated())
    page = render_html(
        narrated("The Claude API rate-limited the request (HTTP 429) after 3 attempts.")
    )
    assert (
        '<div class="banner" role="note"><b>The deterministic narrator wrote this summary.'
        "</b> The Claude API rate-limited the request (HTTP 429) after 3 attempts.</div>"
    ) in page
    assert (
        "Written by the deterministic narrator · every sentence verified against its findings"
    ) in page


def test_feedback_forms_appear_only_when_the_service_asks_for_them():
    assert "<form" not in render_html(narrated())
    page = render_html(narrated(), feedback_url="/api/feedback")
    forms = re.findall(
        r'<form class="feedback" method="post" action="/api/feedback">.*?</form>', page
    )
    assert len(forms) == 4
    assert (
        '<input type="hidden" name="finding_id" value="F3">'
        '<button name="helpful" value="true">Helpful</button>'
    ) in page
    assert "Was this investigation helpful?" in page


def test_an_investigation_without_findings_or_narrative_still_renders():
    record = investigation(with_findings=False)
    page = render_html(record)
    assert "No narrative was written for this investigation." in page
    assert "No probable cause: no analyzer found anything notable." in page
    assert (
        "1 invocation(s) did not finish (everything else completed)" in page
        and "timed out after 30 s" in page
    )


def test_markdown_links_each_sentence_and_keeps_telemetry_inert():
    record = narrated("Claude was not asked: the daily token budget is spent.")
    record.notes.append("<img src=x onerror=alert(1)> in a note")
    text = render_markdown(record)
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [
        "## What happened",
        "## Probable causes",
        "## Next steps",
        "## Hypotheses (suggested by the findings, not established)",
        "## Chain of findings",
        "## Findings and evidence",
        "## Invocations",
    ]
    assert (
        "> **The deterministic narrator wrote this summary.** Claude was not asked: the "
        "daily token budget is spent."
    ) in text
    assert "- Behind it, sessions-cache hit ratio fell from 0.91 to 0.12 at 12:02 UTC. [F1](#F1)" in text
    assert '### <a id="F3"></a>F3 · PaymentDeclinedError on checkout' in text
    assert (
        "| 1 | **cache** sessions-cache hit ratio collapsed | service `sessions-cache` | "
        "0.94 | [F1](#F1), [F2](#F2) |" in text
    )
    assert "- note: &lt;img src=x onerror=alert(1)&gt; in a note" in text
    assert "<img" not in text and "<script" not in text
    assert "alice@example.com" not in text and "card declined for [redacted email]" in text
    assert ("- [F2](#F2) Traffic to checkout up 3.1x (`traffic_surge`) — **cause #1**\n  - [F1](#F1)"
            in text)
    assert re.search(
        r"- `[▁▂▃▄▅▆▇█]+` sessions-cache hit ratio: 0\.91 → 0\.12 \(11:10–12:24\)", text
    )


def test_terminal_report_leads_with_what_happened():
    console = Console(record=True, width=100)
    render(narrated("The Claude API failed (HTTP 500) after 3 attempts."), console)
    text = console.export_text()
    assert text.index(
        "The deterministic narrator wrote this summary. The Claude API failed "
        "(HTTP 500) after 3 attempts."
    ) < text.index("What happened")
    assert (
        text.index("What happened")
        < text.index("Probable causes")
        < text.index("Next steps")
        < text.index("Hypotheses (not established)")
        < text.index("Chain of findings")
    )
    assert "1. Warm sessions-cache before adding capacity. [F1]" in text


def test_each_finding_names_the_team_that_owns_its_analyzer():
    record = investigation()
    next(f for f in record.findings if f.analyzer == "cache_collapse").owner = "cache-sre"
    assert "· `cache_collapse` · owner cache-sre" in render_markdown(record)
    assert '<span class="tag owner">owner cache-sre</span>' in render_html(record)
    console = Console(record=True, width=160)
    render(record, console)
    assert "· cache-sre]" in console.export_text()
