"""docs/telemetry.md quotes the configurations in examples/telemetry/, and those are used: the
sources file loads, the CI step records a deploy through a real serve (with `casebook event`,
and with curl), and the end-to-end test feeds Prometheus the remote_write block."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from casebook.executor.sources import load_sources

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples" / "telemetry"
FILES = ("otel-collector.yaml", "prometheus-remote-write.yml", "sources.yaml",
         "ci-deploy-marker.sh")


def test_the_docs_quote_every_configuration_verbatim():
    docs = (ROOT / "docs" / "telemetry.md").read_text()
    for name in FILES:
        assert (EXAMPLES / name).read_text().rstrip() in docs, f"docs/telemetry.md lost {name}"


def test_the_sources_file_and_the_collector_configuration_are_valid():
    [source] = load_sources(EXAMPLES / "sources.yaml")
    assert [q.name or q.query for q in source.queries] == [
        "cpu_usage_ratio", "http_requests_total", "container_memory_working_set_bytes"]
    collector = yaml.safe_load((EXAMPLES / "otel-collector.yaml").read_text())
    exporter = collector["exporters"]["otlphttp/casebook"]
    assert exporter["endpoint"] == "http://casebook:9095"
    pipelines = collector["service"]["pipelines"]
    assert {name: p["exporters"] for name, p in pipelines.items()} == {
        signal: ["otlphttp/casebook"] for signal in ("traces", "logs", "metrics")}


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_the_ci_step_records_a_deploy_with_casebook_event_and_with_curl(tmp_path):
    sys.path.insert(0, str(ROOT / "tests" / "executor"))
    from test_receivers import TOKEN, serving

    venv_bin = str(Path(sys.executable).parent)
    without_casebook = ":".join(p for p in os.environ["PATH"].split(":")
                                if not (Path(p) / "casebook").exists())
    with serving(tmp_path) as served:
        for version, path in (("v7", f"{venv_bin}:{os.environ['PATH']}"),
                              ("v8", without_casebook)):
            env = {**os.environ, "PATH": path, "CASEBOOK_URL": served.url,
                   "CASEBOOK_TOKEN": TOKEN, "SERVICE": "checkout", "VERSION": version}
            run = subprocess.run(["sh", str(EXAMPLES / "ci-deploy-marker.sh")], env=env,
                                 capture_output=True, text=True, timeout=60)
            assert run.returncode == 0, run.stderr
        assert served.rows("select kind, service, summary, attributes from raw.events "
                           "order by summary") == [
            ("deploy", "checkout", "checkout v7 rolled out", {"pipeline": "ci", "version": "v7"}),
            ("deploy", "checkout", "checkout v8 rolled out", {"version": "v8", "pipeline": "ci"}),
        ]
