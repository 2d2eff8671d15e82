"""The HTML coverage report in a real browser: headless Chromium lays it out and screenshots it."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from test_coverage import REGISTRY, WEEK, hand_store

sys.path.insert(0, str(Path(__file__).parents[1] / "fakes"))
from browser import needs_chromium, run_chromium  # noqa: E402

from casebook.executor.coverage.html import render_html
from casebook.executor.coverage.report import build_report
from casebook.executor.results import ResultsStore

WIDTH = 1280
SECTIONS = [
    "glance",
    "figures",
    "alerts",
    "uncovered",
    "analyzers",
    "causes",
    "recurring",
    "feedback",
    "narration",
    "definitions",
]

# Measures what the browser laid out and writes it into the page, for --dump-dom to return.
PROBE = """<script>
const box = e => { const r = e.getBoundingClientRect(); return [r.top, r.width, r.height]; };
const out = {
  sections: [...document.querySelectorAll('section')].map(s => [s.id, ...box(s)]),
  charts: [...document.querySelectorAll('svg')].map(s => box(s).slice(1)),
  scrollWidth: document.documentElement.scrollWidth,
  headings: [...document.querySelectorAll('h2, summary')].map(h => h.textContent),
};
const pre = document.createElement('pre'); pre.id = 'probe';
pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
</script>"""

pytestmark = needs_chromium


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_chromium(tmp_path / "profile", *args, width=WIDTH, height=2600)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("html")
    db = hand_store(tmp / "results.duckdb")
    with ResultsStore(db, read_only=True) as store:
        report = build_report(store.connection, WEEK, registry=REGISTRY, database=str(db))
    path = tmp / "coverage.html"
    path.write_text(render_html(report))
    return path


def test_the_browser_lays_out_every_section_in_order_with_its_charts(page, tmp_path):
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = chromium(tmp_path, "--dump-dom", probe.as_uri()).stdout
    layout = json.loads(
        dom.split('<pre id="probe">')[1]
        .split("</pre>")[0]
        .replace("&quot;", '"')
        .replace("&amp;", "&")
    )
    assert [s[0] for s in layout["sections"]] == SECTIONS
    tops = [s[1] for s in layout["sections"]]
    assert tops == sorted(tops)
    assert all(height > 40 for _, _, _, height in layout["sections"])
    assert len(layout["charts"]) == 4
    assert all(width > 500 and height > 50 for width, height in layout["charts"])
    assert layout["scrollWidth"] <= WIDTH  # nothing spills sideways
    assert layout["headings"][:4] == [
        "Which alerts should we write analyzers for next?",
        "Which analyzers should we fix or delete?",
        "What broke most this period?",
        "Headline figures, week over week",
    ]


def test_the_screenshot_is_a_full_width_page_with_content(page, tmp_path):
    shot = tmp_path / "coverage.png"
    chromium(tmp_path, f"--screenshot={shot}", page.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (WIDTH, 2600)
    assert len(data) > 60_000  # a blank or unstyled page compresses to a few kilobytes
