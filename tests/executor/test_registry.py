from pathlib import Path

from typer.testing import CliRunner

from casebook.executor.cli import app
from casebook.sdk.registry import Registry

PACKS = Path(__file__).parents[1] / "fixtures" / "packs"


def test_check_reports_every_problem_of_a_broken_module(monkeypatch):
    monkeypatch.syspath_prepend(str(PACKS))
    result = CliRunner().invoke(app, ["analyzers", "check", "--pack", "broken_pack",
                                      "--no-builtin"])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert "5 problem(s) in analyzer definitions:" in out
    assert "parameter 'telemetry' has no type annotation" in out
    assert "match['alertname'] is int, not a string or regex" in out
    assert "it returns <class 'int'>, not a Finding subclass" in out
    assert "timeout_s=0 is not a positive number of seconds" in out
    assert ("parameter 'latency_spike: Slow' names no analyzer; known analyzers: reads_missing"
            in out)


def test_unknown_pack_is_named(monkeypatch):
    result = CliRunner().invoke(app, ["analyzers", "check", "--pack", "no_such_pack",
                                      "--no-builtin"])
    assert result.exit_code == 1
    assert "the module 'no_such_pack' cannot be imported" in " ".join(result.output.split())


def test_builtin_pack_is_clean_and_listed():
    result = CliRunner().invoke(app, ["analyzers", "check"])
    assert result.exit_code == 0, result.output
    assert "analyzers OK" in result.output
    listing = CliRunner().invoke(app, ["analyzers", "list"])
    assert "cache_collapse" in listing.output and "account_cohort" in listing.output


def test_cycles_are_reported():
    from casebook.sdk import Finding, analyzer
    from casebook.sdk.analyzer import spec_of

    class A(Finding):
        pass

    @analyzer
    def first(second: A | None) -> A | None: ...

    @analyzer
    def second(first: A | None) -> A | None: ...

    registry = Registry([spec_of(first), spec_of(second)])
    problems = [str(p) for p in registry.check()]
    assert any("analyzers depend on each other in a cycle: first -> second -> first" in p
               for p in problems)


def test_new_makes_a_pack_and_refuses_to_overwrite(tmp_path):
    pack = tmp_path / "storage_pack"
    result = CliRunner().invoke(app, ["analyzers", "new", "error_jump", "--dir", str(pack),
                                      "--owner", "storage-sre"])
    assert result.exit_code == 0, result.output
    for path in ("pyproject.toml", "README.md", "storage_pack/__init__.py",
                 "storage_pack/error_jump.py", "tests/test_error_jump.py",
                 "examples/error_jump/alert.json", "examples/error_jump/expected.json"):
        assert (pack / path).exists(), path
    assert '[project.entry-points."casebook.analyzers"]' in (pack / "pyproject.toml").read_text()
    assert 'PACK = Pack(owner="storage-sre"' in (pack / "storage_pack/__init__.py").read_text()
    assert f"  pip install -e {pack}" in result.output
    again = CliRunner().invoke(app, ["analyzers", "new", "error_jump", "--dir", str(pack)])
    assert again.exit_code == 2
    assert "already exists; pick another name or pass --force" in again.output
    second = CliRunner().invoke(app, ["analyzers", "new", "cpu_high", "--dir", str(pack),
                                      "--kind", "metric-threshold"])
    assert second.exit_code == 0, second.output
    assert "pip install" not in second.output  # the pack exists: only the new analyzer's steps
    unknown = CliRunner().invoke(app, ["analyzers", "new", "x", "--dir", str(pack),
                                       "--kind", "magic"])
    assert "unknown kind 'magic'; kinds: metric-threshold, log-pattern" in unknown.output


def test_pack_given_as_a_path_loads_with_its_owner(tmp_path):
    pack = tmp_path / "payments_pack"
    CliRunner().invoke(app, ["analyzers", "new", "deploy_before_alert", "--dir", str(pack),
                             "--kind", "change", "--owner", "payments-sre"])
    registry = Registry()
    registry.load(str(pack))
    assert registry.check() == []
    spec = registry["deploy_before_alert"]
    assert spec.owner == "payments-sre"
    assert [str(need) for need in spec.reads] == ["events"]
    listing = CliRunner().invoke(app, ["analyzers", "list", "--pack", str(pack)])
    assert "payments-sre" in listing.output


def test_check_names_sql_reads_that_reads_does_not_declare(tmp_path):
    (tmp_path / "underdeclared.py").write_text(
        "from casebook.sdk import Finding, Telemetry, analyzer\n\n\n"
        "@analyzer(reads=['logs'])\n"
        "def error_spans(telemetry: Telemetry) -> Finding | None:\n"
        "    telemetry.sql(\"select count(*) from spans where status = 'error'\")\n"
        "    return None\n")
    result = CliRunner().invoke(app, ["analyzers", "check", "--no-builtin",
                                      "--pack", str(tmp_path / "underdeclared.py")])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert "its SQL reads spans, which reads= does not declare (declared: logs)" in out
    assert "fix: add 'spans' to reads=" in out
