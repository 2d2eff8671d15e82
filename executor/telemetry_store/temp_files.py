"""Temporary files of a Parquet store's writers, and the stale ones a killed writer leaves.

A writer stages each new part as `.<part>.<host>.<pid>.tmp` and renames it into place once all
are written; readers never see the hidden name. A writer killed (kill -9, power loss) before the
rename leaves its file behind; the next ingest removes it when the process that wrote it is gone
from this machine, or when it is older than a grace period (a writer on another machine sharing
the directory, or a name without a pid).
"""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

STALE_AFTER_S = 6 * 3600  # longer than any one ingest writes a single part
TEMP_NAME = re.compile(r"^\..+?(?:\.(?P<host>[A-Za-z0-9-]{1,32})\.(?P<pid>\d+))?\.tmp$")


def host_tag() -> str:
    """This machine's name, cut to what a temporary file name may carry."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"


def temp_path(final: Path) -> Path:
    """The hidden name a part is written under before it is renamed to `final`."""
    return final.with_name(f".{final.name}.{host_tag()}.{os.getpid()}.tmp")


def remove_stale_temp_files(root: Path, stale_after_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove temporary parts under a Parquet store that no running writer owns; returns them."""
    removed = []
    now, here = time.time(), host_tag()
    for temp in root.glob("**/.*.tmp"):
        match = TEMP_NAME.match(temp.name)
        if match is None:
            continue
        try:
            age = now - temp.stat().st_mtime
        except FileNotFoundError:  # its writer renamed or removed it just now
            continue
        pid = int(match["pid"]) if match["pid"] else None
        writer_gone = match["host"] == here and pid is not None and not _running(pid)
        if writer_gone or age > stale_after_s:
            temp.unlink(missing_ok=True)
            removed.append(temp)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True
