"""What object stores with native conditional writes share (``gs://``, ``s3://``).

Each backend overrides three hooks on whole objects under ``<bucket>/<prefix>/<key>``:
``_read(name) -> Obj | None``, ``_write(name, body, ...) -> version`` (raising
``_PreconditionFailed`` when its condition does not hold) and ``_names(prefix)``;
plus ``_retryable(exc)``, ``_unissued_version()`` and ``endpoint()``. This class does
the rest, the same way for both:

- ``expect=ABSENT`` is the server's atomic create; ``expect=<version>`` a conditional
  write; versions are the server's (a GCS generation, an S3 ETag). No listing on any
  read or write path.
- **A delete is a tombstone** written conditionally (an empty object, for S3; a
  metadata flag for GCS), so its correctness never depends on the server honouring a
  precondition on DELETE (fake-gcs-server ignores ``ifGenerationMatch`` there). Reads
  and lists treat tombstones as absent; a create replaces one conditionally.
- **Every write carries a nonce**: when a write answers 412 (a retry of a write whose
  answer was lost, by us or by the client library), the object is read and the write
  counts as done if the nonce there is ours. A ``StoreError`` after the retries says
  the write may or may not have landed, as the contract says.
- **Large records are streamed** (``put_file``/``get_file``, hooks ``_write_file`` and
  ``_read_file``): a GCS resumable upload or an S3 multipart upload of ``CHUNK_BYTES``
  parts, which the server makes an object only when complete.
- Rate limits, 5xx, S3's 409 ``ConditionalRequestConflict`` and dropped connections are
  retried with truncated exponential backoff and jitter, then ``StoreError`` names the key.
- **The service is checked on first open** (``check_service``, called by ``open_store``):
  a create-only write to an object that exists and a write with ``If-Match`` of a version
  the object does not hold must both be refused, or the store is refused with a
  ``StoreError`` naming the endpoint (some S3-compatible services are reported to ignore
  both headers). A store made directly (``S3Store(...)``) is not checked until
  ``check_service()`` is called. The answer is remembered in the store, in the object
  ``.sessionkit/preconditions`` (each endpoint that passed and its date; never a
  caller's key, never listed), and in this process. Cost: a first open 5 requests (a
  read, the record's create, the two checks, the record); a later open 1 read (GCS: 2);
  a later open in the same process none. A precondition on DELETE is never checked:
  the stores do not use one (tombstones).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Optional, TypeVar

from ..backoff import Backoff
from ..errors import Conflict, StoreError
from .base import (ABSENT, RESERVED_PREFIX, Expect, Record, Store, check_data, check_expect, check_key,
                   check_prefix)

__all__ = ["Obj", "ObjectStore"]

T = TypeVar("T")

#: the key of the record of the first-open check (under the store's prefix)
CHECKED_KEY = RESERVED_PREFIX + "preconditions"
CHECKED_KIND = "sessionkit.preconditions-checked"

# (endpoint, store url) pairs checked in this process: later opens cost no request
_checked_here: set[tuple[str, str]] = set()
_checked_lock = threading.Lock()


class _PreconditionFailed(Exception):
    """The server refused a conditional write (HTTP 412); internal to the object-store
    backends (callers see Conflict)."""


@dataclass(frozen=True)
class Obj:
    """An object as read: its payload, version, the nonce of the write that made it."""

    data: bytes
    version: str
    nonce: Optional[str]
    tombstone: bool


class ObjectStore(Store):
    """Base of the object-store backends; see the module docstring."""

    #: every operation is a network request: callers poll it less often (Job.control_poll)
    remote = True

    scheme = ""
    #: how the service is asked to create only, and to write only over one version (messages)
    create_only_condition = ""
    match_condition = ""

    def __init__(self, bucket: str, prefix: str, *, retries: int = 5, backoff: float = 0.2,
                 max_backoff: float = 8.0) -> None:
        if not bucket:
            raise ValueError(f"a {self.scheme}:// store needs a bucket: {self.scheme}://<bucket>/<prefix>")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.url = f"{self.scheme}://{bucket}/{self.prefix}".rstrip("/")
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self._backoff = Backoff(backoff, max_backoff)
        self.stats: dict[str, Any] = {"requests": 0, "retries": 0, "by_method": {}, "errors": {}}
        self._lock = threading.Lock()

    # -- hooks ---------------------------------------------------------------------

    def _read(self, name: str) -> Optional[Obj]:
        raise NotImplementedError

    def _write(self, name: str, data: bytes, *, create_only: bool, match: Optional[str], nonce: str,
               tombstone: bool) -> str:
        raise NotImplementedError

    def _write_file(self, name: str, path: str, nonce: str) -> str:
        """Upload the local file ``path`` as ``name`` in parts; return its version."""
        raise NotImplementedError

    def _read_file(self, name: str, path: str) -> Optional[str]:
        """Download ``name`` into ``path`` in parts (``replace_file``); its version, or None
        when there is no record (absent or a tombstone)."""
        raise NotImplementedError

    def _names(self, prefix: str) -> list[tuple[str, bool]]:
        """(object name, is a tombstone) for every object whose name starts with ``prefix``."""
        raise NotImplementedError

    def _retryable(self, exc: BaseException) -> bool:
        raise NotImplementedError

    def _valid_version(self, version: str) -> bool:
        """Whether ``version`` could be one of this server's versions (else never sent)."""
        return bool(version)

    def _unissued_version(self) -> str:
        """A well-formed version no object of ours ever holds (for the first-open check)."""
        raise NotImplementedError

    def endpoint(self) -> str:
        """The URL of the service this store talks to (for messages and the check record)."""
        raise NotImplementedError

    # -- plumbing -------------------------------------------------------------------

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _count(self, what: str) -> None:
        """Count one request (a hook that makes a second request inside one call says so)."""
        with self._lock:
            self.stats["requests"] += 1
            self.stats["by_method"][what] = self.stats["by_method"].get(what, 0) + 1

    def _call(self, what: str, key: str, op: Callable[[], T]) -> T:
        attempt = 0
        while True:
            self._count(what)
            try:
                return op()
            except _PreconditionFailed:
                raise
            except Exception as exc:  # each client library raises its own types: _retryable sorts them
                if not self._retryable(exc):
                    raise
                with self._lock:
                    name = type(exc).__name__
                    self.stats["errors"][name] = self.stats["errors"].get(name, 0) + 1
                attempt += 1
                if attempt >= self.retries:
                    raise StoreError(f"{self.url}: {what} {key!r} failed after {attempt} tries "
                                     f"({type(exc).__name__}). A write may have landed all the same; "
                                     f"the store stays consistent either way. Check the network or the "
                                     f"endpoint, or wait if the service limits your rate.", key=key) from None
                with self._lock:
                    self.stats["retries"] += 1
                self._backoff.sleep(attempt)

    def _current(self, key: str) -> Optional[Obj]:
        return self._call("read", key, lambda: self._read(self._name(key)))

    def _put_checked(self, key: str, data: bytes, *, create_only: bool = False, match: Optional[str] = None,
                     tombstone: bool = False) -> str:
        """A conditional write; on 412, succeed if the object holds this very write (its
        answer was lost and a retry found it), else raise ``_PreconditionFailed``."""
        nonce = uuid.uuid4().hex
        try:
            return self._call("write", key, lambda: self._write(self._name(key), data, create_only=create_only,
                                                               match=match, nonce=nonce, tombstone=tombstone))
        except _PreconditionFailed:
            now = self._current(key)
            if now is not None and now.nonce == nonce:
                return now.version
            raise

    # -- the first-open check -------------------------------------------------------

    def check_service(self) -> None:
        """Refuse a service that does not enforce create-only and ``If-Match`` writes (see
        the module docstring); once passed, remembered in the store and in this process."""
        endpoint = self.endpoint()
        with _checked_lock:
            if (endpoint, self.url) in _checked_here:
                return
        name = self._name(CHECKED_KEY)
        now = self._call("read", CHECKED_KEY, lambda: self._read(name))
        passed = _passed(now.data) if now is not None and not now.tombstone else {}
        if endpoint not in passed:
            self._check_preconditions(name, endpoint, passed, exists=now is not None)
        with _checked_lock:
            _checked_here.add((endpoint, self.url))

    def _check_preconditions(self, name: str, endpoint: str, passed: dict[str, str], *, exists: bool) -> None:
        def write(body: dict[str, Any], create_only: bool = False, match: Optional[str] = None) -> bool:
            """Whether the write landed (False: the service refused its condition)."""
            data = json.dumps(dict(body, kind=CHECKED_KIND)).encode()
            try:
                self._call("check", CHECKED_KEY, lambda: self._write(
                    name, data, create_only=create_only, match=match, nonce=uuid.uuid4().hex, tombstone=False))
                return True
            except _PreconditionFailed:
                return False

        if not exists:  # (refused too when a racing opener made it first: the same for the checks)
            write({"status": "checking", "endpoint": endpoint}, create_only=True)
        ignored = []
        if write({"status": "probe: a create-only write that must be refused", "endpoint": endpoint},
                 create_only=True):
            ignored.append(f"create-only writes ({self.create_only_condition} on an object that exists)")
        if write({"status": "probe: a stale conditional write that must be refused", "endpoint": endpoint},
                 match=self._unissued_version()):
            ignored.append(f"conditional writes ({self.match_condition} with a version the object does not hold)")
        if ignored:
            raise StoreError(
                f"{self.url}: the service at {endpoint} does not enforce {' nor '.join(ignored)}. On such a "
                f"service two runtimes can hold one lease and a compare-and-swap can overwrite another "
                f"writer's record, so sessionkit refuses it. Use a service that enforces both (AWS S3, "
                f"Cloudflare R2, Google Cloud Storage) or a gdrive:// store; `sessionkit doctor {self.url}` "
                f"shows every check.")
        checked = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write({"status": "enforced", "endpoints": dict(passed, **{endpoint: checked})})

    # -- the contract ---------------------------------------------------------------

    def get(self, key: str) -> Optional[Record]:
        check_key(key)
        now = self._current(key)
        return None if now is None or now.tombstone else Record(now.data, now.version)

    def put(self, key: str, data: bytes, *, expect: Expect = None) -> str:
        check_key(key)
        data = check_data(key, data)
        check_expect(key, expect)
        if expect is None:
            return self._put_checked(key, data)
        if expect is ABSENT:
            for _attempt in range(20):
                try:
                    return self._put_checked(key, data, create_only=True)
                except _PreconditionFailed:
                    now = self._current(key)
                    if now is not None and not now.tombstone:
                        raise Conflict(key, ABSENT, now.version) from None
                    if now is None:
                        continue  # removed meanwhile: try to create again
                try:  # a tombstone is no record: replace it, conditionally
                    return self._put_checked(key, data, match=now.version)
                except _PreconditionFailed:
                    continue
            raise StoreError(f"{self.url}: {key!r} keeps changing while being created; try again", key=key)
        if not self._valid_version(expect):
            raise Conflict(key, expect, self._live_version(key))
        try:
            return self._put_checked(key, data, match=expect)
        except _PreconditionFailed:
            raise Conflict(key, expect, self._live_version(key)) from None

    def _live_version(self, key: str) -> Optional[str]:
        now = self._current(key)
        return None if now is None or now.tombstone else now.version

    def delete(self, key: str, *, expect: Expect = None) -> bool:
        check_key(key)
        check_expect(key, expect)
        if isinstance(expect, str):  # one conditional write: the tombstone
            if not self._valid_version(expect):
                raise Conflict(key, expect, self._live_version(key))
            try:
                self._put_checked(key, b"", match=expect, tombstone=True)
                return True
            except _PreconditionFailed:
                raise Conflict(key, expect, self._live_version(key)) from None
        for _attempt in range(20):
            now = self._current(key)
            live = now if now is not None and not now.tombstone else None
            if expect is ABSENT:
                if live is not None:
                    raise Conflict(key, expect, live.version)
                return False
            if live is None:
                return False
            try:
                self._put_checked(key, b"", match=live.version, tombstone=True)
                return True
            except _PreconditionFailed:
                continue  # it changed meanwhile: delete what is there now
        raise StoreError(f"{self.url}: {key!r} keeps changing while being deleted; try again", key=key)

    def put_file(self, key: str, path: "str | os.PathLike[str]") -> str:
        check_key(key)
        nonce = uuid.uuid4().hex
        return self._call("upload", key, lambda: self._write_file(self._name(key), os.fspath(path), nonce))

    def get_file(self, key: str, path: "str | os.PathLike[str]") -> Optional[str]:
        check_key(key)
        return self._call("download", key, lambda: self._read_file(self._name(key), os.fspath(path)))

    def list(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        skip = len(self.prefix) + 1 if self.prefix else 0
        names = self._call("list", prefix or "(all keys)", lambda: self._names(self._name(prefix) if prefix
                                                                             else (self.prefix + "/" if self.prefix else "")))
        return sorted(name[skip:] for name, tombstone in names
                      if not tombstone and not name[skip:].startswith(RESERVED_PREFIX))


def _passed(data: bytes) -> dict[str, str]:
    """The endpoints the check record says enforced both conditions, with the date of each."""
    try:
        record = json.loads(data)
    except ValueError:
        return {}
    if not isinstance(record, dict) or record.get("kind") != CHECKED_KIND or record.get("status") != "enforced":
        return {}
    endpoints = record.get("endpoints")
    return {str(k): str(v) for k, v in endpoints.items()} if isinstance(endpoints, dict) else {}
