"""casebook.yaml: `casebook config check` lists every problem where it is; serve reads the file
and lets flags and environment variables override it."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from casebook.executor.cli import app
from casebook.executor.config import ConfigError, check_config, load_config
from casebook.executor.errors import UserError

EXAMPLE = Path(__file__).parents[2] / "examples" / "casebook.yaml"
SECRETS = {
    "CASEBOOK_TOKEN": "t0ken",
    "CASEBOOK_GRAFANA_SECRET": "g",
    "CASEBOOK_WEBHOOK_SECRET": "w",
    "SLACK_WEBHOOK_URL": "https://chat.example/services/T/B/X",
    "PAGERDUTY_ROUTING_KEY": "R0UTING",
}
BROKEN = """\
telemetry: ./telemetry
sinks:
  - name: hook
    type: webhook
  - name: chat
    type: slak
    url: https://chat.example/x
  - name: hook
    type: markdown
    directory: out
routes:
  - team: [web]
    sinks: [hook, pager]
coverage: {every: week, at: "monday 9", sinks: [chat]}
links:
  trace: "https://tempo.example/{traceid}"
"""


@pytest.fixture
def secrets(monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def test_the_example_file_passes(secrets):
    result = CliRunner().invoke(app, ["config", "check", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert result.output == f"{EXAMPLE}: ok\n"
    config = load_config(EXAMPLE)
    assert [s.type for s in config.sinks] == ["webhook", "slack", "pagerduty", "markdown"]
    assert config.sink("inference-slack").url == SECRETS["SLACK_WEBHOOK_URL"]
    assert config.results.db == EXAMPLE.parent / "../.casebook/results.duckdb"
    assert config.sources[0].name == "prometheus"
    assert (config.coverage.weekday, config.coverage.hour_minute) == (0, (9, 0))


def test_every_problem_is_printed_with_its_location(tmp_path):
    path = tmp_path / "casebook.yaml"
    path.write_text(BROKEN)
    assert check_config(path) == [
        "sinks[0].url (line 3): field required for a webhook sink",
        "sinks[1].type (line 6): input should be 'webhook', 'slack', 'pagerduty' or 'markdown'",
        "sinks[2].name (line 8): sink name 'hook' is used 2 times; give each sink its own name",
        "routes[0].sinks[1] (line 13): no sink named 'pager' (sinks: hook, chat, hook)",
        "coverage.at (line 14): 'monday 9' is not a time like 'mon 09:00' or '09:00' (UTC)",
        "links.trace (line 16): unknown placeholder(s) traceid; use {name} (the trace's name) "
        "or {trace_id}",
    ]
    result = CliRunner().invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 1
    assert f"{path}: sinks[0].url (line 3): field required for a webhook sink" in result.output
    assert result.output.endswith(f"6 problem(s) in {path}\n")


def test_unreadable_yaml_and_missing_variables_say_where(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    bad = tmp_path / "bad.yaml"
    bad.write_text("sinks:\n  - name: a\n    type: [webhook\n")
    [problem] = check_config(bad)
    assert problem.startswith("line 4, column 1: not valid YAML")
    unset = tmp_path / "unset.yaml"
    unset.write_text("sinks:\n  - {name: a, type: webhook, url: 'https://h.example', "
                     "secret: '${NO_SUCH_SECRET}'}\n")
    assert check_config(unset) == [
        "sinks[0].secret (line 2): environment variable NO_SUCH_SECRET is not set; export it "
        "or write the value in the file"
    ]
    assert check_config(tmp_path / "absent.yaml")[0].startswith("cannot read the file")
    with pytest.raises(ConfigError, match="casebook config check"):
        load_config(unset)


def test_serve_takes_the_file_and_flags_and_variables_override_it(tmp_path, monkeypatch):
    path = tmp_path / "casebook.yaml"
    path.write_text(
        "telemetry: store\nserver: {host: 127.0.0.2, port: 9100, public_url: https://cb.example}"
        "\nresults: {db: data/results.duckdb}\nauth: {token: from-file}\n"
        "runtime: {local: true, deadline_s: 42}\npacks: [team_pack_a]\n"
    )
    seen = {}

    def opened(config):
        seen["config"] = config
        raise UserError("stopped before starting")

    monkeypatch.setattr("casebook.executor.intake.service.IntakeService.open", opened)
    monkeypatch.setenv("CASEBOOK_TOKEN", "from-env")
    result = CliRunner().invoke(
        app, ["serve", "--config", str(path), "--port", "9200", "--pack", "team_pack_b"])
    assert "stopped before starting" in result.output
    config = seen["config"]
    assert config.telemetry == tmp_path / "store"
    assert config.db == tmp_path / "data/results.duckdb"
    assert (config.host, config.port) == ("127.0.0.2", 9200)
    assert config.token == "from-env"
    assert (config.local, config.deadline_s) == (True, 42)
    assert config.packs == ["team_pack_a", "team_pack_b"]
    assert config.base_url == "https://cb.example"
    assert config.settings.server.port == 9100
