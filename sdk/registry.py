"""The registry: which analyzers exist, loaded from packs and entry points, checked together."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import sys
import traceback
from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from casebook.sdk.analyzer import (
    AnalyzerDefinitionError,
    AnalyzerSpec,
    FromFinding,
    Problem,
    collecting_problems,
    spec_of,
)
from casebook.sdk.models import Alert
from casebook.sdk.packs import PACK_ATTRIBUTE, Pack
from casebook.sdk.sql_reads import undeclared_reads

ENTRY_POINT_GROUP = "casebook.analyzers"


class Registry:
    """Analyzers by name. Load packs, then `check()` (or `checked()`) before running."""

    def __init__(self, specs: Iterable[AnalyzerSpec] = ()):
        self._specs: dict[str, AnalyzerSpec] = {}
        self.problems: list[Problem] = []
        self.packs: list[str] = []
        self.pack_declarations: dict[str, Pack] = {}
        for spec in specs:
            self.add(spec)

    def __contains__(self, name: str) -> bool:
        return name in self._specs

    def __getitem__(self, name: str) -> AnalyzerSpec:
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(sorted(self._specs)) or "none"
            raise KeyError(f"no analyzer named '{name}'; known analyzers: {known}") from None

    def __iter__(self) -> Iterator[AnalyzerSpec]:
        return iter(sorted(self._specs.values(), key=lambda s: s.name))

    def __len__(self) -> int:
        return len(self._specs)

    def get(self, name: str) -> AnalyzerSpec | None:
        return self._specs.get(name)

    def add(self, spec: AnalyzerSpec) -> None:
        existing = self._specs.get(spec.name)
        if existing is not None and existing.func is not spec.func:
            self.problems.append(Problem(
                f"analyzer {spec.qualified_name} ({spec.location})",
                f"the name '{spec.name}' is already used by {existing.qualified_name}",
                "give one of them another name with @analyzer(name='...')",
            ))
            return
        self._specs[spec.name] = spec

    def add_module(self, module: ModuleType) -> int:
        specs = _specs_of(module)
        for spec in specs:
            self.add(spec)
        return len(specs)

    def load(self, name: str) -> None:
        """Import a module or a package (with all its submodules) and add its analyzers.

        `name` is a module (`my_pack`, `team.pack`) or a path to a pack directory or a `.py`
        file, which is put on `sys.path` first.
        """
        with collecting_problems() as problems:
            module_name = module_of_pack(name, problems)
            if module_name in self.pack_declarations:  # already loaded (entry point and --pack)
                return
            modules = _import_tree(module_name, problems) if module_name else []
            declared = getattr(modules[0], PACK_ATTRIBUTE, None) if modules else None
            pack = declared if isinstance(declared, Pack) else Pack()
            if modules:
                self.pack_declarations[module_name or name] = pack
            for module in modules:
                for spec in _specs_of(module):
                    if spec.owner is None and pack.owner:
                        spec = dataclasses.replace(spec, owner=pack.owner)
                    self.add(spec)
        self.problems.extend(problems)
        self.packs.append(name)

    def load_entry_points(self, skip: Iterable[str] = ()) -> None:
        """Load every pack declared in the `casebook.analyzers` entry-point group."""
        skipped = set(skip)
        for point in entry_points(group=ENTRY_POINT_GROUP):
            if point.value in skipped or point.value in self.packs:
                continue
            self.load(point.value)

    def check(self) -> list[Problem]:
        """Every definition problem: from loading, plus references between analyzers."""
        problems = list(self.problems)
        known = ", ".join(sorted(self._specs)) or "none"
        for spec in self:
            where = f"analyzer {spec.qualified_name} ({spec.location})"
            for pname, ref in spec.upstreams.items():
                target = self._specs.get(ref.analyzer)
                if target is None:
                    problems.append(Problem(
                        where,
                        f"parameter '{pname}: {ref.finding_type.__name__}' names no analyzer; "
                        f"known analyzers: {known}",
                        "name the parameter after the analyzer whose finding it receives",
                    ))
                elif not issubclass(target.returns, ref.finding_type):
                    problems.append(Problem(
                        where,
                        f"parameter '{pname}' expects {ref.finding_type.__name__}, but analyzer "
                        f"'{target.name}' returns {target.returns.__name__}",
                        f"annotate it `{pname}: {target.returns.__name__} | None`",
                    ))
            for source in spec.fan_out.values():
                if not isinstance(source.source, FromFinding):
                    continue
                target = self._specs.get(source.source.analyzer)
                if target is None:
                    problems.append(Problem(
                        where,
                        f"fan_out[{source.param!r}] reads analyzer '{source.source.analyzer}', "
                        f"which does not exist; known analyzers: {known}",
                        "fix the name in from_finding('analyzer', 'field')",
                    ))
                elif source.source.field not in target.returns.model_fields:
                    fields = ", ".join(sorted(target.returns.model_fields))
                    problems.append(Problem(
                        where,
                        f"fan_out[{source.param!r}] reads field '{source.source.field}', which "
                        f"{target.returns.__name__} does not have (fields: {fields})",
                        "fix the field name in from_finding('analyzer', 'field')",
                    ))
        problems.extend(self._cycles())
        for spec in self:
            undeclared = undeclared_reads(spec)
            if undeclared:
                problems.append(Problem(
                    f"analyzer {spec.qualified_name} ({spec.location})",
                    f"its SQL reads {', '.join(undeclared)}, which reads= does not declare "
                    f"(declared: {', '.join(str(n) for n in spec.reads)})",
                    f"add {', '.join(repr(u) for u in undeclared)} to reads=",
                ))
        return problems

    def checked(self) -> Registry:
        problems = self.check()
        if problems:
            raise AnalyzerDefinitionError(problems)
        return self

    def applicable(self, alert: Alert) -> list[AnalyzerSpec]:
        """Analyzers whose declarative matchers accept the alert."""
        found = []
        for spec in self:
            try:
                if spec.applies_to(alert):
                    found.append(spec)
            except Exception:  # a predicate that raises does not apply
                continue
        return found

    def _cycles(self) -> list[Problem]:
        problems: list[Problem] = []
        state: dict[str, int] = {}

        def visit(name: str, path: list[str]) -> None:
            state[name] = 1
            spec = self._specs[name]
            for dep in sorted(spec.depends_on):
                if dep not in self._specs:
                    continue
                if state.get(dep) == 1:
                    cycle = " -> ".join([*path[path.index(dep):], dep]) if dep in path else dep
                    problems.append(Problem(
                        f"analyzer {spec.qualified_name} ({spec.location})",
                        f"analyzers depend on each other in a cycle: {cycle}",
                        "break the cycle: an analyzer may only read findings of analyzers that "
                        "do not read its own",
                    ))
                elif dep not in state:
                    visit(dep, [*path, dep])
            state[name] = 2

        for name in sorted(self._specs):
            if name not in state:
                visit(name, [name])
        return problems


def _specs_of(module: ModuleType) -> list[AnalyzerSpec]:
    specs = []
    for _, value in inspect.getmembers(module):
        spec = spec_of(value)
        if spec is not None and spec.module == module.__name__:
            specs.append(spec)
    return specs


def module_of_pack(reference: str, problems: list[Problem]) -> str | None:
    """The module name for a pack reference; a path is put on sys.path first."""
    looks_like_path = "/" in reference or reference.endswith(".py") or reference in (".", "..")
    if not looks_like_path:
        return reference
    path = Path(reference).expanduser().resolve()
    if path.is_file() and path.suffix == ".py":
        root, module = path.parent, path.stem
    elif path.is_dir() and (path / "__init__.py").exists():
        root, module = path.parent, path.name
    elif path.is_dir():
        packages = sorted(p.parent for p in [*path.glob("*/__init__.py"),
                                            *path.glob("src/*/__init__.py")]
                          if p.parent.name not in ("tests", "test"))
        if len(packages) != 1:
            found = ", ".join(p.name for p in packages) or "none"
            problems.append(Problem(
                f"pack {reference}",
                f"the directory holds {len(packages)} Python packages ({found}), not one",
                "pass the package directory itself, e.g. --pack DIR/my_pack",
            ))
            return None
        root, module = packages[0].parent, packages[0].name
    else:
        problems.append(Problem(
            f"pack {reference}", "no such pack file or directory",
            "pass a module name (my_pack), a package directory or a .py file",
        ))
        return None
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return module


def _import_tree(name: str, problems: list[Problem]) -> list[ModuleType]:
    modules: list[ModuleType] = []
    root = _import(name, problems)
    if root is None:
        return modules
    modules.append(root)
    if hasattr(root, "__path__"):
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{name}."):
            module = _import(info.name, problems)
            if module is not None:
                modules.append(module)
    return modules


def _import(name: str, problems: list[Problem]) -> ModuleType | None:
    try:
        if name in sys.modules:
            return sys.modules[name]
        return importlib.import_module(name)
    except AnalyzerDefinitionError as exc:
        problems.extend(exc.problems)
    except ModuleNotFoundError as exc:
        if exc.name == name or (exc.name and name.startswith(exc.name)):
            problems.append(Problem(
                f"pack {name}", f"the module '{name}' cannot be imported",
                "check the spelling of --pack, and that the pack is installed or on PYTHONPATH",
            ))
        else:
            problems.append(Problem(f"pack {name}", f"importing it failed: {exc}",
                                    f"install the missing module '{exc.name}'"))
    except Exception as exc:
        last = traceback.extract_tb(exc.__traceback__)[-1]
        problems.append(Problem(
            f"pack {name} ({last.filename}:{last.lineno})",
            f"importing it raised {type(exc).__name__}: {exc}",
            "fix the error at that line; `casebook analyzers check --pack MODULE` re-checks",
        ))
    return None


def load_registry(packs: Iterable[str] = (), *, builtin: bool = True,
                  entry_point_packs: bool = True) -> Registry:
    """The built-in pack, entry-point packs and the named packs, loaded (not yet checked)."""
    registry = Registry()
    if builtin:
        registry.load("casebook.analyzers")
    if entry_point_packs:
        registry.load_entry_points(skip=["casebook.analyzers"])
    for pack in packs:
        registry.load(pack)
    return registry
