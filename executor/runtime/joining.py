"""Joining a Ray cluster, with errors that arrive in seconds and name the fix.

Ray itself retries for tens of seconds, then raises a bare `ConnectionError`, whether nothing
listens at the address, the cluster wants a token this process does not send, or the address
is not a Ray cluster at all. So before `ray.init` the address is checked: a TCP connection
(a few seconds), then one call to the cluster's control service that says whether it accepts
this process's token. Once joined, every node is asked which casebook it runs, and, before an
investigation, whether it reads the telemetry store (docs/scale.md says why both matter).
"""

from __future__ import annotations

import os
import socket
import threading
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from casebook.executor.errors import UserError

CONNECT_TIMEOUT_S = 3.0
ANSWER_TIMEOUT_S = 15.0
DOCS = "see docs/scale.md"


def casebook_version() -> str:
    try:
        return version("casebook")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "not installed"


def check_address(address: str) -> None:
    """Raise UserError unless a Ray cluster that accepts this process answers at `address`."""
    if address in ("auto", "local") or address.startswith("ray://"):
        return  # found by Ray itself, or Ray Client (its own server and errors)
    host, port = _split(address)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except socket.gaierror:
        raise UserError(
            f"no Ray cluster at {address}: the host name {host} is unknown; pass the address "
            "that `ray start --head` printed (HOST:PORT) with --ray-address"
        ) from None
    except ConnectionRefusedError:
        raise UserError(
            f"no Ray cluster at {address}: nothing listens on port {port} of {host}; start one "
            f"there with `ray start --head --port={port}`, or pass the address `ray start "
            "--head` printed with --ray-address"
        ) from None
    except OSError as exc:  # timeouts, unreachable networks
        raise UserError(
            f"no Ray cluster answers at {address} within {CONNECT_TIMEOUT_S:g} s ({exc}): check "
            "the address and that this machine can reach the head node's port"
        ) from None
    _ask_control_service(address)


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(
            f"--ray-address {address!r} is not HOST:PORT (for example 10.0.0.5:6379, the "
            "address `ray start --head` prints)"
        )
    return host.strip("[]"), int(port)


def _ask_control_service(address: str) -> None:
    """One call to the cluster's control service (GCS), bounded in time."""
    answer: list[BaseException | None] = []

    def ask() -> None:
        try:
            from ray._raylet import GcsClient

            GcsClient(address=address)
            answer.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            answer.append(exc)

    # Ray's client blocks while it retries; a thread lets this process give up first.
    asking = threading.Thread(target=ask, name="casebook-ray-check", daemon=True)
    asking.start()
    asking.join(ANSWER_TIMEOUT_S)
    if not answer:
        raise UserError(
            f"{address} accepted a connection but did not answer as a Ray cluster within "
            f"{ANSWER_TIMEOUT_S:g} s: check that it is the head node's GCS port (6379 unless "
            "`ray start --head --port` said otherwise)"
        )
    error = answer[0]
    if error is None:
        return
    if type(error).__name__ == "AuthenticationError":
        raise UserError(auth_message(address)) from None
    raise UserError(
        f"{address} did not answer as a Ray cluster ({_first_line(error)}): pass the address "
        "`ray start --head` printed (HOST:PORT, port 6379 by default)"
    ) from None


def auth_message(address: str) -> str:
    """What to do when the cluster refuses this process's token (or its lack of one)."""
    mode = os.environ.get("RAY_AUTH_MODE", "")
    if mode.lower() != "token":
        sent = (
            f"this process sends none (RAY_AUTH_MODE is {mode!r}, not 'token')"
            if mode
            else "this process sends none (RAY_AUTH_MODE is not set)"
        )
    elif os.environ.get("RAY_AUTH_TOKEN"):
        sent = "the token in RAY_AUTH_TOKEN was refused"
    elif os.environ.get("RAY_AUTH_TOKEN_PATH"):
        sent = f"the token in {os.environ['RAY_AUTH_TOKEN_PATH']} (RAY_AUTH_TOKEN_PATH) was refused"
    elif (Path.home() / ".ray" / "auth_token").exists():
        sent = "the token in ~/.ray/auth_token was refused"
    else:
        sent = ("this process has none (no RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or "
                "~/.ray/auth_token)")
    return (
        f"the Ray cluster at {address} requires token authentication and {sent}: set "
        "RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN (or a file named by "
        "RAY_AUTH_TOKEN_PATH); `ray get-auth-token` on the head node prints it; "
        f"{DOCS}"
    )


def join_error(address: str, exc: BaseException) -> UserError:
    """`ray.init(address=...)` failed after the checks passed: say so in one line."""
    text = str(exc)
    if type(exc).__name__ == "AuthenticationError":
        return UserError(auth_message(address))
    if "version mismatch" in text.lower():
        return UserError(
            f"the Ray cluster at {address} runs another version of Ray or Python than this "
            f"process ({' '.join(text.split())[:300]}): install the cluster's versions here"
        )
    return UserError(f"could not join the Ray cluster at {address}: {_first_line(exc)}; {DOCS}")


# -- the nodes ------------------------------------------------------------------------------


def whereabouts(worker: Any) -> dict[str, Any]:
    """Run inside a worker actor (`actor.__ray_call__`): where it runs and with what."""
    import ray

    context = ray.get_runtime_context()
    return {
        "pid": os.getpid(),
        "node_id": context.get_node_id(),
        "node_ip": ray.util.get_node_ip_address(),
        "casebook": casebook_version(),
    }


def store_problem(worker: Any, store_url: str) -> str | None:
    """Run inside a worker actor: why this node cannot open the store, or None."""
    from casebook.executor.telemetry_store import TelemetryStore

    try:
        TelemetryStore.open(store_url)
    except Exception as exc:  # noqa: BLE001 - reported to the driver as text
        return _first_line(exc)
    return None


def version_error(node_ip: str, theirs: str, ours: str) -> UserError:
    return UserError(
        f"Ray node {node_ip} runs casebook {theirs} and this process casebook {ours}: every "
        f"node must run the same version (pip install casebook=={ours} in the Python that "
        "runs `ray start` there, then restart that node)"
    )


def start_error(node_ip: str | None, exc: BaseException) -> UserError:
    """A worker could not start on a node: casebook missing there, or another failure."""
    text = str(exc)
    where = f"Ray node {node_ip}" if node_ip else "a node of the Ray cluster"
    if "No module named 'casebook" in text:
        return UserError(
            f"casebook is not installed on {where}: install casebook {casebook_version()} (the "
            "version here) in the Python that runs `ray start` on every node, then restart them"
        )
    return UserError(
        f"casebook's workers could not start on {where} ({_last_line(exc)}); every node of "
        "the cluster needs casebook installed, in the same version"
    )


def store_error(store_url: str, problems: dict[str, str]) -> UserError:
    nodes = ", ".join(f"{ip} ({why})" for ip, why in sorted(problems.items()))
    return UserError(
        f"the telemetry store {store_url} cannot be read on Ray node(s) {nodes}: on a cluster "
        "the store must be on storage every node reads at the same path (a shared "
        f"filesystem), or in object storage (s3://bucket/prefix); {DOCS}"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _last_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__
