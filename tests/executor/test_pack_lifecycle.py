"""A team's first pack, made and used exactly as `casebook analyzers new` says to."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from casebook.executor.scaffold.kinds import KINDS

BIN = Path(sys.executable).parent


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_every_template_kind_works_as_the_printed_next_steps_say(tmp_path):
    pack = tmp_path / "storage_pack"
    steps: list[str] = []
    for kind in KINDS:
        name = f"sample_{kind.replace('-', '_')}"
        made = shell(f"casebook analyzers new {name} --dir {pack} --kind {kind} "
                     "--owner storage-sre", tmp_path)
        assert made.returncode == 0, made.stderr
        printed = made.stdout.split("next steps:\n", 1)[1]
        steps += [line.strip() for line in printed.splitlines() if line.strip()]
    assert steps[0] == f"pip install -e {pack}"
    try:
        for step in dict.fromkeys(steps):  # each distinct step once, in the printed order
            done = shell(step, tmp_path)
            assert done.returncode == 0, f"{step}\n{done.stdout}\n{done.stderr}"
            if step.startswith("pytest"):
                assert f"{2 * len(KINDS) + 1} passed" in done.stdout, done.stdout
            if step.startswith("casebook analyzers check"):
                assert "analyzers OK" in done.stdout
        for kind in KINDS:
            case = pack / "examples" / f"sample_{kind.replace('-', '_')}"
            investigated = shell(f"casebook investigate {case / 'alert.json'} --telemetry "
                                 f"{case / 'store'} --local --json", tmp_path)
            record = json.loads(investigated.stdout)
            ran = {i["analyzer"]: i["status"] for i in record["invocations"]
                   if i["analyzer"].startswith("sample_")}
            if KINDS[kind].analyzer:
                assert ran[f"sample_{kind.replace('-', '_')}"] == "found", (kind, ran)
            expected = json.loads((case / "expected.json").read_text())["causes"][0]
            top = record["causes"][0]
            assert (top["entity"], top["category"]) == (expected["entity"],
                                                        expected["category"]), kind
    finally:
        shell(f"{sys.executable} -m pip uninstall -y -q storage-pack", tmp_path)
