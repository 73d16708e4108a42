"""``gdrive://``: a store in a Google Drive folder, through the Drive API (v2).

Built on what real Drive guarantees, not on what it usually does, and correct whatever
Drive answers where its behaviour is unproven or reported odd (docs/gdrive.md has the
table and the sources). This module is the Store contract; ``gdrive_transport`` sends
requests and retries them, ``gdrive_files`` writes files by id with nonces, and
``gdrive_catalog`` keeps the key -> file id map and makes store folders.

- **Safety rests on two confirmed behaviours only**: a media update with ``If-Match``
  answers 412 on a mismatch, and inserts take pre-generated ids (``files.generateIds``).
- **Nothing depends on search.** ``files.list`` lags inserts by seconds, so keys are
  never looked up by title: the catalog maps them to ids, and ``files.get`` by id is
  consistent.
- **Versions name a file and the write it holds** (``<fileId>:<nonce>``), not its etag,
  which can change with no content change: a compare-and-swap is one ``files.update``
  with ``If-Match`` of the etag last seen for that write, so a lease renewal or a
  manifest checkpoint costs one request. A 412 is read again by id, and is a ``Conflict``
  only when another write is there.
- **A create** takes a pre-generated id, inserts the file with it, then adds it to the
  catalog by compare-and-swap. The first catalog entry wins; a loser deletes its own
  orphan. An insert that failed or lost its answer is settled by reading its id.
- **A save's chunks go up as one batch** (``new_records()``, ``gdrive_batch``): their ids
  are reserved in the catalog by one change, the files inserted under them, and one more
  change catalogues them all; files a killed save left are removed by a later save once
  their reservation is ``pending_max_age`` seconds old (default an hour), or by ``sweep``.
- **A delete** first makes the file a tombstone (by compare-and-swap: stale writers then
  fail), then takes it out of the catalog, and only then deletes it where this account
  may: a file is removed only once no catalog names it, so a DELETE needs no ``If-Match``.
  Files another account owns stay as empty tombstones. Trashed files count as absent.
- **Shared by id.** ``Store.url`` is ``gdrive://id/<folderId>``, what another runtime
  (another account the folder is shared with) opens; ``open_store`` also takes a folder
  link ``https://drive.google.com/drive/folders/<id>``. ``gdrive://<path>`` finds or
  creates a store folder under the caller's own My Drive (by search, so it is for one
  account, not for sharing). Only the path form (or ``create=True``) creates a store: a
  folder opened by id that holds none is refused.
- **Large files are streamed** (``put_file``/``get_file``): above 5 MB a file goes up in a
  resumable upload session, 8 MB a request; downloads are ranged and checked against the
  file's MD5.
- Rate limits, 5xx, timeouts and dropped connections are retried with backoff, then a
  ``StoreError`` names the key. Such a write **may have landed**; callers must be right
  either way.

``endpoint=`` (or ``SESSIONKIT_GDRIVE_ENDPOINT``) points the client elsewhere than
Google, for the tests' emulator (no real Drive is reachable from CI).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from typing import Any, Optional

from ..backoff import Backoff
from ..errors import Conflict, DriveMoved as Moved, DriveRefused as Refused, StoreError
from .base import ABSENT, CHUNK_BYTES, Expect, Record, Store, check_data, check_expect, check_key, check_prefix, \
    replace_file
from .gdrive_auth import sign_in
from .gdrive_batch import DriveNewRecords, sweep_pending
from .gdrive_catalog import Catalog, open_catalog, resolve_path
from .gdrive_files import NONCE, TOMBSTONE_PROPERTY, DriveFiles, alive, nonce_of, version_of
from .gdrive_transport import Content, LocalFile, Transport, service_account_hint

__all__ = ["GDriveStore", "open_gdrive", "open_drive_link", "folder_id_from_link"]

log = logging.getLogger("sessionkit.gdrive")
#: a read is metadata then content; when a write lands between them the read is tried
#: again, for up to ``timeout`` seconds, pausing a little longer each time so that a
#: reader racing busy writers of one key gets a quiet moment
RACED_READ = Backoff(0.01, 0.5)
#: seconds after which a save's reserved, uncatalogued files count as a killed save's: an
#: hour, far beyond the time between two reservation changes of a live save (20 chunks)
PENDING_MAX_AGE = 3600.0
_LINK = re.compile(r"^https://drive\.google\.com/(?:drive/(?:u/\d+/)?folders/|open\?id=)([A-Za-z0-9_-]{10,})")


class _Taken(Exception):
    """A create lost: the catalog names another live file for the key."""

    def __init__(self, meta: dict[str, Any]) -> None:
        super().__init__(meta["id"])
        self.meta = meta


def folder_id_from_link(link: str) -> Optional[str]:
    """The folder id in a Drive folder link (``https://drive.google.com/drive/folders/<id>...``)."""
    match = _LINK.match(link.strip())
    return match.group(1) if match else None


class GDriveStore(Store):
    """A store in one Drive folder. See the module docstring for what is guaranteed.

    ``create``: make the store when the folder holds none (default: True for a path,
    False for ``folder_id``, which is how other runtimes open it)."""

    #: every operation is a network request: callers poll it less often (Job.control_poll)
    remote = True

    def __init__(self, folder: Optional[str] = None, *, folder_id: Optional[str] = None,
                 create: Optional[bool] = None, credentials: Any = None, service_account: Optional[str] = None,
                 credentials_file: Optional[str] = None, endpoint: Optional[str] = None, http: Any = None,
                 retries: int = 5, backoff: float = 0.5, max_backoff: float = 8.0, timeout: float = 20.0,
                 pending_max_age: float = PENDING_MAX_AGE) -> None:
        if (folder is None) == (folder_id is None):
            raise ValueError("give a folder path under My Drive or a folder_id (gdrive://<path>, "
                             "gdrive://id/<folderId> or a Drive folder link)")
        if retries < 1 or timeout <= 0 or backoff < 0:
            raise ValueError(f"retries must be >= 1, timeout > 0 s and backoff >= 0 s "
                             f"(got {retries}, {timeout}, {backoff})")
        if isinstance(pending_max_age, bool) or not isinstance(pending_max_age, (int, float)) \
                or not pending_max_age >= 0:
            raise ValueError(f"pending_max_age is seconds >= 0 (how old a killed save's uncatalogued files are "
                             f"before a later save removes them; default {PENDING_MAX_AGE:g}); got {pending_max_age!r}")
        self.retries, self.backoff, self.max_backoff, self.timeout = retries, backoff, max_backoff, timeout
        #: seconds after which a batch's reserved ids count as a killed save's (``gdrive_batch``)
        self.pending_max_age = float(pending_max_age)
        self.endpoint = endpoint or os.environ.get("SESSIONKIT_GDRIVE_ENDPOINT") or None
        self.folder_id = folder_id or ""
        auth = sign_in(credentials=credentials, service_account=service_account, credentials_file=credentials_file)
        #: how requests are sent and retried (``transport.stats`` counts them)
        self.transport = Transport(auth, endpoint=self.endpoint, http=http, retries=retries, backoff=backoff,
                                   max_backoff=max_backoff, timeout=timeout)
        #: the store's files by id, with nonces
        self.files = DriveFiles(self.transport)
        self._seen: dict[str, tuple[str, str]] = {}  # key -> (file id, nonce) last seen or written
        if folder is not None:
            if auth.service_account:
                raise StoreError(service_account_hint(f"gdrive://{folder}"))
            self.folder_id = resolve_path(self.files, folder)
        self.url = f"gdrive://id/{self.folder_id}"
        self.transport.link = self.link
        self.catalog: Catalog = open_catalog(
            self.files, self.folder_id, self.url, create=folder is not None if create is None else create,
            service_account=auth.service_account, source=auth.source, wait=timeout)
        if folder is not None:
            log.info("gdrive://%s is %s (%s): give other runtimes that URL or link; the path means "
                     "another folder in another account", folder, self.url, self.link)

    @property
    def link(self) -> str:
        """The folder's link in Drive's web page (what its Share button gives)."""
        if not self.folder_id:
            return "(the store's folder, not found yet)"
        return f"https://drive.google.com/drive/folders/{self.folder_id}"

    @property
    def stats(self) -> dict[str, Any]:
        """Requests made, by method; retries; errors by status or kind."""
        return self.transport.stats

    # -- by key -------------------------------------------------------------------

    def _live_meta(self, key: str) -> Optional[dict[str, Any]]:
        """Metadata of the key's live file, or None when the key holds no record."""
        file_id = self.catalog.file_id(key)
        for fresh in (False, True):
            if file_id is None:
                return None
            meta = self.files.get_meta(key, file_id)
            if alive(meta):
                return meta
            if fresh:
                return None
            file_id = self.catalog.file_id(key, fresh=True)  # a stale cache names a dead file
        return None

    def _version_of(self, key: str) -> Optional[str]:
        meta = self._live_meta(key)
        return self._record_version(key, meta) if meta else None

    def _parse(self, key: str, version: str) -> Optional[tuple[str, str]]:
        """(file id, nonce) if ``version`` is one of this key's versions."""
        file_id, _, nonce = version.partition(":")
        if not file_id or not NONCE.fullmatch(nonce):
            return None
        if self.catalog.keys.get(key) != file_id and self.catalog.file_id(key, fresh=True) != file_id:
            return None  # another key's file (or a deleted one): never write there
        return file_id, nonce

    def _record_version(self, key: str, meta: dict[str, Any]) -> str:
        self._seen[key] = (meta["id"], nonce_of(meta))
        return version_of(meta)

    def _wrote(self, key: str, file_id: str, nonce: str) -> str:
        self._seen[key] = (file_id, nonce)
        return f"{file_id}:{nonce}"

    # -- the contract ------------------------------------------------------------

    def get(self, key: str) -> Optional[Record]:
        check_key(key)
        meta = self._live_meta(key)
        for _attempt in RACED_READ.attempts(at_least=8, for_seconds=self.timeout):
            if meta is None:
                return None
            data = self.files.download(key, meta["id"])
            digest = hashlib.md5(data).hexdigest() if data is not None else None
            if digest is not None and digest == meta.get("md5Checksum"):
                return Record(data, self._record_version(key, meta))  # type: ignore[arg-type]
            # It changed between the two reads. The content downloaded is usually the newest
            # write: if the metadata read now has its checksum, that version holds exactly it.
            meta = self._live_meta(key)
            if meta is not None and digest is not None and digest == meta.get("md5Checksum"):
                return Record(data, self._record_version(key, meta))  # type: ignore[arg-type]
        raise StoreError(f"Google Drive: {key!r} keeps changing while being read; try again", key=key)

    def put(self, key: str, data: bytes, *, expect: Expect = None) -> str:
        check_key(key)
        data = check_data(key, data)
        check_expect(key, expect)
        if expect is ABSENT:
            return self._create(key, data, exclusive=True)
        if isinstance(expect, str):
            target = self._parse(key, expect)
            if target is None:
                raise Conflict(key, expect, self._version_of(key))
            try:
                meta, nonce = self.files.swap(key, target[0], target[1], data, {})
            except Moved as moved:
                now = moved.current
                raise Conflict(key, expect, version_of(now) if alive(now) else self._version_of(key)) from None
            except Refused as exc:
                raise self.transport.refusal("write", key, exc) from None
            if not alive(meta):  # trashed by hand: the key holds no record
                raise Conflict(key, expect, None)
            return self._wrote(key, target[0], nonce)
        return self._overwrite(key, data)

    def _overwrite(self, key: str, data: Content) -> str:
        """An unconditional put: a compare-and-swap on the write last seen, read again when
        another write is there (never an update without If-Match, which could revive a
        tombstone)."""
        for _attempt in range(20):
            seen = self._seen.get(key)
            if seen is None or self.catalog.keys.get(key) != seen[0]:
                meta = self._live_meta(key)
                if meta is None:
                    return self._create(key, data, exclusive=False)
                self._record_version(key, meta)
                seen = self._seen[key]
            try:
                meta, nonce = self.files.swap(key, seen[0], seen[1], data, {})
            except Moved:
                self._seen.pop(key, None)
                continue
            except Refused as exc:
                raise self.transport.refusal("write", key, exc) from None
            if not alive(meta):
                self._seen.pop(key, None)
                continue
            return self._wrote(key, seen[0], nonce)
        raise StoreError(f"Google Drive: {key!r} keeps changing while being written; try again", key=key)

    def _create(self, key: str, data: Content, exclusive: bool) -> str:
        meta = self.files.insert(key, data, key, self.folder_id)
        new_id, nonce = meta["id"], nonce_of(meta)

        def add(catalog: dict[str, str]) -> Optional[dict[str, str]]:
            current = catalog.get(key)
            if current == new_id:
                return None  # an earlier try landed
            if current is not None:
                other = self.files.get_meta(key, current)
                if alive(other):
                    raise _Taken(other)  # type: ignore[arg-type]
            catalog[key] = new_id
            return catalog

        try:
            self.catalog.change(key, add)
        except _Taken as lost:
            self.files.remove(key, new_id)  # no catalog names it: an orphan of ours
            winner = lost.meta
            if exclusive:
                raise Conflict(key, ABSENT, version_of(winner)) from None
            self._record_version(key, winner)
            return self._overwrite(key, data)
        return self._wrote(key, new_id, nonce)

    def delete(self, key: str, *, expect: Expect = None) -> bool:
        check_key(key)
        check_expect(key, expect)
        if expect is ABSENT:
            current = self._version_of(key)
            if current is not None:
                raise Conflict(key, expect, current)
            return False
        for _attempt in range(20):
            if isinstance(expect, str):
                target = self._parse(key, expect)
                if target is None:
                    raise Conflict(key, expect, self._version_of(key))
                file_id, nonce = target
            else:
                meta = self._live_meta(key)
                if meta is None:
                    return False
                file_id, nonce = meta["id"], nonce_of(meta)
            try:  # the tombstone is the delete: stale writers of the file fail from now on
                tomb, _nonce = self.files.swap(key, file_id, nonce, b"", {TOMBSTONE_PROPERTY: "1"})
            except Moved:
                if isinstance(expect, str):
                    raise Conflict(key, expect, self._version_of(key)) from None
                continue  # it changed meanwhile: delete what is there now
            except Refused as exc:
                raise self.transport.refusal("delete", key, exc) from None
            self.catalog.change(key, lambda c: (c.pop(key), c)[1] if c.get(key) == file_id else None)
            self._seen.pop(key, None)
            if (tomb.get("capabilities") or {}).get("canDelete"):
                self.files.remove(key, file_id)  # no catalog names it now: free the space
            return True
        raise StoreError(f"Google Drive: {key!r} keeps changing while being deleted; try again", key=key)

    def doctor_checks(self) -> list:
        """Drive's unproven behaviours (gdrive_probe.py), asked of the live service. None is
        needed: the store is correct whichever way each goes (docs/gdrive.md); the answers
        tell what real Drive does."""
        from .checks import Check
        from .gdrive_probe import probe_unproven

        return [Check(name, verdict, detail, needed=False) for name, verdict, detail in probe_unproven(self)]

    def new_records(self) -> DriveNewRecords:
        """A batch of new files catalogued together (``gdrive_batch``): two catalog changes
        for a save's chunks instead of one per chunk."""
        return DriveNewRecords(self)

    def sweep(self, max_age: Optional[float] = None) -> int:
        """Remove the files killed saves left uncatalogued, once their reservation is older
        than ``max_age`` seconds (default ``pending_max_age``); how many. ``sessionkit gc``
        runs it; a save does it too, on the way."""
        if max_age is not None and (isinstance(max_age, bool) or not isinstance(max_age, (int, float))
                                    or not max_age >= 0):
            raise ValueError(f"max_age is seconds >= 0; got {max_age!r}")
        self.catalog.load("(sweep)")
        return sweep_pending(self, self.pending_max_age if max_age is None else float(max_age))

    def list(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        self.catalog.load(prefix or "(all keys)")
        return sorted(k for k in self.catalog.keys if k.startswith(prefix))

    # -- large records -------------------------------------------------------------

    def put_file(self, key: str, path: "str | os.PathLike[str]") -> str:
        """Write a local file at ``key``: one request up to 5 MB, else a resumable upload
        session (see the module docstring). Like ``put(key, data)``."""
        check_key(key)
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise StoreError(f"cannot store {path} at {key!r}: it is not a file", key=key)
        return self._overwrite(key, LocalFile(path))

    def get_file(self, key: str, path: "str | os.PathLike[str]") -> Optional[str]:
        """Download the record at ``key`` into ``path`` in ranged requests of ``CHUNK_BYTES``;
        ``path`` is replaced only once the content matches the file's MD5."""
        import httplib2
        from googleapiclient.errors import HttpError
        from googleapiclient.http import MediaIoBaseDownload

        check_key(key)
        meta = self._live_meta(key)
        for _attempt in RACED_READ.attempts(at_least=8, for_seconds=self.timeout):
            if meta is None:
                return None
            file_id = meta["id"]
            digest = hashlib.md5()
            try:
                with replace_file(path) as fh:
                    sink = _HashingWriter(fh, digest)
                    download = MediaIoBaseDownload(sink, self.transport.service().files().get_media(
                        fileId=file_id, supportsAllDrives=True), chunksize=CHUNK_BYTES)
                    done = False
                    while not done:
                        self.transport.count_request("download")
                        _status, done = download.next_chunk(num_retries=self.retries)
                    if digest.hexdigest() != meta.get("md5Checksum"):
                        raise _Changed()
            except _Changed:
                meta = self._live_meta(key)  # it changed while being read: read it again
                continue
            except HttpError as exc:
                if int(exc.resp.status) == 404:  # removed meanwhile: the catalog says what is there now
                    meta = self._live_meta(key)
                    continue
                raise self._download_failed(key, path, exc) from None
            except (OSError, httplib2.HttpLib2Error) as exc:  # socket and TLS errors are OSErrors
                raise self._download_failed(key, path, exc) from None
            return self._record_version(key, meta)
        raise StoreError(f"Google Drive: {key!r} keeps changing while being read; try again", key=key)

    @staticmethod
    def _download_failed(key: str, path: str, exc: BaseException) -> StoreError:
        return StoreError(f"Google Drive: downloading {key!r} failed after retries ({type(exc).__name__}: "
                          f"{exc}); {path} was left as it was. Check the network and try again.", key=key)


class _Changed(Exception):
    """The file changed while it was downloaded (its MD5 is not the one read before)."""


class _HashingWriter:
    """A file that feeds what is written to it to a hash as well (downloads are checked
    as they arrive, without reading the file again)."""

    def __init__(self, fh: Any, digest: Any) -> None:
        self.fh, self.digest = fh, digest

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.fh.write(data)


def open_gdrive(url: str) -> GDriveStore:
    """``gdrive://<folder path under My Drive>`` or ``gdrive://id/<folderId>``."""
    rest = url[len("gdrive://"):]
    if not rest.strip("/"):
        raise ValueError(f"{url!r} names no folder: use gdrive://id/<folderId>, a Drive folder link, or "
                         f"gdrive://<folder path under My Drive>")
    if rest.startswith("id/"):
        return GDriveStore(folder_id=rest[3:].strip("/"))
    return GDriveStore(rest)


def open_drive_link(url: str) -> GDriveStore:
    """A Drive folder link, as Drive's Share button gives it."""
    folder_id = folder_id_from_link(url)
    if folder_id is None:
        raise ValueError(f"{url!r} is not a Google Drive folder link; the only https:// stores are Drive "
                         f"folders (https://drive.google.com/drive/folders/<id>)")
    return GDriveStore(folder_id=folder_id)
