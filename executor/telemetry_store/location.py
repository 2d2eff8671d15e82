"""Where a store lives: a local directory or `s3://bucket/prefix`, and the file operations on it.

Parquet files are written and read by DuckDB (its httpfs extension for S3, loaded from the
`duckdb-extension-httpfs` package so nothing is downloaded at run time). The few operations DuckDB
has no SQL for (listing, small manifest objects, deleting) go through pyarrow's file systems.
S3 is configured from the usual AWS variables: AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3),
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION (or AWS_DEFAULT_REGION).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import duckdb

from casebook.executor.telemetry_store.conformance import TelemetryStoreError, sql_text
from casebook.executor.telemetry_store.temp_files import temp_path

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

    def read(self, relative: str) -> bytes | None:
        """The file's bytes, or None when there is no such file."""
        raise NotImplementedError

    def replace(self, relative: str, data: bytes) -> None:
        """Write a small file so readers see either the old content or the new, never a mix."""
        raise NotImplementedError

    def delete(self, relative: str) -> None:
        raise NotImplementedError

    def prepare_write(self, relative: str) -> None:
        """Make what DuckDB needs before it writes the file (folders, on a disk)."""

    def settle(self, relative: str) -> None:
        """Make a file DuckDB wrote durable before a manifest names it."""

    @contextlib.contextmanager
    def lock(self, relative: str) -> Iterator[None]:
        """Hold the writers' lock: threads of this process always; on a disk, processes too
        (object stores have no locks: one writing process at a time)."""
        with _thread_lock(self.url(relative)):
            yield

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
    def lock(self, relative: str) -> Iterator[None]:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with _thread_lock(str(path)), path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class S3Location(Location):
    remote = True

    def __init__(self, bucket: str, prefix: str):
        self.bucket, self.prefix = bucket, prefix
        self._filesystem = None

    def __repr__(self) -> str:
        return f"S3Location({self.url('')!r})"

    def _key(self, relative: str) -> str:
        return "/".join(p for p in (self.bucket, self.prefix, relative) if p)

    def url(self, relative: str) -> str:
        return "s3://" + self._key(relative)

    @property
    def filesystem(self):
        if self._filesystem is None:
            from pyarrow.fs import S3FileSystem

            endpoint, scheme = _endpoint()
            key, secret = (
                os.environ.get("AWS_ACCESS_KEY_ID"),
                os.environ.get("AWS_SECRET_ACCESS_KEY"),
            )
            options = {"region": _region(), "scheme": scheme}
            if endpoint:
                options["endpoint_override"] = endpoint
            if key and secret:
                options |= {"access_key": key, "secret_key": secret,
                            "session_token": os.environ.get("AWS_SESSION_TOKEN")}  # fmt: skip
            self._filesystem = S3FileSystem(**options)
        return self._filesystem

    def _call(self, action: str, operation, *args):
        try:
            return operation(*args)
        except OSError as exc:
            raise TelemetryStoreError(
                f"cannot {action} {self.url('')}: {exc}; check the bucket exists and "
                "AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ) from exc

    def exists(self) -> bool:
        from pyarrow.fs import FileType

        info = self._call("reach", self.filesystem.get_file_info, self.bucket)
        if info.type == FileType.NotFound:
            raise TelemetryStoreError(
                f"no bucket {self.bucket} at the S3 endpoint for {self.url('')}; create the "
                "bucket, or check AWS_ENDPOINT_URL"
            )
        return True  # a prefix exists as soon as its bucket does

    def is_dir(self) -> bool:
        return True

    def make_root(self) -> None:
        self.exists()

    def children(self) -> list[str]:
        from pyarrow.fs import FileSelector, FileType

        selector = FileSelector(self._key(""), allow_not_found=True)
        infos = self._call("list", self.filesystem.get_file_info, selector)
        return [i.base_name for i in infos if i.type == FileType.Directory]

    def files(self, relative: str) -> list[StoredFile]:
        from pyarrow.fs import FileSelector, FileType

        selector = FileSelector(self._key(relative), recursive=True, allow_not_found=True)
        infos = self._call("list", self.filesystem.get_file_info, selector)
        start = len(self._key("")) + 1
        return [
            StoredFile(i.path[start:], i.mtime or datetime.now(UTC))
            for i in infos
            if i.type == FileType.File
        ]

    def read(self, relative: str) -> bytes | None:
        try:
            with self.filesystem.open_input_stream(self._key(relative)) as stream:
                return stream.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TelemetryStoreError(f"cannot read {self.url(relative)}: {exc}") from exc

    def replace(self, relative: str, data: bytes) -> None:
        # One PUT: S3 shows readers the whole old object or the whole new one.
        def put() -> None:
            with self.filesystem.open_output_stream(self._key(relative)) as stream:
                stream.write(data)

        self._call("write to", put)

    def delete(self, relative: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._call("delete from", self.filesystem.delete_file, self._key(relative))

    def configure(self, con: duckdb.DuckDBPyConnection) -> None:
        load_httpfs(con)
        endpoint, scheme = _endpoint()
        options = [f"region {sql_text(_region())}"]
        if endpoint:
            # Endpoints other than AWS's (MinIO, Ceph, a local test server) expect path-style URLs.
            options += [f"endpoint {sql_text(endpoint)}", "url_style 'path'",
                        f"use_ssl {'true' if scheme == 'https' else 'false'}"]  # fmt: skip
        key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
        if key and secret:
            options += [f"key_id {sql_text(key)}", f"secret {sql_text(secret)}"]
            if os.environ.get("AWS_SESSION_TOKEN"):
                options.append(f"session_token {sql_text(os.environ['AWS_SESSION_TOKEN'])}")
        con.execute(
            f"create or replace secret casebook_store (type s3, {', '.join(options)}, "
            f"scope {sql_text('s3://' + self.bucket)})"
        )


_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(name: str) -> threading.Lock:
    with _thread_locks_guard:
        return _thread_locks.setdefault(name, threading.Lock())


def load_httpfs(con: duckdb.DuckDBPyConnection) -> None:
    """Load DuckDB's httpfs extension from the installed package, never from the network."""
    from importlib.resources import files

    try:
        con.execute("load httpfs")  # already installed in DuckDB's own extension folder
        return
    except duckdb.Error:
        pass
    try:
        package = files("duckdb_extension_httpfs")
    except ModuleNotFoundError:
        package = None
    binary = (
        package / "extensions" / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"
        if package is not None
        else None
    )
    if binary is None or not binary.is_file():
        raise TelemetryStoreError(
            f"S3 stores need DuckDB's httpfs extension for DuckDB {duckdb.__version__}, and it "
            f"is not installed; run `pip install duckdb-extension-httpfs=={duckdb.__version__}` "
            "(or pip install the duckdb version that package supports)"
        )
    con.execute(f"load {sql_text(str(binary))}")


def _endpoint() -> tuple[str | None, str]:
    """(host[:port] of a custom endpoint or None for AWS, "http" or "https")."""
    url = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not url:
        return None, "https"
    parts = urlsplit(url if "://" in url else f"https://{url}")
    return parts.netloc, parts.scheme or "https"


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
