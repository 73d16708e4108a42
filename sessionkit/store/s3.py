"""``s3://<bucket>/<prefix>``: a store in S3 or an S3-compatible service (AWS S3, Cloudflare
R2, MinIO; extra ``sessionkit-runtime[s3]``).

``If-None-Match: *`` creates atomically and ``If-Match: <etag>`` updates atomically
(412 on a mismatch; a 409 ``ConditionalRequestConflict`` from concurrent conditional
writes is retried). See ``objects.py`` for the shared protocol. A read or a write is
one request.

An S3 ETag is the MD5 of the content, so two writes of the same bytes would share a
version (a compare-and-swap could succeed against a record replaced in between).
Every object therefore starts with a 20-byte header, ``SKV1`` and a 16-byte nonce,
which makes each write's ETag its own; a tombstone is ``SKT`` and a nonce (19 bytes,
a size no record has, so listings can skip tombstones by size). Objects are only
meant to be read through sessionkit.

The endpoint and credentials come from the usual AWS chain: ``AWS_ENDPOINT_URL``
(R2: ``https://<account>.r2.cloudflarestorage.com``; MinIO: its URL),
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``AWS_DEFAULT_REGION``.
"""

from __future__ import annotations

from typing import Any, Optional

from ..errors import StoreError
from .base import CHUNK_BYTES, replace_file
from .objects import Obj, ObjectStore, _PreconditionFailed

__all__ = ["S3Store", "open_s3"]

EXTRA_HINT = 'the s3:// store needs boto3: pip install "sessionkit-runtime[s3]"'
RECORD, TOMB = b"SKV1", b"SKT"
NONCE_BYTES = 16
TOMBSTONE_SIZE = len(TOMB) + NONCE_BYTES
RETRY_CODES = {"ConditionalRequestConflict", "SlowDown", "Throttling", "ThrottlingException",
               "RequestTimeout", "InternalError", "ServiceUnavailable", "503", "500", "429"}


class S3Store(ObjectStore):
    """A store under ``s3://bucket/prefix``."""

    scheme = "s3"
    create_only_condition = "If-None-Match: *"
    match_condition = "If-Match"

    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None, timeout: float = 20.0,
                 **kw: Any) -> None:
        super().__init__(bucket, prefix, **kw)
        try:
            import boto3
            from botocore.config import Config
            from botocore import exceptions as botocore_exceptions
        except ImportError:
            raise StoreError(EXTRA_HINT) from None
        self._errors = botocore_exceptions
        self._client = client or boto3.client("s3", config=Config(
            retries={"max_attempts": 1}, connect_timeout=5, read_timeout=timeout))

    def _get_object(self, name: str) -> Optional[dict[str, Any]]:
        """The answer of GetObject (its body still to read), or None when there is no object."""
        try:
            return self._client.get_object(Bucket=self.bucket, Key=name)
        except self._errors.ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise

    def _read(self, name: str) -> Optional[Obj]:
        answer = self._get_object(name)
        if answer is None:
            return None
        body = answer["Body"].read()
        etag = answer["ETag"]
        if body.startswith(RECORD) and len(body) >= len(RECORD) + NONCE_BYTES:
            head = len(RECORD) + NONCE_BYTES
            return Obj(body[head:], etag, body[len(RECORD):head].hex(), False)
        if body.startswith(TOMB) and len(body) == TOMBSTONE_SIZE:
            return Obj(b"", etag, body[len(TOMB):].hex(), True)
        raise StoreError(f"{self.url}: the object {name!r} was not written by sessionkit (no header); "
                         f"move it away or write the key again")

    def _write(self, name: str, data: bytes, *, create_only: bool, match: Optional[str], nonce: str,
               tombstone: bool) -> str:
        body = (TOMB if tombstone else RECORD) + bytes.fromhex(nonce)[:NONCE_BYTES] + (b"" if tombstone else data)
        condition: dict[str, str] = {}
        if create_only:
            condition["IfNoneMatch"] = "*"
        elif match is not None:
            condition["IfMatch"] = match
        try:
            answer = self._client.put_object(Bucket=self.bucket, Key=name, Body=body, **condition)
        except self._errors.ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "412"):
                raise _PreconditionFailed(name) from None
            raise
        return answer["ETag"]

    def _write_file(self, name: str, path: str, nonce: str) -> str:
        from boto3.s3.transfer import TransferConfig

        # a multipart upload above CHUNK_BYTES (S3 makes the object when it is completed),
        # at most two parts in memory at a time
        config = TransferConfig(multipart_threshold=CHUNK_BYTES, multipart_chunksize=CHUNK_BYTES,
                                max_concurrency=2)
        with open(path, "rb") as fh:
            self._client.upload_fileobj(_Prefixed(RECORD + bytes.fromhex(nonce)[:NONCE_BYTES], fh),
                                        self.bucket, name, Config=config)
        self._count("head")
        return self._client.head_object(Bucket=self.bucket, Key=name)["ETag"]

    def _read_file(self, name: str, path: str) -> Optional[str]:
        answer = self._get_object(name)
        if answer is None:
            return None
        body = answer["Body"]
        head = body.read(len(RECORD) + NONCE_BYTES)
        if head.startswith(TOMB) and answer["ContentLength"] == TOMBSTONE_SIZE:
            return None
        if not head.startswith(RECORD) or len(head) < len(RECORD) + NONCE_BYTES:
            raise StoreError(f"{self.url}: the object {name!r} was not written by sessionkit (no header); "
                             f"move it away or write the key again")
        with replace_file(path) as fh:
            for chunk in body.iter_chunks(CHUNK_BYTES):
                fh.write(chunk)
        return answer["ETag"]

    def _names(self, prefix: str) -> list[tuple[str, bool]]:
        out = []
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out += [(o["Key"], o["Size"] == TOMBSTONE_SIZE) for o in page.get("Contents", [])]
        return out

    def _retryable(self, exc: BaseException) -> bool:
        errors = self._errors
        if isinstance(exc, errors.ClientError):
            return _code(exc) in RETRY_CODES or int(exc.response.get("ResponseMetadata", {})
                                                   .get("HTTPStatusCode", 0) or 0) >= 500
        return isinstance(exc, (errors.EndpointConnectionError, errors.ConnectionClosedError,
                                errors.ConnectTimeoutError, errors.ReadTimeoutError, ConnectionError, TimeoutError))

    def _valid_version(self, version: str) -> bool:
        return version.startswith('"') and version.endswith('"') and len(version) > 2

    def _unissued_version(self) -> str:
        # an ETag is the MD5 of the object: every object of ours starts with a fresh nonce,
        # so none has this one
        return '"' + "0" * 32 + '"'

    def endpoint(self) -> str:
        return str(self._client.meta.endpoint_url)


class _Prefixed:
    """A file read as ``head`` followed by its bytes (each object starts with its header)."""

    def __init__(self, head: bytes, fh: Any) -> None:
        self.head, self.fh = head, fh

    def read(self, size: int = -1) -> bytes:
        if not self.head:
            return self.fh.read(size)
        if size is None or size < 0:
            out, self.head = self.head + self.fh.read(), b""
            return out
        out, self.head = self.head[:size], self.head[size:]
        return out + (self.fh.read(size - len(out)) if len(out) < size else b"")


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def open_s3(url: str) -> S3Store:
    """``s3://<bucket>/<prefix>``."""
    bucket, _, prefix = url[len("s3://"):].partition("/")
    return S3Store(bucket, prefix)
