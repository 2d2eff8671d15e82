"""A store under `s3://bucket/prefix`: DuckDB's httpfs for Parquet, pyarrow for listing, boto3
for manifests (read with their ETag, replaced with If-Match / If-None-Match) and deletes.

S3 is configured from the usual AWS variables: AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3),
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION (or AWS_DEFAULT_REGION).
Writers in different processes (or machines) share a store safely because every manifest swap
is a conditional PUT; a server that ignores the conditions is refused before the first swap.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

import duckdb

from casebook.executor.telemetry_store.conformance import TelemetryStoreError, sql_text
from casebook.executor.telemetry_store.location import Location, StoredFile

log = logging.getLogger("casebook.store")

ONE_WRITER = "CASEBOOK_S3_ONE_WRITER"  # "1": the server may ignore conditions, one process writes
# Answers to a conditional PUT that mean "another writer came first": read again and redo.
CONFLICTS = {"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409"}
# (endpoint, bucket) pairs whose server was seen to refuse a PUT whose condition fails.
_conditions_honoured: set[tuple[str | None, str]] = set()
_uploads_warned: set[str] = set()  # buckets whose unfinished uploads may not be listed
_guard = threading.Lock()  # making the boto3 client
_secret_turn = threading.Lock()  # replacing the DuckDB secret of the shared scratch database


class S3Location(Location):
    remote = True

    def __init__(self, bucket: str, prefix: str):
        self.bucket, self.prefix = bucket, prefix
        self._filesystem = None
        self._client = None

    def __repr__(self) -> str:
        return f"S3Location({self.url('')!r})"

    def _key(self, relative: str) -> str:
        return "/".join(p for p in (self.bucket, self.prefix, relative) if p)

    def _object(self, relative: str) -> str:
        """The object key of a file, without the bucket (boto3's Key)."""
        return "/".join(p for p in (self.prefix, relative) if p)

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

    @property
    def client(self):
        """A boto3 S3 client (thread-safe once made) for the same endpoint and credentials."""
        with _guard:
            if self._client is None:
                import boto3
                from botocore.config import Config

                endpoint, scheme = _endpoint()
                options = {"region_name": _region()}
                if endpoint:
                    # Endpoints other than AWS's expect path-style URLs, as DuckDB is told too.
                    options |= {"endpoint_url": f"{scheme}://{endpoint}",
                                "config": Config(s3={"addressing_style": "path"})}  # fmt: skip
                self._client = boto3.session.Session().client("s3", **options)
            return self._client

    def _call(self, action: str, operation, *args, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return operation(*args, **kwargs)
        except (OSError, BotoCoreError, ClientError) as exc:
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

    def read_versioned(self, relative: str) -> tuple[bytes | None, str | None]:
        # One GET returns the body and the ETag of that very body. (pyarrow asks for an object's
        # size and then for that many bytes: a manifest replaced in between came back cut.)
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._object(relative))
            return answer["Body"].read(), answer["ETag"]
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None, None
            raise TelemetryStoreError(f"cannot read {self.url(relative)}: {exc}") from exc
        except BotoCoreError as exc:
            raise TelemetryStoreError(
                f"cannot read {self.url(relative)}: {exc}; check AWS_ENDPOINT_URL"
            ) from exc

    def replace_if(self, relative: str, data: bytes, version: str | None) -> bool:
        self._require_conditional_writes()
        condition = {"IfMatch": version} if version is not None else {"IfNoneMatch": "*"}
        return self._put_if(self._object(relative), data, condition)

    def _put_if(self, key: str, data: bytes, condition: dict[str, str]) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **condition)
        except ClientError as exc:
            if _code(exc) in CONFLICTS:
                return False
            raise TelemetryStoreError(f"cannot write to {self.url('')}: {exc}") from exc
        except BotoCoreError as exc:
            raise TelemetryStoreError(
                f"cannot write to {self.url('')}: {exc}; check AWS_ENDPOINT_URL"
            ) from exc
        return True

    def _require_conditional_writes(self) -> None:
        """Refuse a server that ignores If-Match / If-None-Match, once per process and bucket:
        there, two writers could each replace the manifest and one batch would vanish."""
        seen = (_endpoint()[0], self.bucket)
        if seen in _conditions_honoured or os.environ.get(ONE_WRITER) == "1":
            return  # one writing process: its threads take turns at each manifest anyway
        # Named for this probe alone: another process deleting its own probe meanwhile would
        # otherwise let If-None-Match succeed here and pass for a server that ignores it.
        relative = f".casebook-conditional-write-probe-{uuid.uuid4().hex}"
        probe = self._object(relative)
        self._call("write to", self.client.put_object, Bucket=self.bucket, Key=probe, Body=b"1")
        try:
            for header, condition in (
                ("If-None-Match", {"IfNoneMatch": "*"}),
                ("If-Match", {"IfMatch": '"00000000000000000000000000000000"'}),
            ):
                if self._put_if(probe, b"2", condition):
                    raise TelemetryStoreError(
                        f"the S3 server for {self.url('')} ignores the {header} header of a PUT; "
                        "casebook needs conditional writes so that writers in several processes "
                        "do not lose each other's batches. Use a server that honours them (AWS "
                        f"S3 does), or, if one process only ever writes this store, set {ONE_WRITER}=1"
                    )
        finally:
            self.delete(relative)
        _conditions_honoured.add(seen)

    def delete(self, relative: str) -> None:
        # boto3, not pyarrow: pyarrow puts an empty folder marker where the last file of a
        # folder was, and retention would leave one behind for every hour it drops.
        self._call("delete from", self.client.delete_object, Bucket=self.bucket,
                   Key=self._object(relative))  # fmt: skip

    def abort_uploads(self, relative: str, before: datetime) -> int:
        from botocore.exceptions import ClientError

        prefix = self._object(relative).rstrip("/") + "/"
        aborted = 0
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] <= before:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted += 1
        except ClientError as exc:
            if _code(exc) not in ("AccessDenied", "NotImplemented", "403", "501"):
                raise TelemetryStoreError(
                    f"cannot cancel unfinished uploads in {self.url(relative)}: {exc}"
                ) from exc
            # Compaction matters more than this cleanup: say once what is missing, go on.
            if self.bucket not in _uploads_warned:
                _uploads_warned.add(self.bucket)
                log.warning(
                    "cannot list or cancel unfinished uploads in %s (%s): allow "
                    "s3:ListBucketMultipartUploads and s3:AbortMultipartUpload, or add a "
                    "lifecycle rule AbortIncompleteMultipartUpload to the bucket",
                    self.url(relative), _code(exc),
                )  # fmt: skip
        return aborted

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
        # The writers' cursors share one database per process (scratch_connection), whose
        # secrets are shared too: two threads replacing it at once fail on a catalog conflict.
        with _secret_turn:
            con.execute(
                f"create or replace secret casebook_store (type s3, {', '.join(options)}, "
                f"scope {sql_text('s3://' + self.bucket)})"
            )


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


def _code(error) -> str:
    """The S3 error code of a botocore ClientError (its HTTP status when it carries none)."""
    details = error.response.get("Error", {})
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(details.get("Code") or status)
