"""The examples in the helpers' docstrings run."""

import doctest
import importlib

import pytest

MODULES = ["series", "detect", "correlate", "drilldown", "events", "logmine", "traces", "bursts"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(f"casebook.sdk.{name}")
    result = doctest.testmod(module)
    assert result.failed == 0
