"""Optional modules that are not installed are answered at once, with Python's own error."""

import importlib
import importlib.util
import sys

import duckdb
import pytest

from casebook.executor.absent_modules import AbsentModules, remember_absent

MISSING = "casebook_no_such_module_x"


@pytest.fixture
def finder():
    before = list(sys.meta_path)
    yield
    sys.meta_path[:] = before


def ours() -> AbsentModules:
    return next(f for f in sys.meta_path if isinstance(f, AbsentModules))


def test_a_missing_module_raises_what_python_raises(finder):
    with pytest.raises(ModuleNotFoundError) as plain:
        importlib.import_module(MISSING)
    remember_absent([MISSING])
    assert MISSING in ours().names
    with pytest.raises(ModuleNotFoundError) as remembered:
        importlib.import_module(MISSING)
    assert str(remembered.value) == str(plain.value) == f"No module named '{MISSING}'"
    assert remembered.value.name == MISSING


def test_an_installed_module_is_never_remembered(finder):
    remember_absent(["json", "duckdb"])
    assert not {"json", "duckdb"} & ours().names
    assert importlib.import_module("json").dumps([1]) == "[1]"


def test_one_finder_however_often_it_is_asked(finder):
    remember_absent([MISSING])
    remember_absent([MISSING])
    assert sum(isinstance(f, AbsentModules) for f in sys.meta_path) == 1


def test_invalidating_caches_forgets_what_was_missing(finder):
    remember_absent([MISSING])
    importlib.invalidate_caches()  # what an install in a running process is followed by
    assert MISSING not in ours().names


def test_duckdb_statements_with_parameters_do_not_search_for_pandas(finder):
    if importlib.util.find_spec("pandas") is not None:
        pytest.skip("pandas is installed here, so nothing is remembered as missing")
    remember_absent()
    searched: list[str] = []

    class Spy:
        def find_spec(self, name, path=None, target=None):
            searched.append(name)

    sys.meta_path.insert(1, Spy())  # behind the finder of missing modules
    con = duckdb.connect()
    con.execute("create table t (a int, b varchar)")
    con.execute("insert into t values (?, ?)", [1, "x"])
    assert con.execute("select a, b from t where a = ?", [1]).fetchall() == [(1, "x")]
    assert "pandas" not in searched
