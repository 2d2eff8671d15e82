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


def test_new_writes_an_analyzer_and_a_test_that_pass(tmp_path):
    import subprocess
    import sys

    result = CliRunner().invoke(app, ["analyzers", "new", "error_jump", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "error_jump.py").exists() and (tmp_path / "test_error_jump.py").exists()
    again = CliRunner().invoke(app, ["analyzers", "new", "error_jump", "--dir", str(tmp_path)])
    assert again.exit_code == 2
    assert "already exists; pick another name or pass --force" in again.output
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(tmp_path / "test_error_jump.py")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
