"""Joining a Ray cluster fails in seconds with the fix, before Ray's own retries begin.

These need no cluster: an address nobody listens on, a host name nobody knows, and what a
node answers about a store it cannot open. The real cluster (token authentication, two nodes)
is tests/executor/test_ray_cluster.py.
"""

from __future__ import annotations

import socket

import pytest

from casebook.executor.errors import UserError
from casebook.executor.runtime.joining import (
    auth_message,
    check_address,
    start_error,
    store_error,
    store_problem,
)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends


def test_nothing_listening_is_named_with_the_command_that_starts_a_cluster():
    port = closed_port()
    with pytest.raises(UserError) as refused:
        check_address(f"127.0.0.1:{port}")
    assert str(refused.value) == (
        f"no Ray cluster at 127.0.0.1:{port}: nothing listens on port {port} of 127.0.0.1; "
        f"start one there with `ray start --head --port={port}`, or pass the address `ray start "
        "--head` printed with --ray-address"
    )


def test_an_unknown_host_and_a_malformed_address_are_named():
    with pytest.raises(UserError, match="the host name no-such-host.invalid is unknown"):
        check_address("no-such-host.invalid:6379")
    with pytest.raises(UserError, match=r"--ray-address '10.0.0.5' is not HOST:PORT"):
        check_address("10.0.0.5")


def test_the_auth_message_says_what_this_process_sent(monkeypatch, tmp_path):
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    fix = ("set RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN (or a file named "
           "by RAY_AUTH_TOKEN_PATH); `ray get-auth-token` on the head node prints it; see "
           "docs/scale.md")
    assert auth_message("h:1") == (
        "the Ray cluster at h:1 requires token authentication and this process sends none "
        f"(RAY_AUTH_MODE is not set): {fix}")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert "sends none (RAY_AUTH_MODE is 'disabled', not 'token')" in auth_message("h:1")
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ("and this process has none (no RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or "
            "~/.ray/auth_token)") in auth_message("h:1")
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("x")
    assert "and the token in ~/.ray/auth_token was refused" in auth_message("h:1")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", "/etc/ray/token")
    assert "the token in /etc/ray/token (RAY_AUTH_TOKEN_PATH) was refused" in auth_message("h:1")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "secret-value")
    said = auth_message("h:1")
    assert "the token in RAY_AUTH_TOKEN was refused" in said
    assert "secret-value" not in said


def test_a_node_that_cannot_open_the_store_says_why(tmp_path):
    missing = tmp_path / "store"
    problem = store_problem(None, str(missing))
    assert problem is not None and problem.startswith(f"no telemetry store at {missing}")
    assert str(store_error(str(missing), {"10.0.0.7": "no telemetry store at ..."})) == (
        f"the telemetry store {missing} cannot be read on Ray node(s) 10.0.0.7 (no telemetry "
        "store at ...): on a cluster the store must be on storage every node reads at the same "
        "path (a shared filesystem), or in object storage (s3://bucket/prefix); see docs/scale.md"
    )


def test_a_node_without_casebook_is_told_to_install_it():
    died = RuntimeError("The actor died because of an error raised in its creation task\n"
                        "ModuleNotFoundError: No module named 'casebook'")
    assert str(start_error("10.0.0.7", died)).startswith(
        "casebook is not installed on Ray node 10.0.0.7: install casebook ")
