"""Where a store lives: a local directory or `s3://bucket/prefix`, and the file operations on it.

Parquet files are written and read by DuckDB (its httpfs extension for S3, loaded from the
`duckdb-extension-httpfs` package so nothing is downloaded at run time). The S3 side is
object_storage.py; this module holds what both sides share and the local directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import duckdb

from casebook.executor.telemetry_store.conformance import TelemetryStoreError
from casebook.executor.telemetry_store.temp_files import temp_path

LOCK = ".lock"  # at a local store's root: held while a manifest is compared and replaced
SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
HALF_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):(?!//)")  # two letters or more: not C:


@dataclass(frozen=True)
class StoredFile:
    """A file below the store's root: its path relative to the root, and when it was written."""

    path: str
    modified: datetime


def is_url(location: str | os.PathLike[str]) -> bool:
    """True when the text names a location by scheme (`s3://...`) rather than a local path."""
    return bool(SCHEME.match(os.fspath(location)))


def location_of(location: str | os.PathLike[str]) -> Location:
    """The store location a path or URL names; refuses schemes other than s3."""
    text = os.fspath(location)
    match = SCHEME.match(text)
    if match is None:
        half = HALF_URL.match(text)
        if half is not None:  # `s3:/bucket` (a slash lost on the way) would become a folder `s3:`
            raise TelemetryStoreError(
                f"unsupported store location {text}: use a local path or s3://bucket/prefix "
                f"(for object storage write {half.group(1)}://..., with two slashes)"
            )
        return LocalLocation(Path(text).expanduser().resolve())
    if match.group(1).lower() != "s3":
        raise TelemetryStoreError(
            f"unsupported store location {text}: use a local path or s3://bucket/prefix"
        )
    parts = urlsplit(text)
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if not bucket or parts.query or parts.fragment:
        raise TelemetryStoreError(
            f"unsupported store location {text}: use a local path or s3://bucket/prefix"
        )
    from casebook.executor.telemetry_store.object_storage import S3Location

    return S3Location(bucket, prefix)


class Location:
    """File operations on a store root, the same for a directory and an object-store prefix."""

    remote = False

    def __str__(self) -> str:
        return self.url("")

    def url(self, relative: str) -> str:
        """The name DuckDB reads and writes the file by."""
        raise NotImplementedError

    def exists(self) -> bool:
        raise NotImplementedError

    def is_dir(self) -> bool:
        raise NotImplementedError

    def make_root(self) -> None:
        raise NotImplementedError

    def children(self) -> list[str]:
        """Names of the folders directly below the root."""
        raise NotImplementedError

    def files(self, relative: str) -> list[StoredFile]:
        """Every file below `relative`, at any depth."""
        raise NotImplementedError

    def read_versioned(self, relative: str) -> tuple[bytes | None, str | None]:
        """The file's bytes and a token of this version of it, or (None, None) when absent."""
        raise NotImplementedError

    def replace_if(self, relative: str, data: bytes, version: str | None) -> bool:
        """Replace the file only if it is still at `version` (None: only if it is absent).

        False, and nothing written, when another writer replaced it first: the caller reads
        it again and retries. This compare-and-swap is what lets writers in any number of
        threads and processes change one manifest without losing each other's changes.
        """
        raise NotImplementedError

    def delete(self, relative: str) -> None:
        raise NotImplementedError

    def abort_uploads(self, relative: str, before: datetime) -> int:
        """Cancel unfinished uploads below `relative` started before `before` (object stores
        keep the parts of an upload whose writer died, unseen and billed); how many."""
        return 0

    def prepare_write(self, relative: str) -> None:
        """Make what DuckDB needs before it writes the file (folders, on a disk)."""

    def settle(self, relative: str) -> None:
        """Make a file DuckDB wrote durable before a manifest names it."""

    def configure(self, con: duckdb.DuckDBPyConnection) -> None:
        """Let a DuckDB connection read and write this location."""


class LocalLocation(Location):
    def __init__(self, root: Path):
        self.root = root

    def __repr__(self) -> str:
        return f"LocalLocation({str(self.root)!r})"

    def url(self, relative: str) -> str:
        return str(self.root / relative) if relative else str(self.root)

    def exists(self) -> bool:
        return self.root.exists()

    def is_dir(self) -> bool:
        return self.root.is_dir()

    def make_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def children(self) -> list[str]:
        return [d.name for d in self.root.iterdir() if d.is_dir()]

    def files(self, relative: str) -> list[StoredFile]:
        found = []
        for path in (self.root / relative).rglob("*"):
            with contextlib.suppress(FileNotFoundError):  # removed while listing
                if path.is_file():
                    modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
                    found.append(StoredFile(path.relative_to(self.root).as_posix(), modified))
        return found

    def read(self, relative: str) -> bytes | None:
        try:
            return (self.root / relative).read_bytes()
        except FileNotFoundError:
            return None

    def replace(self, relative: str, data: bytes) -> None:
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = temp_path(target)
        with temp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
        _fsync(target.parent)

    def read_versioned(self, relative: str) -> tuple[bytes | None, str | None]:
        data = self.read(relative)
        return data, _version_of(data)

    def replace_if(self, relative: str, data: bytes, version: str | None) -> bool:
        # The comparison and the rename happen under a lock every process on this machine
        # takes (flock), so they are one step; the replace itself is atomic for readers.
        with self._lock():
            if _version_of(self.read(relative)) != version:
                return False
            self.replace(relative, data)
            return True

    def delete(self, relative: str) -> None:
        path = self.root / relative
        path.unlink(missing_ok=True)
        folder = path.parent
        while folder != self.root:  # the hour's and the table's folders, once empty
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent

    def prepare_write(self, relative: str) -> None:
        folder = (self.root / relative).parent
        missing = []
        while not folder.exists() and folder != self.root:
            missing.append(folder)
            folder = folder.parent
        for created in reversed(missing):
            created.mkdir(exist_ok=True)
            _fsync(created.parent)  # a new table's or hour's folder survives a crash too

    def settle(self, relative: str) -> None:
        path = self.root / relative
        _fsync(path)
        _fsync(path.parent)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        path = self.root / LOCK
        path.parent.mkdir(parents=True, exist_ok=True)
        with _thread_lock(str(path)), path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(name: str) -> threading.Lock:
    with _thread_locks_guard:
        return _thread_locks.setdefault(name, threading.Lock())


def _version_of(data: bytes | None) -> str | None:
    return None if data is None else hashlib.blake2b(data, digest_size=16).hexdigest()


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
