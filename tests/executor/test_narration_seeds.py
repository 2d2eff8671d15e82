"""The seed incidents, narrated: every sentence that reaches their reports rests on its findings."""

import duckdb
import pytest

from casebook.examples.seeds import SCENARIOS
from casebook.executor.alerts import load_alerts
from casebook.executor.investigation import run_investigation
from casebook.executor.narration import narrate, verify
from casebook.executor.reports.html import render_html
from casebook.executor.runtime.local import LocalRuntime
from casebook.sdk.registry import load_registry
from casebook.sdk.telemetry import TelemetrySource


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_seed_narratives_verify_and_link_every_sentence(scenario, tmp_path, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    case = SCENARIOS[scenario].generate(tmp_path / scenario)
    con = duckdb.connect()
    con.execute("create schema raw")
    for table in (case / "telemetry").glob("*.parquet"):
        con.execute(f"create view raw.{table.stem} as select * from read_parquet('{table}')")
    record = run_investigation(
        load_alerts(case / "alert.json")[0],
        registry=load_registry(entry_point_packs=False).checked(),
        source=TelemetrySource(con, readable=[str(case / "telemetry")]),
        runtime=LocalRuntime(),
    )
    record.narrative = narrate(record)

    assert record.narrative.narrator == "deterministic" and record.narrative.verified
    assert verify(record.narrative.sentences, record) == []
    headline = record.narrative.sentences[0]
    assert headline.kind == "headline" and headline.finding_ids == [record.causes[0].finding_ids[0]]
    assert headline.text.endswith(
        f"the most likely cause of {record.alert.name} on {record.alert.service}."
    )
    page = render_html(record)
    for sentence in record.narrative.sentences:
        for fid in sentence.finding_ids:
            assert f'href="#{fid}"' in page and f'id="{fid}"' in page
