"""The Store contract: the one seam between sessionkit and where its state lives.

A store maps keys (relative ``/``-separated names) to records: bytes plus an
opaque version string. Four operations, all backends alike:

- ``get(key)`` returns ``Record(data, version)`` or ``None``;
- ``put(key, data, expect=...)`` writes atomically and durably and returns the new
  version; ``expect=None`` writes unconditionally, ``expect=ABSENT`` only creates,
  ``expect=<version>`` is a compare-and-swap; a mismatch raises ``Conflict``;
- ``delete(key, expect=...)`` removes a record, with the same conditions;
- ``list(prefix)`` returns the sorted keys that start with ``prefix``.

Versions never repeat for a key, even after a delete, so a compare-and-swap can
never succeed against a record that was replaced in between (no ABA).

**A write that failed may have landed.** ``Conflict`` means the write did not happen.
Any other ``StoreError`` from ``put`` or ``delete`` (a timeout, a dropped connection,
a 5xx after retries on a remote store) says nothing either way: the change may be in
the store. Callers must be correct in both cases: read the key again before relying on
either (``Lease`` and ``Job`` do; see docs/gdrive.md).

**Large records are streamed.** ``put_file(key, path)`` writes a local file's bytes at
``key`` and ``get_file(key, path)`` writes a record into a local file, a chunk at a time
(Drive: a resumable upload session; GCS: a resumable upload; S3: a multipart upload;
local: a copy), so a record of any size costs a few MB of memory. Both are for
write-once data such as content-addressed blobs: ``put_file`` replaces what ``key``
holds, unconditionally, and the new record appears whole or not at all.
"""

from __future__ import annotations

import abc
import io
import logging
import os
from dataclasses import dataclass, field
from typing import Optional, Union

from ..errors import Conflict, InvalidKey
from .checks import Check
from .new_records import DirectRecords, NewRecords

log = logging.getLogger("sessionkit.store")

__all__ = ["ABSENT", "CHUNK_BYTES", "Expect", "RESERVED_PREFIX", "Record", "Store", "check_key", "check_prefix",
           "check_data", "check_expect", "match_expect", "replace_file"]

#: bytes read or sent at a time by ``put_file``/``get_file`` (a multiple of 256 KiB, as
#: Drive's and GCS's resumable uploads require)
CHUNK_BYTES = 8 * 1024 * 1024


class _Absent:
    """Type of ``ABSENT``: the expectation that a key holds no record."""

    _instance: Optional["_Absent"] = None

    def __new__(cls) -> "_Absent":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __reduce__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()
"""Pass as ``expect=ABSENT`` to create a record only if the key holds none."""

Expect = Union[None, _Absent, str]


@dataclass(frozen=True)
class Record:
    """What a key holds: its bytes and the version that names exactly those bytes."""

    data: bytes
    version: str = field()

    def __repr__(self) -> str:
        return f"Record(version={self.version!r}, {len(self.data)} bytes)"


_MAX_KEY_LENGTH = 1024

#: keys a store keeps for itself (an object store's record of its first-open check);
#: never valid as a caller's key, never listed
RESERVED_PREFIX = ".sessionkit/"


def check_key(key: object) -> str:
    """Return ``key`` if it is a clean relative name, else raise ``InvalidKey``.

    The rules are the same for every backend, so a key that works on a local
    folder works on Drive too, and no key can reach outside a store's root.
    """
    if not isinstance(key, str):
        raise InvalidKey(key, f"a key must be a str, not {type(key).__name__}")
    if not key:
        raise InvalidKey(key, "it is empty")
    if len(key) > _MAX_KEY_LENGTH:
        raise InvalidKey(key[:40] + "...", f"it is longer than {_MAX_KEY_LENGTH} characters")
    if "\x00" in key:
        raise InvalidKey(key, "it contains a NUL character")
    if "\\" in key:
        raise InvalidKey(key, "it contains a backslash (use '/' between segments)")
    if key.startswith("/"):
        raise InvalidKey(key, "it is absolute (starts with '/')")
    if key.startswith(RESERVED_PREFIX):
        raise InvalidKey(key, f"keys under {RESERVED_PREFIX!r} are the store's own records")
    for segment in key.split("/"):
        if segment == "":
            raise InvalidKey(key, "it has an empty segment ('//' or a trailing '/')")
        if segment in (".", ".."):
            raise InvalidKey(key, f"it has a {segment!r} segment")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in segment):
            raise InvalidKey(key, "it contains a control character")
    return key


def check_prefix(prefix: object) -> str:
    """A list prefix: '' (everything) or the start of a key (it may end with '/')."""
    if not isinstance(prefix, str):
        raise InvalidKey(prefix, f"a prefix must be a str, not {type(prefix).__name__}")
    if prefix == "":
        return prefix
    check_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def check_data(key: str, data: object) -> bytes:
    """Return ``data`` as ``bytes``; anything but bytes-like raises TypeError naming the key."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(
        f"put {key!r}: data must be bytes, not {type(data).__name__}; "
        f"encode text first (e.g. json.dumps(obj).encode())"
    )


def check_expect(key: str, expect: object) -> Expect:
    """``expect`` must be None, ABSENT or a version string."""
    if expect is None or expect is ABSENT or isinstance(expect, str):
        return expect  # type: ignore[return-value]
    raise TypeError(
        f"{key!r}: expect must be None, sessionkit.store.ABSENT or a version string "
        f"(Record.version), not {type(expect).__name__}"
    )


def match_expect(key: str, expect: Expect, actual: Optional[str]) -> None:
    """Raise ``Conflict`` unless ``actual`` (the current version, None if absent) meets ``expect``."""
    if expect is None:
        return
    if expect is ABSENT:
        if actual is not None:
            raise Conflict(key, expect, actual)
    elif actual != expect:
        raise Conflict(key, expect, actual)


class Store(abc.ABC):
    """A key-value store of versioned records. See the module docstring for the contract."""

    #: The URL this store was opened from (for messages and records).
    url: str = ""
    #: True where every operation is a network request (Drive, GCS, S3): pollers slow down.
    remote: bool = False

    @abc.abstractmethod
    def get(self, key: str) -> Optional[Record]:
        """The record at ``key``, or ``None`` if there is none."""

    @abc.abstractmethod
    def put(self, key: str, data: bytes, *, expect: Expect = None) -> str:
        """Write ``data`` at ``key`` atomically and durably; return the new version.

        Raises ``Conflict`` when ``expect`` is ``ABSENT`` and a record exists, or is
        a version and the record holds another one (or none).
        """

    @abc.abstractmethod
    def delete(self, key: str, *, expect: Expect = None) -> bool:
        """Remove ``key``; return whether a record was removed.

        With ``expect=<version>`` the record must hold that version (else
        ``Conflict``); with ``expect=ABSENT`` there must be no record.
        """

    @abc.abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """All keys that start with ``prefix``, sorted."""

    def put_file(self, key: str, path: "str | os.PathLike[str]") -> str:
        """Write the bytes of the local file ``path`` at ``key`` (replacing any record) and
        return the new version. Backends stream it; this fallback reads it whole."""
        check_key(key)
        with open(path, "rb") as fh:
            return self.put(key, fh.read())

    def get_file(self, key: str, path: "str | os.PathLike[str]") -> Optional[str]:
        """Write the record at ``key`` into the local file ``path`` (replaced when complete)
        and return its version; ``None`` (``path`` untouched) when there is none. Backends
        stream it; this fallback reads it whole."""
        record = self.get(key)
        if record is None:
            return None
        with replace_file(path) as fh:
            fh.write(record.data)
        return record.version

    def new_records(self) -> "NewRecords":
        """A batch of new records under keys whose content never changes (a save's chunks,
        keyed by their hash): ``new_records.py`` says what it promises. Default: each written
        at once with ``put``/``put_file``."""
        return DirectRecords(self)

    def check_service(self) -> None:
        """Check that the service behind this store enforces what the backend relies on,
        and raise ``StoreError`` naming what it does not. ``open_store`` calls it on every
        open, before any lease or job can use the store. Default: nothing to check (the
        backend enforces its conditions itself, as a local folder does); object stores
        check once and remember it (``objects.py``)."""

    def doctor_checks(self) -> "list[Check]":
        """Checks of this backend's own behaviours for ``sessionkit doctor``, beyond the
        generic ones every store gets; default none. An override writes only keys under
        ``checks.CHECK_PREFIX`` (``doctor/``) and removes what it wrote, even when it fails;
        it answers ``UNKNOWN`` rather than raise when the service settles nothing."""
        return []

    def close(self) -> None:
        """Release resources; the store must not be used afterwards."""

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class replace_file:
    """``with replace_file(path) as fh:`` writes a temporary file beside ``path`` and renames
    it over ``path`` only when the block ends without an error (a download that fails
    leaves ``path`` as it was)."""

    def __init__(self, path: "str | os.PathLike[str]") -> None:
        self.path = os.fspath(path)
        self.tmp = f"{self.path}.part-{os.getpid()}-{os.urandom(4).hex()}"

    def __enter__(self) -> "io.BufferedWriter":
        self.fh = open(self.tmp, "wb")
        return self.fh

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.fh.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                log.debug("no partial download %s to remove", self.tmp)
