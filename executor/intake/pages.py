"""The service's own HTML: the investigation list, and the small pages for waiting or missing
investigations. Each investigation's report comes from casebook.executor.reports.html."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:72rem;
padding:0 1rem;color:#1f2328;background:#fff}
h1{font-size:1.4rem;margin:0 0 .25rem}p.sub{color:#59636e;margin:0 0 1.5rem}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.45rem .6rem;
border-bottom:1px solid #d1d9e0;vertical-align:top}th{font-weight:600;color:#59636e;font-size:.85rem}
a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}
.status{font-size:.8rem;padding:.1rem .45rem;border-radius:1rem;background:#eef1f4}
.status.done{background:#dafbe1}.status.partial{background:#fff8c5}.status.failed{background:#ffebe9}
.status.running,.status.queued{background:#ddf4ff}
.muted{color:#59636e}button{font:inherit;font-size:.8rem;padding:.15rem .5rem;margin-right:.25rem;
border:1px solid #d1d9e0;border-radius:.3rem;background:#f6f8fa;cursor:pointer}
td.feedback{white-space:nowrap}button:disabled{cursor:default;opacity:.6}.thanks{font-size:.8rem;color:#1a7f37}
h2{font-size:1.05rem;margin:2rem 0 .5rem}
"""

# Buttons post JSON to the feedback endpoint, the same call the report pages make.
FEEDBACK_SCRIPT = """
document.querySelectorAll("button[data-feedback]").forEach(function (button) {
  button.addEventListener("click", function () {
    var cell = button.parentElement;
    cell.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    fetch(button.dataset.feedback, {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({helpful: button.dataset.helpful === "true"})})
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        cell.innerHTML = '<span class="thanks">Recorded: ' +
          (button.dataset.helpful === "true" ? "helpful" : "not helpful") + "</span>";
      })
      .catch(function (error) {
        cell.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
        cell.insertAdjacentText("beforeend", " Not recorded (" + error.message + ")");
      });
  });
});
"""


def _page(title: str, body: str, refresh_s: int | None = None, script: str = "") -> str:
    refresh = f'<meta http-equiv="refresh" content="{refresh_s}">' if refresh_s else ""
    tail = f"<script>{script}</script>" if script else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">{refresh}'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}{tail}</body></html>"
    )


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S} UTC"
    if isinstance(value, str) and value:
        return value.replace("T", " ")[:19] + " UTC"
    return ""


def _cause(row: Mapping[str, Any]) -> str:
    if not row.get("entity_name"):
        return '<span class="muted">no cause found</span>'
    return (
        f"{escape(str(row.get('category') or ''))} on {escape(str(row['entity_kind']))} "
        f"<b>{escape(str(row['entity_name']))}</b>"
    )


def investigations_page(
    rows: Sequence[Mapping[str, Any]],
    pending: Sequence[Mapping[str, Any]],
    recorded: Mapping[str, Mapping[str, Any]],
    queue_depth: int,
) -> str:
    """The list of investigations, newest first, with feedback buttons."""
    lines = []
    for row in rows:
        ident = escape(str(row["id"]))
        marks = recorded.get(str(row["id"]), {})
        resolved = _when(marks.get("resolved_at")) if marks.get("resolved_at") else ""
        repeats = marks.get("repeats") or 0
        again = f'<br><span class="muted">fired again {repeats}×</span>' if repeats else ""
        status = escape(str(row.get("status") or ""))
        feedback = (
            f'<button data-feedback="/api/investigations/{ident}/feedback" '
            f'data-helpful="true">Helpful</button><button data-feedback='
            f'"/api/investigations/{ident}/feedback" data-helpful="false">Not helpful'
            "</button>"
        )
        lines.append(
            f'<tr id="{ident}"><td><a href="/investigations/{ident}">'
            f"{escape(str(row.get('alert_name') or ''))}</a><br>"
            f'<span class="muted">{ident}</span></td>'
            f'<td><span class="status {status}">{status}</span></td>'
            f"<td>{_cause(row)}</td><td>{row.get('findings') or 0}</td>"
            f"<td>{_when(row.get('created_at'))}</td><td>{resolved}{again}</td>"
            f'<td class="feedback">{feedback}</td></tr>'
        )
    table = (
        (
            "<table><thead><tr><th>Alert</th><th>Status</th><th>Top cause</th><th>Findings</th>"
            "<th>Started</th><th>Resolved</th><th>Feedback</th></tr></thead><tbody>"
            + "".join(lines)
            + "</tbody></table>"
        )
        if lines
        else (
            '<p class="muted">No investigations yet. Point an Alertmanager webhook receiver at '
            "<code>/webhook/alertmanager</code>, or POST an alert to "
            "<code>/api/investigations</code>.</p>"
        )
    )
    waiting = ""
    if pending:
        items = "".join(
            f'<tr><td>{escape(str(p["alert_name"]))}<br><span class="muted">'
            f'{escape(str(p["id"]))}</span></td><td><span class="status {escape(p["state"])}">'
            f"{escape(p['state'])}</span></td><td>{_when(p['received_at'])}</td></tr>"
            for p in pending
        )
        waiting = (
            "<h2>Waiting</h2><table><thead><tr><th>Alert</th><th>State</th>"
            f"<th>Received</th></tr></thead><tbody>{items}</tbody></table>"
        )
    body = (
        f'<h1>Investigations</h1><p class="sub">{len(rows)} shown · {queue_depth} '
        f'alert(s) waiting · <a href="/metrics">metrics</a></p>{waiting}{table}'
    )
    return _page(
        "casebook investigations",
        body,
        refresh_s=5 if pending else None,
        script=FEEDBACK_SCRIPT if lines else "",
    )


def waiting_page(investigation_id: str, state: str) -> str:
    """What /investigations/{id} shows until the report exists."""
    body = (
        f"<h1>Investigation {escape(investigation_id)} is {escape(state)}</h1>"
        '<p class="sub">This page reloads every 2 seconds until the report is ready. '
        '<a href="/">All investigations</a></p>'
    )
    return _page(f"{investigation_id} ({state})", body, refresh_s=2)


def message_page(title: str, message: str) -> str:
    """A plain page for errors (not found, unauthorized)."""
    body = (
        f'<h1>{escape(title)}</h1><p class="sub">{escape(message)}</p>'
        '<p><a href="/">All investigations</a></p>'
    )
    return _page(title, body)
