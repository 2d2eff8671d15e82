"""`casebook analyzers new`: an analyzer, its test and an example incident, in an installable pack."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from string import Template

from casebook.executor.errors import UserError
from casebook.executor.scaffold.kinds import KINDS, Kind

EXAMPLE_START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
EXAMPLE_SERVICE = "checkout"

PYPROJECT = '''[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "$distribution"
version = "0.1.0"
description = "casebook analyzers of $owner"
requires-python = ">=3.11"
dependencies = ["casebook"]

# This entry point is how casebook finds the pack once it is installed (pip install -e .).
[project.entry-points."casebook.analyzers"]
$package = "$package"

[tool.setuptools]
packages = ["$package"]
'''

PACKAGE_INIT = '''"""Analyzers of $owner. casebook loads every module of this package."""

from casebook.sdk import Pack

# The owner is shown in reports and groups the coverage report's to-do lists; categories=[...]
# adds cause categories beyond the built-in ones.
PACK = Pack(owner="$owner", version="0.1.0")
'''

README = '''# $package

casebook analyzers owned by $owner. Each analyzer has a test in `tests/` and an example incident
in `examples/` on which it finds its cause.

    pip install -e .                          # registers the pack (entry point casebook.analyzers)
    pytest tests                              # the analyzers' tests
    casebook analyzers check --pack $package  # definitions, declared data needs, categories
    casebook backtest examples --pack $package --local

Add an analyzer with `casebook analyzers new NAME --dir . --kind KIND`
(kinds: $kinds).
'''


@dataclass
class Scaffold:
    """What `analyzers new` wrote and what to run next."""

    written: list[Path]
    package: str
    directory: Path
    created_pack: bool

    def next_steps(self, name: str) -> list[str]:
        d = self.directory
        case = d / "examples" / name
        steps = []
        if self.created_pack:
            steps.append(f"pip install -e {d}")
        steps += [
            f"pytest {d / 'tests'}",
            f"casebook analyzers check --pack {self.package}",
            f"casebook ingest {case / 'telemetry'}/*.jsonl --telemetry {case / 'store'}",
            f"casebook investigate {case / 'alert.json'} --telemetry {case / 'store'} "
            f"--pack {self.package} --local",
        ]
        return steps


def write_analyzer(name: str, directory: Path, *, kind: str = "log-pattern",
                   owner: str | None = None, force: bool = False) -> Scaffold:
    """Write NAME (module, test, example incident) into the pack at directory, making the pack
    first when there is none; refuse to overwrite unless forced."""
    template = KINDS.get(kind)
    if template is None:
        raise UserError(f"unknown kind '{kind}'; kinds: {', '.join(KINDS)}")
    directory = directory.resolve()
    package, created = _pack_at(directory, owner, force)
    cls = "".join(part.capitalize() for part in name.split("_"))
    values = {"name": name, "cls": cls, "package": package, "alertname": template.alertname,
              "title": name.replace("_", " ").capitalize()}
    case = directory / "examples" / name
    files = {
        directory / package / f"{name}.py": Template(template.module).substitute(values),
        directory / "tests" / f"test_{name}.py": Template(template.test).substitute(values),
        **_example_case(case, template),
    }
    existing = [p for p in files if p.exists()]
    if existing and not force:
        raise UserError(f"{existing[0]} already exists; pick another name or pass --force")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    written = list(files)
    if created:
        written = [directory / "pyproject.toml", directory / package / "__init__.py",
                   directory / "README.md", *written]
    return Scaffold(written, package, directory, created)


def _pack_at(directory: Path, owner: str | None, force: bool) -> tuple[str, bool]:
    """The pack's package name, making the pack (pyproject, package, README) when absent."""
    pyproject = directory / "pyproject.toml"
    if pyproject.exists():
        try:
            points = tomllib.loads(pyproject.read_text())["project"]["entry-points"][
                "casebook.analyzers"]
        except (KeyError, tomllib.TOMLDecodeError):
            raise UserError(
                f"{pyproject} declares no `casebook.analyzers` entry point, so it is not a "
                "casebook pack; pass --dir with a new directory or a pack's directory") from None
        return next(iter(points.values())).split(":")[0], False
    package = re.sub(r"[^a-z0-9_]", "_", directory.name.lower()).strip("_") or "analyzers"
    if package[0].isdigit():
        package = f"pack_{package}"
    owner = owner or f"{package}-owners"
    values = {"package": package, "owner": owner, "distribution": package.replace("_", "-"),
              "kinds": ", ".join(KINDS)}
    (directory / package).mkdir(parents=True, exist_ok=True)
    (directory / "tests").mkdir(exist_ok=True)
    for path, text in ((pyproject, PYPROJECT), (directory / package / "__init__.py", PACKAGE_INIT),
                       (directory / "README.md", README)):
        if path.exists() and not force:
            raise UserError(f"{path} already exists; pass --force to overwrite it")
        path.write_text(Template(text).substitute(values))
    return package, True


def _example_case(case: Path, kind: Kind) -> dict[Path, str]:
    """An example incident (a backtest case directory) on which the analyzer finds its cause."""
    alert = {"name": kind.alertname, "labels": {"alertname": kind.alertname,
                                                 "service": EXAMPLE_SERVICE},
             "starts_at": EXAMPLE_START.isoformat()}
    expected = {"causes": [{"entity": {"kind": "service",
                                       "name": kind.cause_service(EXAMPLE_SERVICE)},
                            "category": kind.category}]}
    files = {case / "alert.json": json.dumps(alert, indent=2) + "\n",
             case / "expected.json": json.dumps(expected, indent=2) + "\n"}
    for table, rows in kind.sample(EXAMPLE_START, EXAMPLE_SERVICE).items():
        files[case / "telemetry" / f"{table}.jsonl"] = "".join(
            json.dumps(row) + "\n" for row in rows)
    return files
