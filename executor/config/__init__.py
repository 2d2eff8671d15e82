"""`casebook.yaml`: reading and checking the configuration file.

    config = load_config("casebook.yaml")      # raises ConfigError listing every problem
    problems = check_config("casebook.yaml")   # ["sinks[1].url: field required (line 12)", ...]

String values may name environment variables as `${NAME}`, so secrets stay out of the file.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from casebook.executor.config.schema import CasebookFile, CoverageSchedule, Route, Sink
from casebook.executor.errors import UserError

ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

__all__ = [
    "CasebookFile",
    "ConfigError",
    "CoverageSchedule",
    "Route",
    "Sink",
    "check_config",
    "load_config",
]


class ConfigError(UserError):
    """A configuration file with problems; `problems` lists each with its location."""

    def __init__(self, path: Path, problems: list[str]):
        self.path = path
        self.problems = problems
        listed = "\n".join(f"  {p}" for p in problems)
        super().__init__(
            f"{path} has {len(problems)} problem(s):\n{listed}\n"
            f"`casebook config check {path}` prints them again once fixed"
        )


SCHEME_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


def check_config(path: str | Path) -> list[str]:
    """Every problem of the file, each starting with its location; [] when it is valid."""
    try:
        load_config(path)
    except ConfigError as exc:
        return exc.problems
    return []


def load_config(path: str | Path) -> CasebookFile:
    """The validated configuration; relative paths in it are relative to the file's folder."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(path, [f"cannot read the file: {exc.strerror or exc}"]) from None
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(path, [f"{where}not valid YAML ({problem})"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, [f"the file must hold a mapping (key: value), found {type(data).__name__}"])
    problems: list[str] = []
    data = _expand(data, (), problems, root)
    try:
        config = CasebookFile.model_validate(data)
    except ValidationError as exc:
        problems += [_describe(error, root) for error in exc.errors()]
        config = None
    problems += _references(data, root)
    if problems or config is None:
        raise ConfigError(path, sorted(problems, key=_line_number))
    return _anchored(config, path.parent)


def _expand(value: Any, where: tuple[Any, ...], problems: list[str], root) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, (*where, k), problems, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, (*where, i), problems, root) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            problems.append(
                f"{_location(where, root)}: environment variable {name} is not set; export it "
                "or write the value in the file"
            )
            return ""
        return os.environ[name]

    return ENV_REFERENCE.sub(substitute, value)


def _describe(error: dict[str, Any], root) -> str:
    where = tuple(p for p in error.get("loc", ()) if not _is_union_tag(p))
    message = str(error.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    # Validators name the key they are about first ("url: field required ..."): it joins the
    # location, so every problem reads `sinks[1].url: ...`.
    named = re.match(r"([A-Za-z_]\w*): (.*)", message, re.S)
    if named:
        where, message = (*where, named.group(1)), named.group(2)
    message = message[:1].lower() + message[1:]
    return f"{_location(where, root)}: {message}"


def _is_union_tag(part: Any) -> bool:
    # pydantic names the member of a discriminated union in the location: sources[0].prometheus.url
    return part == "prometheus"


def _references(data: dict[str, Any], root) -> list[str]:
    """Names that must refer to a sink (checked on the raw data, so they are reported together
    with every other problem)."""
    problems = []
    sinks = [s for s in data.get("sinks") or [] if isinstance(s, dict)] if isinstance(
        data.get("sinks"), list) else []
    names = [str(s.get("name")) for s in sinks]
    types = {str(s.get("name")): s.get("type") for s in sinks}
    for name, count in Counter(names).items():
        if count > 1:
            index = len(names) - 1 - names[::-1].index(name)
            problems.append(
                f"{_location(('sinks', index, 'name'), root)}: sink name {name!r} is used "
                f"{count} times; give each sink its own name"
            )
    known = ", ".join(names) or "none are defined"

    def check(where: tuple[Any, ...], wanted: Any, coverage: bool = False) -> None:
        for i, name in enumerate(wanted if isinstance(wanted, list) else []):
            if str(name) not in names:
                problems.append(
                    f"{_location((*where, i), root)}: no sink named {name!r} (sinks: {known})"
                )
            elif coverage and types.get(str(name)) == "pagerduty":
                problems.append(
                    f"{_location((*where, i), root)}: {name!r} is a pagerduty sink; a weekly "
                    "report is not an incident, send it to a webhook, slack or markdown sink"
                )

    routes = data.get("routes")
    for r, route in enumerate(routes if isinstance(routes, list) else []):
        if isinstance(route, dict):
            check(("routes", r, "sinks"), route.get("sinks"))
    coverage = data.get("coverage")
    if isinstance(coverage, dict):
        check(("coverage", "sinks"), coverage.get("sinks"), coverage=True)
    return problems


def _line_number(problem: str) -> int:
    """Problems are listed in the order of the file."""
    found = re.search(r"\(line (\d+)\)", problem)
    return int(found.group(1)) if found else 0


def _location(where: tuple[Any, ...], root) -> str:
    """`sinks[1].url (line 12)`: the path as written, and where in the file it is (or would be)."""
    text = ""
    for part in where:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    line = _line_of(root, where)
    text = text or "(top level)"
    return f"{text} (line {line})" if line else text


def _line_of(node, where: tuple[Any, ...]) -> int | None:
    """The line of the deepest node of `where` that exists in the file."""
    found = node.start_mark.line + 1 if node is not None else None
    for part in where:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        if child is None:
            break
        node, found = child, child.start_mark.line + 1
    return found


def _anchored(config: CasebookFile, base: Path) -> CasebookFile:
    """Relative paths in the file are taken from the file's folder, not the working directory."""

    def anchor(value: Path | None) -> Path | None:
        return value if value is None or value.is_absolute() else base / value

    telemetry = config.telemetry
    # Text with a scheme stays as written, `s3:/bucket` too, so the store names the missing slash.
    if telemetry and not SCHEME_LIKE.match(telemetry) and not Path(telemetry).is_absolute():
        telemetry = str(base / telemetry)
    results = config.results.model_copy(
        update={"db": anchor(config.results.db), "queue": anchor(config.results.queue)}
    )
    sinks = [
        s.model_copy(update={"directory": anchor(s.directory)}) if s.directory else s
        for s in config.sinks
    ]
    return config.model_copy(update={"telemetry": telemetry, "results": results, "sinks": sinks})
