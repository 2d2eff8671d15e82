"""Maps the top-level folders to the casebook.* import names (see DESIGN.md, Layout)."""

from pathlib import Path

from setuptools import setup

FOLDERS = {"sdk": "casebook.sdk", "executor": "casebook.executor",
           "analyzers": "casebook.analyzers", "examples": "casebook.examples"}


def packages() -> list[str]:
    found = []
    for folder, name in FOLDERS.items():
        for init in sorted(Path(folder).rglob("__init__.py")):
            relative = init.parent.relative_to(folder).parts
            found.append(".".join((name, *relative)))
    return found


setup(packages=packages())
