from pathlib import Path

import pytest

from casebook.executor.telemetry_doc import BEGIN, END, reads_table, with_table
from casebook.sdk import Finding, analyzer
from casebook.sdk.analyzer import AnalyzerDefinitionError, spec_of
from casebook.sdk.registry import Registry, load_registry

PAGE = Path(__file__).parents[2] / "docs" / "telemetry.md"


def test_the_page_lists_exactly_what_the_built_in_analyzers_declare():
    table = reads_table(load_registry(entry_point_packs=False))
    page = PAGE.read_text()
    assert with_table(page, table) == page, (
        "docs/telemetry.md is out of date: run "
        "`python -m casebook.executor.telemetry_doc docs/telemetry.md`")


def test_every_built_in_analyzer_declares_what_it_reads():
    silent = [s.name for s in load_registry(entry_point_packs=False)
              if not s.reads and not s.upstreams and not s.fan_out]
    assert silent == []


def test_the_table_names_each_read_once_with_its_readers():
    @analyzer(reads=["metrics:disk_usage_ratio", "labels:pod"])
    def full(service: str) -> Finding | None:
        return None

    @analyzer(reads=["labels:pod", "events"])
    def other(service: str) -> Finding | None:
        return None

    table = reads_table(Registry([spec_of(full), spec_of(other)]))
    assert table.splitlines()[2:] == [
        "| `pod` | metric label | `full`, `other` |",
        "| `disk_usage_ratio` | metric name | `full` |",
        "| `events` | table | `other` |",
    ]
    assert with_table(f"a\n{BEGIN}\nold\n{END}\nb", "T") == f"a\n{BEGIN}\nT\n{END}\nb"


def test_a_read_that_is_not_a_declaration_is_a_definition_error():
    with pytest.raises(AnalyzerDefinitionError, match="reads entry 'metrics: cpu'"):
        @analyzer(reads=["metrics: cpu"])
        def broken(service: str) -> Finding | None:
            return None
