"""``gdrive://``: a store in a Google Drive folder, through the Drive API (v2).

Built on what real Drive guarantees, not on what it usually does
(docs/gdrive.md has the sources):

- **Nothing depends on search.** ``files.list`` lags inserts by seconds, so keys
  are never looked up by title. A *catalog* file maps keys to file ids; its id is
  a property of the store's folder, and it is changed only with ``If-Match``.
  ``files.get`` by id is consistent, so every read and write goes by id.
- **Versions name a file and its etag** (``<fileId>:<etag>``): a compare-and-swap
  is one ``files.update`` with ``If-Match`` and needs no lookup, so a lease renewal
  or a manifest checkpoint costs one request. Drive answers 412 on a mismatch,
  which becomes ``Conflict``. A malformed etag is never sent (Drive answers 500).
- **A create** takes an id from ``files.generateIds``, inserts the file with it,
  then adds it to the catalog by compare-and-swap. The first catalog entry wins;
  a loser deletes its own orphan (it owns it). A retried insert whose first try
  landed is recognised by its id, never duplicated.
- **Every write carries a nonce** (a file property), so after a timeout or a
  retried 5xx the store can tell whether its own write landed: a write that
  answered 412 only because its first try had landed is a success, not a false
  ``Conflict``.
- **A delete** never needs ownership: the file is made a tombstone (a property,
  by compare-and-swap, which changes its etag so stale writers fail), then it
  leaves the catalog; whoever may delete the file then removes it. Files another
  account owns stay as empty tombstones until their owner's store collects them.
  Trashed files count as absent (Drive still serves them by id).
- **Shared by id.** ``Store.url`` is ``gdrive://id/<folderId>``, what another
  runtime (another account the folder is shared with) opens; ``open_store`` also
  takes a folder link ``https://drive.google.com/drive/folders/<id>``.
  ``gdrive://<path>`` finds or creates a folder under the caller's own My Drive
  (by search, so it is for one account, not for sharing) and resolves it to its id.
- **Large files are streamed** (``put_file``/``get_file``): above 5 MB (the limit Drive
  documents for one-request uploads) a file goes up in a resumable upload session, 8 MB
  a request; after a dropped connection or a 5xx the session is asked how much it holds
  and the upload goes on from there (a session Drive forgot starts again). Drive creates
  the file only when the last byte is in, so a half-sent file is never a record.
  Downloads are ranged, 8 MB a request, checked against the file's MD5 at the end.
- Rate limits (403 ``userRateLimitExceeded``/``rateLimitExceeded``, 429), 5xx,
  timeouts and dropped connections are retried with truncated exponential backoff
  and jitter, ``retries`` times, then a ``StoreError`` names the key and says what
  happened. Such a write **may have landed**; callers must be right either way.

``endpoint=`` (or ``SESSIONKIT_GDRIVE_ENDPOINT``) points the client elsewhere than
Google, for the tests' emulator (no real Drive is reachable from CI).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import ssl
import threading
import uuid
from typing import Any, Callable, Optional, Union

from ..backoff import Backoff
from ..errors import Conflict, CorruptRecord, StoreError
from .base import (ABSENT, CHUNK_BYTES, Expect, Record, Store, check_data, check_expect, check_key, check_prefix,
                   replace_file)
from .gdrive_auth import SignIn, sign_in

__all__ = ["GDriveStore", "open_gdrive", "open_drive_link", "folder_id_from_link"]

log = logging.getLogger("sessionkit.gdrive")
FOLDER_MIME = "application/vnd.google-apps.folder"
FIELDS = "id,title,etag,md5Checksum,labels(trashed),properties(key,value),capabilities(canDelete),driveId"
FOLDER_FIELDS = FIELDS + ",mimeType,createdDate"
RATE_REASONS = ("userRateLimitExceeded", "rateLimitExceeded")
#: a read is metadata then content; when a write lands between them the read is tried
#: again, for up to ``timeout`` seconds, pausing a little longer each time so that a
#: reader racing busy writers of one key gets a quiet moment
RACED_READ = Backoff(0.01, 0.5)
CATALOG_PROPERTY = "sessionkitCatalog"
NONCE_PROPERTY = "sessionkitWrite"
TOMBSTONE_PROPERTY = "sessionkitDeleted"
CATALOG_KIND = "sessionkit.gdrive-catalog"
#: files up to this size go up in one request (Drive: "multipart upload ... 5 MB or less");
#: larger ones in a resumable upload session
SIMPLE_UPLOAD_MAX = 5 * 1024 * 1024
_ETAG = re.compile(r'(W/)?"[^"\r\n]{1,200}"')
_LINK = re.compile(r"^https://drive\.google\.com/(?:drive/(?:u/\d+/)?folders/|open\?id=)([A-Za-z0-9_-]{10,})")


class _LocalFile:
    """The content of a write that is a local file (``put_file``): streamed, never read whole."""

    def __init__(self, path: str) -> None:
        self.path = path


Content = Union[bytes, _LocalFile]


class _Refused(Exception):
    """Drive answered a status that retrying cannot change (404, 409, 412, 403 permission, ...).

    ``current``: the file's metadata as read after a 412 (None when gone or not read)."""

    def __init__(self, status: int, reason: str, current: Optional[dict[str, Any]] = None) -> None:
        super().__init__(f"HTTP {status} {reason}".strip())
        self.status, self.reason, self.current = status, reason, current


class _Taken(Exception):
    """A create lost: the catalog names another live file for the key."""

    def __init__(self, meta: dict[str, Any]) -> None:
        super().__init__(meta["id"])
        self.meta = meta


def _props(meta: dict[str, Any]) -> dict[str, str]:
    return {p.get("key"): p.get("value") for p in meta.get("properties") or []}


def _alive(meta: Optional[dict[str, Any]]) -> bool:
    return meta is not None and not (meta.get("labels") or {}).get("trashed") \
        and TOMBSTONE_PROPERTY not in _props(meta)


def folder_id_from_link(link: str) -> Optional[str]:
    """The folder id in a Drive folder link (``https://drive.google.com/drive/folders/<id>...``)."""
    match = _LINK.match(link.strip())
    return match.group(1) if match else None


class GDriveStore(Store):
    """A store in one Drive folder. See the module docstring for what is guaranteed."""

    #: every operation is a network request: callers poll it less often (Job.control_poll)
    remote = True

    def __init__(self, folder: Optional[str] = None, *, folder_id: Optional[str] = None,
                 credentials: Any = None, service_account: Optional[str] = None,
                 credentials_file: Optional[str] = None, endpoint: Optional[str] = None, http: Any = None,
                 retries: int = 5, backoff: float = 0.5, max_backoff: float = 8.0, timeout: float = 20.0) -> None:
        if (folder is None) == (folder_id is None):
            raise ValueError("give a folder path under My Drive or a folder_id (gdrive://<path>, "
                             "gdrive://id/<folderId> or a Drive folder link)")
        if retries < 1 or timeout <= 0 or backoff < 0:
            raise ValueError(f"retries must be >= 1, timeout > 0 and backoff >= 0 "
                             f"(got {retries}, {timeout}, {backoff})")
        self.retries, self.backoff, self.max_backoff, self.timeout = retries, backoff, max_backoff, timeout
        self._backoff = Backoff(backoff, max_backoff)
        self.endpoint = endpoint or os.environ.get("SESSIONKIT_GDRIVE_ENDPOINT") or None
        self.stats: dict[str, Any] = {"requests": 0, "retries": 0, "by_method": {}, "errors": {}}
        self._lock = threading.Lock()  # stats and the caches below
        self._local = threading.local()  # httplib2 connections are not thread-safe
        self._http_factory = http
        self._auth: SignIn = sign_in(credentials=credentials, service_account=service_account,
                                     credentials_file=credentials_file)
        self._ids: dict[str, str] = {}  # key -> file id, from the catalog
        self._etags: dict[str, str] = {}  # key -> etag last seen or written, for unconditional puts
        self._mine: set[str] = set()  # ids this store inserted: it may delete them outright
        self._spare_ids: list[str] = []
        self._catalog_id = ""
        self._catalog_etag = ""
        self._catalog: dict[str, str] = {}
        self._catalog_loaded = False
        if folder is not None and self._auth.service_account:
            raise StoreError(self._service_account_hint(f"gdrive://{folder}"))
        self.folder_id = folder_id or self._resolve_path(folder or "")
        self.url = f"gdrive://id/{self.folder_id}"
        self.link = f"https://drive.google.com/drive/folders/{self.folder_id}"
        self._open_folder()
        if folder is not None:
            log.info("gdrive://%s is %s (%s): give other runtimes that URL or link; the path means "
                     "another folder in another account", folder, self.url, self.link)

    # -- transport ---------------------------------------------------------------

    def _service(self) -> Any:
        service = getattr(self._local, "service", None)
        if service is None:
            import google_auth_httplib2
            import httplib2
            from googleapiclient.discovery import build

            http = self._http_factory() if callable(self._http_factory) else httplib2.Http(timeout=self.timeout)
            # 308 is "Resume Incomplete" in a resumable upload, not a redirect (httplib2 would
            # follow it; googleapiclient's own build_http removes it the same way)
            http.redirect_codes = set(http.redirect_codes) - {308}
            http = google_auth_httplib2.AuthorizedHttp(self._auth.credentials, http=http)
            options = {"api_endpoint": self.endpoint.rstrip("/") + "/drive/v2/"} if self.endpoint else None
            service = build("drive", "v2", http=http, client_options=options, static_discovery=True,
                            cache_discovery=False)
            self._local.service = service
        return service

    def _call(self, what: str, key: str, make: Callable[[Any], Any], if_match: Optional[str] = None) -> Any:
        """One request, retried on rate limits, 5xx, timeouts and dropped connections.

        Returns the parsed answer (bytes for media). Raises ``_Refused`` for answers a
        retry cannot change and ``StoreError`` once the retries are spent. Any try, ours or
        httplib2's own resend, may have landed before its answer was lost.
        """
        from googleapiclient.errors import HttpError

        attempt = 0
        while True:
            request = make(self._service())
            if if_match is not None:
                request.headers["If-Match"] = if_match
            if getattr(request, "resumable", None) is not None:
                return self._send_resumable(what, key, request, lambda: make(self._service()), if_match)
            self._count_request(what)
            try:
                return request.execute()
            except Exception as exc:  # sorted by _transient: it raises what a retry cannot change
                problem = self._transient(what, key, exc)
                if not isinstance(exc, HttpError):
                    self._local.service = None  # a dropped connection: start a fresh one
            attempt += 1
            if attempt >= self.retries:
                raise StoreError(f"Google Drive: {what} {key!r} failed after {attempt} tries ({problem}). "
                                 f"A write may have landed all the same; the store stays consistent "
                                 f"either way. Check the network, or wait if Drive limits your rate.",
                                 key=key)
            with self._lock:
                self.stats["retries"] += 1
            self._backoff.sleep(attempt)

    def _transient(self, what: str, key: str, exc: Exception) -> str:
        """What went wrong, in words, if a retry may help (rate limits, 408, 5xx, timeouts,
        dropped connections); else raise: ``_Refused`` for Drive's other answers, a
        ``StoreError`` for a refused sign-in, the exception itself if it is not Drive's."""
        from googleapiclient.errors import HttpError

        if isinstance(exc, HttpError):
            status, reason = int(exc.resp.status), _reason(exc)
            self._count_error(str(status))
            if not ((status == 403 and reason in RATE_REASONS) or status in (408, 429) or status >= 500):
                raise _Refused(status, reason) from None
            return f"HTTP {status} {reason}".strip()
        if type(exc).__name__ == "RefreshError":  # google.auth.exceptions: revoked or expired
            raise StoreError(f"Google Drive: {what} {key!r}: the sign-in ({self._auth.source}) "
                             f"was refused when refreshed; sign in again (in Colab run "
                             f"google.colab.auth.authenticate_user())", key=key) from None
        transport = isinstance(exc, (socket.timeout, TimeoutError, ConnectionError, ssl.SSLError, OSError))
        if not transport and type(exc).__module__.split(".")[0] not in ("httplib2", "google_auth_httplib2",
                                                                        "google"):
            raise exc
        self._count_error(type(exc).__name__)
        return type(exc).__name__

    def _count_request(self, what: str) -> None:
        with self._lock:
            self.stats["requests"] += 1
            self.stats["by_method"][what] = self.stats["by_method"].get(what, 0) + 1

    def _send_resumable(self, what: str, key: str, request: Any, remake: Callable[[], Any],
                        if_match: Optional[str]) -> Any:
        """A resumable upload, a chunk a request. After a dropped connection, a timeout or a
        5xx, the next call asks the session how much it holds and sends from there
        (googleapiclient does that for a request in its error state); ``retries`` failures
        in a row without progress give up. A session Drive no longer knows (404/410 once it
        exists) starts again from the first byte. Returns the file's metadata."""
        from googleapiclient.errors import HttpError

        attempt, progress, restarts = 0, -1, 0
        while True:
            self._count_request(what)
            try:
                status, answer = request.next_chunk()
                if answer is not None:
                    return answer
                if status is not None and status.resumable_progress > progress:
                    progress, attempt = status.resumable_progress, 0
                continue
            except Exception as exc:  # sorted by _transient: it raises what a retry cannot change
                code = int(exc.resp.status) if isinstance(exc, HttpError) else 0
                if code in (404, 410) and request.resumable_uri is not None and restarts < self.retries:
                    log.info("Google Drive: the upload session for %r is gone (HTTP %d); starting again",
                             key, code)
                    self._count_error(str(code))
                    restarts += 1
                    request = remake()
                    if if_match is not None:
                        request.headers["If-Match"] = if_match
                    progress = -1
                    continue
                problem = self._transient(what, key, exc)  # the request is in its error state
            attempt += 1
            if attempt >= self.retries:
                raise StoreError(f"Google Drive: uploading {key!r} failed after {attempt} tries without "
                                 f"progress ({problem}); nothing of it is a record yet. Check the network "
                                 f"and store it again.", key=key)
            with self._lock:
                self.stats["retries"] += 1
            self._backoff.sleep(attempt)

    def _count_error(self, name: str) -> None:
        with self._lock:
            self.stats["errors"][name] = self.stats["errors"].get(name, 0) + 1

    def _refusal(self, what: str, key: str, exc: _Refused) -> StoreError:
        """A refusal as a StoreError that says what to do."""
        if exc.status == 403 and exc.reason == "storageQuotaExceeded":
            remedy = (self._service_account_hint(self.url) if self._auth.service_account
                      else "the Drive of the account that writes is full: free space or buy storage")
        elif exc.status in (401, 403):
            remedy = (f"this account ({self._auth.source}) may not {what} it: share the folder "
                      f"{self.link} with it as Editor, or sign in as an account that may")
        elif exc.status == 404:
            remedy = "the file or folder is gone or not shared with this account"
        else:
            remedy = "see docs/gdrive.md"
        return StoreError(f"Google Drive: cannot {what} {key!r} ({exc}); {remedy}", key=key)

    @staticmethod
    def _service_account_hint(where: str) -> str:
        return (f"{where}: a service account owns no Drive storage, so it can only write in a shared "
                f"drive (Google: 'Service Accounts do not have storage quota'). Put the store in a "
                f"shared drive and add the service account as a member, or sign in as a user "
                f"(SESSIONKIT_GDRIVE_CREDENTIALS; in Colab google.colab.auth.authenticate_user()).")

    # -- requests by id ----------------------------------------------------------

    def _get_meta(self, key: str, file_id: str, fields: str = FIELDS) -> Optional[dict[str, Any]]:
        try:
            return self._call("get", key, lambda s: s.files().get(fileId=file_id, fields=fields,
                                                                  supportsAllDrives=True))
        except _Refused as exc:
            if exc.status == 404:
                return None
            raise self._refusal("read", key, exc) from None

    def _download(self, key: str, file_id: str) -> Optional[bytes]:
        try:
            return self._call("download", key, lambda s: s.files().get_media(fileId=file_id,
                                                                             supportsAllDrives=True))
        except _Refused as exc:
            if exc.status == 404:
                return None
            raise self._refusal("read", key, exc) from None

    def _update(self, key: str, file_id: str, etag: str, data: Optional[Content],
                properties: dict[str, str]) -> dict[str, Any]:
        """``files.update`` with ``If-Match``; returns the new metadata. Raises ``_Refused``
        (412 a mismatch, 404 gone) after checking that an earlier try did not land."""
        nonce = uuid.uuid4().hex
        body = {"properties": [{"key": k, "value": v, "visibility": "PUBLIC"}
                               for k, v in {**properties, NONCE_PROPERTY: nonce}.items()]}
        try:
            return self._call("update", key, lambda s: s.files().update(
                fileId=file_id, body=body, media_body=_media(data), fields=FIELDS,
                supportsAllDrives=True), if_match=etag)
        except _Refused as exc:
            if exc.status not in (404, 412):
                raise
            # Any layer may have retried (httplib2 resends a dropped PUT by itself): look
            # whether this write is the one that is there.
            current = self._get_meta(key, file_id)
            if current is not None and _props(current).get(NONCE_PROPERTY) == nonce:
                return current  # an earlier try landed; its answer was lost
            exc.current = current
            raise

    def _new_id(self, key: str) -> str:
        with self._lock:
            if self._spare_ids:
                return self._spare_ids.pop()
        answer = self._call("generateIds", key, lambda s: s.files().generateIds(maxResults=20, space="drive"))
        ids = list(answer.get("ids") or [])
        if not ids:
            raise StoreError(f"Google Drive: generateIds gave no ids for {key!r}; try again", key=key)
        with self._lock:
            self._spare_ids.extend(ids[1:])
        return ids[0]

    def _insert(self, key: str, data: Optional[Content], title: str, parent: str,
                mime: Optional[str] = None, properties: Optional[dict[str, str]] = None) -> dict[str, Any]:
        """Insert a file under a generated id; a retry of a landed insert is recognised."""
        file_id = self._new_id(key)
        nonce = uuid.uuid4().hex
        body: dict[str, Any] = {"id": file_id, "title": title, "parents": [{"id": parent}],
                                "properties": [{"key": k, "value": v, "visibility": "PUBLIC"}
                                               for k, v in {**(properties or {}), NONCE_PROPERTY: nonce}.items()]}
        if mime:
            body["mimeType"] = mime
        try:
            meta = self._call("insert", key, lambda s: s.files().insert(
                body=body, media_body=_media(data), fields=FOLDER_FIELDS, supportsAllDrives=True))
        except _Refused as exc:
            landed = self._get_meta(key, file_id) if exc.status in (400, 409) else None
            if landed is None or _props(landed).get(NONCE_PROPERTY) != nonce:
                raise self._refusal("create", key, exc) from None
            meta = landed
        with self._lock:
            self._mine.add(file_id)
        return meta

    def _remove_file(self, key: str, file_id: str) -> None:
        """Delete a file this account may delete (an orphan or a tombstone); failures are logged:
        an orphan costs space, never correctness."""
        try:
            self._call("delete", key, lambda s: s.files().delete(fileId=file_id, supportsAllDrives=True))
        except (_Refused, StoreError) as exc:
            if not (isinstance(exc, _Refused) and exc.status == 404):
                log.info("Google Drive: could not remove unused file %s of %r (%s); `sessionkit gc` "
                         "collects it later", file_id, key, exc)

    # -- folder and catalog ------------------------------------------------------

    def _resolve_path(self, path: str) -> str:
        """Find or create ``path`` under My Drive, by title search: for one account only."""
        parent = "root"
        for name in [p for p in path.strip("/").split("/") if p]:
            q = (f"title = '{_quote(name)}' and '{_quote(parent)}' in parents and trashed = false "
                 f"and mimeType = '{FOLDER_MIME}'")
            found = self._call("list", name, lambda s: s.files().list(
                q=q, maxResults=100, fields=f"items({FOLDER_FIELDS})", supportsAllDrives=True,
                includeItemsFromAllDrives=True)).get("items", [])
            if found:  # prefer an existing store, then the oldest
                found.sort(key=lambda f: (CATALOG_PROPERTY not in _props(f), f.get("createdDate", ""), f["id"]))
                parent = found[0]["id"]
            else:
                parent = self._insert(name, None, name, parent, FOLDER_MIME)["id"]
        return parent

    def _open_folder(self) -> None:
        """Find the store's catalog through the folder's property, creating it the first time."""
        for _attempt in range(5):
            folder = self._get_meta("(store folder)", self.folder_id, FOLDER_FIELDS)
            if folder is None or not _alive(folder) or folder.get("mimeType") != FOLDER_MIME:
                raise StoreError(f"Google Drive: no folder {self.folder_id} reachable by this account "
                                 f"({self._auth.source}): check the link, and share the folder with "
                                 f"this account as Editor")
            if self._auth.service_account and not folder.get("driveId"):
                raise StoreError(self._service_account_hint(self.url))
            catalog_id = _props(folder).get(CATALOG_PROPERTY)
            if catalog_id:
                self._catalog_id = catalog_id
                if self._load_catalog(missing_ok=True):
                    return
            self._create_catalog(folder)
            if self._catalog_loaded:
                return
        raise StoreError(f"Google Drive: the folder {self.folder_id} keeps changing while its store is "
                         f"set up; try again")

    def _create_catalog(self, folder: dict[str, Any]) -> None:
        raw = json.dumps({"kind": CATALOG_KIND, "v": 1, "keys": {}}).encode()
        meta = self._insert("(catalog)", raw, "sessionkit-catalog.json", self.folder_id)
        try:
            self._update("(store folder)", self.folder_id, folder["etag"], None, {CATALOG_PROPERTY: meta["id"]})
        except _Refused as exc:
            self._remove_file("(catalog)", meta["id"])
            if exc.status == 412:
                return  # another runtime set the folder up first: read its catalog
            raise self._refusal("set up the store in", "(store folder)", exc) from None
        self._catalog_id, self._catalog_etag, self._catalog, self._catalog_loaded = meta["id"], meta["etag"], {}, True

    def _load_catalog(self, key: str = "(catalog)", missing_ok: bool = False) -> bool:
        """Read the catalog: its metadata, and its content when the etag changed (one or two
        requests); ``key`` is what the caller wanted, for messages."""
        for _attempt in RACED_READ.attempts(at_least=8, for_seconds=self.timeout):
            meta = self._get_meta(key, self._catalog_id)
            if meta is None or not _alive(meta):
                if missing_ok:
                    return False
                raise StoreError(f"Google Drive: the catalog of {self.url} is gone (deleted or trashed "
                                 f"by hand?); restore it from Drive's trash", key="(catalog)")
            if self._catalog_loaded and meta["etag"] == self._catalog_etag:
                return True  # unchanged since we read it: a miss costs one request, not two
            data = self._download(key, self._catalog_id)
            if data is None or hashlib.md5(data).hexdigest() != meta.get("md5Checksum"):
                continue  # changed between the two reads
            try:
                body = json.loads(data)
                if body.get("kind") != CATALOG_KIND or not isinstance(body.get("keys"), dict):
                    raise ValueError("not a sessionkit catalog")
                keys = {str(k): str(v) for k, v in body["keys"].items()}
            except (ValueError, AttributeError) as exc:
                raise CorruptRecord("(catalog)", self.url, str(exc), meta["etag"]) from None
            with self._lock:
                self._catalog, self._catalog_etag, self._catalog_loaded = keys, meta["etag"], True
                self._ids = dict(keys)
            return True
        raise StoreError(f"Google Drive: the catalog of {self.url} keeps changing while being read; "
                         f"try again", key="(catalog)")

    def _change_catalog(self, key: str, change: Callable[[dict[str, str]], Optional[dict[str, str]]]) -> None:
        """Compare-and-swap the catalog: ``change`` returns the new mapping, or None when
        there is nothing to do (e.g. an earlier try already landed). It may raise."""
        if not self._catalog_loaded:
            self._load_catalog(key)
        for _attempt in range(50):
            new = change(dict(self._catalog))
            if new is None:
                return
            raw = json.dumps({"kind": CATALOG_KIND, "v": 1, "keys": new}, separators=(",", ":")).encode()
            try:
                meta = self._update(key, self._catalog_id, self._catalog_etag, raw, {})
            except _Refused as exc:
                if exc.status != 412:
                    raise self._refusal("update the catalog for", key, exc) from None
                self._load_catalog(key)
                continue
            with self._lock:
                self._catalog, self._catalog_etag, self._ids = new, meta["etag"], dict(new)
            return
        raise StoreError(f"Google Drive: too many writers changed the catalog of {self.url} at once; "
                         f"try again", key=key)

    def _file_id(self, key: str, fresh: bool = False) -> Optional[str]:
        """The key's file id from the catalog (read again when unknown or ``fresh``)."""
        if fresh or not self._catalog_loaded or key not in self._ids:
            self._load_catalog(key)
        return self._ids.get(key)

    def _live_meta(self, key: str) -> Optional[dict[str, Any]]:
        """Metadata of the key's live file, or None when the key holds no record."""
        file_id = self._file_id(key)
        for fresh in (False, True):
            if file_id is None:
                return None
            meta = self._get_meta(key, file_id)
            if _alive(meta):
                return meta
            if fresh:
                return None
            file_id = self._file_id(key, fresh=True)  # a stale cache names a dead file
        return None

    def _version_of(self, key: str) -> Optional[str]:
        meta = self._live_meta(key)
        return f"{meta['id']}:{meta['etag']}" if meta else None

    def _parse(self, key: str, version: str) -> Optional[tuple[str, str]]:
        """(file id, etag) if ``version`` is one of this key's versions in a form Drive takes."""
        file_id, _, etag = version.partition(":")
        if not file_id or not _ETAG.fullmatch(etag):
            return None
        if self._ids.get(key) != file_id and self._file_id(key, fresh=True) != file_id:
            return None  # another key's file (or a deleted one): never write there
        return file_id, etag

    # -- the contract ------------------------------------------------------------

    def get(self, key: str) -> Optional[Record]:
        check_key(key)
        meta = self._live_meta(key)
        for _attempt in RACED_READ.attempts(at_least=8, for_seconds=self.timeout):
            if meta is None:
                return None
            data = self._download(key, meta["id"])
            digest = hashlib.md5(data).hexdigest() if data is not None else None
            if digest is not None and digest == meta.get("md5Checksum"):
                return self._record(key, data, meta)  # type: ignore[arg-type]
            # It changed between the two reads. The content downloaded is usually the newest
            # write: if the metadata read now has its checksum, that version holds exactly it.
            meta = self._live_meta(key)
            if meta is not None and digest is not None and digest == meta.get("md5Checksum"):
                return self._record(key, data, meta)  # type: ignore[arg-type]
        raise StoreError(f"Google Drive: {key!r} keeps changing while being read; try again", key=key)

    def _record(self, key: str, data: bytes, meta: dict[str, Any]) -> Record:
        return Record(data, self._record_version(key, meta))

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
                meta = self._update(key, target[0], target[1], data, {})
            except _Refused as exc:
                if exc.status not in (404, 412):
                    raise self._refusal("write", key, exc) from None
                now = exc.current
                actual = f"{now['id']}:{now['etag']}" if _alive(now) else self._version_of(key)  # type: ignore[index]
                raise Conflict(key, expect, actual) from None
            if not _alive(meta):  # trashed by hand: the key holds no record
                raise Conflict(key, expect, None)
            with self._lock:
                self._etags[key] = meta["etag"]
            return f"{meta['id']}:{meta['etag']}"
        return self._overwrite(key, data)

    def _overwrite(self, key: str, data: Content) -> str:
        """An unconditional put: a compare-and-swap on the version last seen, read again on
        a mismatch (never an update without If-Match, which could revive a tombstone)."""
        file_id, etag = self._ids.get(key), self._etags.get(key)
        for _attempt in range(20):
            if file_id is None or etag is None:
                meta = self._live_meta(key)
                if meta is None:
                    return self._create(key, data, exclusive=False)
                file_id, etag = meta["id"], meta["etag"]
            try:
                meta = self._update(key, file_id, etag, data, {})
            except _Refused as exc:
                if exc.status not in (404, 412):
                    raise self._refusal("write", key, exc) from None
                file_id = etag = None
                continue
            if not _alive(meta):
                file_id = etag = None
                continue
            with self._lock:
                self._etags[key] = meta["etag"]
            return f"{meta['id']}:{meta['etag']}"
        raise StoreError(f"Google Drive: {key!r} keeps changing while being written; try again", key=key)

    def _create(self, key: str, data: Content, exclusive: bool) -> str:
        meta = self._insert(key, data, key, self.folder_id)
        new_id = meta["id"]

        def add(catalog: dict[str, str]) -> Optional[dict[str, str]]:
            current = catalog.get(key)
            if current == new_id:
                return None  # an earlier try landed
            if current is not None:
                other = self._get_meta(key, current)
                if _alive(other):
                    raise _Taken(other)  # type: ignore[arg-type]
            catalog[key] = new_id
            return catalog

        try:
            self._change_catalog(key, add)
        except _Taken as lost:
            self._remove_file(key, new_id)
            winner = lost.meta
            if exclusive:
                raise Conflict(key, ABSENT, f"{winner['id']}:{winner['etag']}") from None
            with self._lock:
                self._ids[key], self._etags[key] = winner["id"], winner["etag"]
            return self._overwrite(key, data)
        with self._lock:
            self._etags[key] = meta["etag"]
        return f"{new_id}:{meta['etag']}"

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
                file_id, etag = target
            else:
                meta = self._live_meta(key)
                if meta is None:
                    return False
                file_id, etag = meta["id"], meta["etag"]
            try:
                if file_id in self._mine:  # ours (inserted here): a conditional delete is the delete
                    tomb = self._delete_mine(key, file_id, etag)
                else:  # the tombstone is the delete: its new etag fails every stale writer
                    tomb = self._update(key, file_id, etag, b"", {TOMBSTONE_PROPERTY: "1"})
            except _Refused as exc:
                if exc.status not in (404, 412):
                    raise self._refusal("delete", key, exc) from None
                if isinstance(expect, str):
                    raise Conflict(key, expect, self._version_of(key)) from None
                continue  # it changed meanwhile: delete what is there now
            self._change_catalog(key, lambda c: (c.pop(key), c)[1] if c.get(key) == file_id else None)
            with self._lock:
                self._etags.pop(key, None)
            if tomb and (tomb.get("capabilities") or {}).get("canDelete"):
                self._remove_file(key, file_id)  # a tombstone we may remove: free the space
            return True
        raise StoreError(f"Google Drive: {key!r} keeps changing while being deleted; try again", key=key)

    def _delete_mine(self, key: str, file_id: str, etag: str) -> dict[str, Any]:
        """Delete a file this store inserted, with ``If-Match``; {} when done. A 404 after a
        retry means an earlier try landed."""
        try:
            self._call("delete", key, lambda s: s.files().delete(fileId=file_id, supportsAllDrives=True),
                       if_match=etag)
        except _Refused as exc:
            if exc.status != 404:  # gone: this delete (retried by some layer) or another one
                raise
        with self._lock:
            self._mine.discard(file_id)
        return {}

    def list(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        self._load_catalog(prefix or "(all keys)")
        return sorted(k for k in self._catalog if k.startswith(prefix))

    # -- large records -------------------------------------------------------------

    def put_file(self, key: str, path: "str | os.PathLike[str]") -> str:
        """Write a local file at ``key``: one request up to 5 MB, else a resumable upload
        session (see the module docstring). Like ``put(key, data)``."""
        check_key(key)
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise StoreError(f"cannot store {path} at {key!r}: it is not a file", key=key)
        return self._overwrite(key, _LocalFile(path))

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
                    download = MediaIoBaseDownload(sink, self._service().files().get_media(
                        fileId=file_id, supportsAllDrives=True), chunksize=CHUNK_BYTES)
                    done = False
                    while not done:
                        self._count_request("download")
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

    def _record_version(self, key: str, meta: dict[str, Any]) -> str:
        with self._lock:
            self._etags[key] = meta["etag"]
        return f"{meta['id']}:{meta['etag']}"


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


def _media(data: Optional[Content]) -> Any:
    """The media of a write: bytes in one request; a local file over 5 MB in a resumable
    upload of ``CHUNK_BYTES`` a request, read from the file as it goes (MediaFileUpload
    closes the file when the request is dropped)."""
    from googleapiclient.http import MediaFileUpload, MediaInMemoryUpload

    if data is None:
        return None
    class ChunkedFile(MediaFileUpload):  # type: ignore[misc]
        def has_stream(self) -> bool:
            # Each chunk as bytes, not a stream slice: httplib2 resends a request on a dropped
            # connection by itself, and a stream it has read sends nothing the second time
            # (the server then waits for the body until the request times out; measured 20 s).
            return False

    if isinstance(data, _LocalFile):
        if os.path.getsize(data.path) > SIMPLE_UPLOAD_MAX:
            return ChunkedFile(data.path, mimetype="application/octet-stream", chunksize=CHUNK_BYTES,
                               resumable=True)
        with open(data.path, "rb") as fh:
            data = fh.read()
    return MediaInMemoryUpload(data, mimetype="application/octet-stream", resumable=False)


def _reason(exc: Any) -> str:
    try:
        body = json.loads(exc.content)
        return body["error"]["errors"][0]["reason"]
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


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
