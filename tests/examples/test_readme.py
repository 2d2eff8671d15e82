"""The README's tour quotes files that the test suite runs, so it cannot rot."""

from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_readme_quotes_the_example_analyzer_and_its_test_verbatim():
    readme = (ROOT / "README.md").read_text()
    for name in ("latency.py", "test_latency.py"):
        source = (ROOT / "examples" / "team_pack" / name).read_text().rstrip()
        assert source in readme, f"README.md no longer quotes examples/team_pack/{name}"


def test_quick_start_is_exactly_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "## Quick start\n\n```sh\nmake demo\nmake test\n```" in readme
