"""The weekly coverage report: which alerts analyzers cover, which analyzers earn their keep,
and what broke most, computed from the results database."""

from casebook.executor.coverage.report import build_report, write_coverage

__all__ = ["build_report", "write_coverage"]
