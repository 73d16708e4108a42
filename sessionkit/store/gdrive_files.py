"""Drive files addressed by id, each write marked with a nonce: what the ``gdrive://``
store's guarantees rest on.

Only two behaviours of Drive are relied on for safety, both confirmed (docs/gdrive.md):
``files.update`` **with media** and ``If-Match`` answers 412 when the etag is not the
file's, and ``files.insert`` takes ids from ``files.generateIds``.

- **A write's identity is its nonce**, a file property written in the same request as the
  content (``NONCE_PROPERTY``). A record's version is ``<fileId>:<nonce>``, never the etag:
  Drive's etag can change with no content change (a sharing change moves the modified date
  it follows), and an update has been seen answering a stale etag. The etag is only what
  ``If-Match`` needs, remembered per file and read again when in doubt.
- **A compare-and-swap** (``swap``) is an update with ``If-Match`` of the etag last seen
  for the expected nonce. A 412 is read again by id: our nonce there means an earlier try
  landed; the expected nonce still there means the etag moved or Drive refused a current
  one, so it is tried again with the etag read, pausing when the etag did not change,
  within ``timeout``; any other nonce is a real change (``Moved``).
- **An insert** uses a pre-generated id and a nonce; after any failed try, whatever the
  status (409, or the 403 and 500 a resent insert has been answered), the id is read:
  present with our nonce, it landed.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import uuid
from typing import Any, Optional

from ..backoff import Backoff
from ..errors import DriveMoved as Moved, DriveRefused as Refused, StoreError
from .gdrive_transport import Content, Transport, with_media

log = logging.getLogger("sessionkit.gdrive")
FOLDER_MIME = "application/vnd.google-apps.folder"
FIELDS = "id,title,etag,md5Checksum,labels(trashed),properties(key,value),capabilities(canDelete),driveId"
FOLDER_FIELDS = FIELDS + ",mimeType,createdDate"
NONCE_PROPERTY = "sessionkitWrite"
TOMBSTONE_PROPERTY = "sessionkitDeleted"
#: a nonce as versions carry it: ours (uuid4 hex), or for a file no store wrote, its etag's digest
NONCE = re.compile(r"(etag-)?[0-9a-f]{32}")
#: pauses between tries of an update Drive refused at the etag it has (a reported 412 anomaly)
REFUSED_AT_CURRENT = Backoff(0.05, 1.0)


def props(meta: dict[str, Any]) -> dict[str, str]:
    return {p.get("key"): p.get("value") for p in meta.get("properties") or []}


def alive(meta: Optional[dict[str, Any]]) -> bool:
    """The file holds a record: it exists, is not trashed and is not a tombstone."""
    return meta is not None and not (meta.get("labels") or {}).get("trashed") \
        and TOMBSTONE_PROPERTY not in props(meta)


def nonce_of(meta: dict[str, Any]) -> str:
    """The nonce of the write a file holds (for a file no store wrote: its etag's digest)."""
    nonce = props(meta).get(NONCE_PROPERTY)
    if nonce and NONCE.fullmatch(nonce):
        return nonce
    return "etag-" + hashlib.md5(str(meta.get("etag")).encode()).hexdigest()


def version_of(meta: dict[str, Any]) -> str:
    return f"{meta['id']}:{nonce_of(meta)}"


def _properties(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v, "visibility": "PUBLIC"} for k, v in values.items()]


class DriveFiles:
    """Id-addressed requests with nonces (see the module docstring)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._etags: dict[str, tuple[str, str]] = {}  # file id -> (nonce, etag) as last seen
        self._spare_ids: list[str] = []
        self._lock = threading.Lock()  # the spare ids (the etags dict is changed a key at a time)

    # -- what was seen ----------------------------------------------------------------

    def remember(self, meta: dict[str, Any], nonce: Optional[str] = None) -> None:
        """Note the etag that goes with the file's nonce (for the next ``If-Match``)."""
        self._etags[meta["id"]] = (nonce or nonce_of(meta), meta["etag"])

    def known_etag(self, file_id: str, nonce: str) -> Optional[str]:
        seen = self._etags.get(file_id)
        return seen[1] if seen is not None and seen[0] == nonce else None

    # -- reading ------------------------------------------------------------------------

    def get_meta(self, key: str, file_id: str, fields: str = FIELDS) -> Optional[dict[str, Any]]:
        """The file's metadata by id (consistent, unlike search); None when it is gone."""
        try:
            meta = self.transport.call("get", key, lambda s: s.files().get(fileId=file_id, fields=fields,
                                                                           supportsAllDrives=True))
        except Refused as exc:
            if exc.status == 404:
                return None
            raise self.transport.refusal("read", key, exc) from None
        self.remember(meta)
        return meta

    def download(self, key: str, file_id: str) -> Optional[bytes]:
        try:
            return self.transport.call("download", key, lambda s: s.files().get_media(fileId=file_id,
                                                                                      supportsAllDrives=True))
        except Refused as exc:
            if exc.status == 404:
                return None
            raise self.transport.refusal("read", key, exc) from None

    # -- writing ------------------------------------------------------------------------

    def update(self, key: str, file_id: str, etag: str, data: Optional[Content],
               properties: dict[str, str]) -> tuple[dict[str, Any], str]:
        """``files.update`` with ``If-Match``; returns (the new metadata, its nonce). Raises
        ``Refused`` (412 a mismatch, 404 gone; ``current`` read) once it has checked that an
        earlier try of this write did not land. An answer whose etag is the one sent is stale
        (an update always moves the etag): that etag is forgotten, so the next write reads it."""
        nonce = uuid.uuid4().hex
        body = {"properties": _properties({**properties, NONCE_PROPERTY: nonce})}
        try:
            meta = self.transport.call("update", key, lambda s: with_media(
                s.files().update, data, fileId=file_id, body=body, fields=FIELDS,
                supportsAllDrives=True), if_match=etag)
        except Refused as exc:
            if exc.status not in (404, 412):
                raise
            # Any layer may have retried (httplib2 resends a dropped PUT by itself): look
            # whether this write is the one that is there.
            current = self.get_meta(key, file_id)
            if current is not None and nonce_of(current) == nonce:
                return current, nonce  # an earlier try landed; its answer was lost
            exc.current = current
            raise
        if meta.get("etag") == etag:
            self._etags.pop(file_id, None)
        else:
            self.remember(meta, nonce)
        return meta, nonce

    def swap(self, key: str, file_id: str, expected: str, data: Optional[Content],
             properties: dict[str, str]) -> tuple[dict[str, Any], str]:
        """Write over the file only while it holds the write ``expected`` (a nonce). Returns
        (metadata, new nonce); raises ``Moved`` when it holds another write or none."""
        etag = self.known_etag(file_id, expected)
        started, attempt = time.monotonic(), 0
        while True:
            if etag is None:
                current = self.get_meta(key, file_id)
                if not alive(current) or nonce_of(current) != expected:  # type: ignore[arg-type]
                    raise Moved(current)
                etag = current["etag"]  # type: ignore[index]
            try:
                return self.update(key, file_id, etag, data, properties)
            except Refused as exc:
                if exc.status not in (404, 412):
                    raise
                current = exc.current
                if not alive(current) or nonce_of(current) != expected:  # type: ignore[arg-type]
                    raise Moved(current) from None
            # the expected write is still there: its etag moved (tried again at once), or Drive
            # refused the etag it has (tried again after a pause), for up to ``timeout`` seconds
            attempt += 1
            if time.monotonic() - started > self.transport.timeout:
                raise StoreError(f"Google Drive: {key!r}: Drive kept refusing (HTTP 412) a write at the "
                                 f"file's current version for {self.transport.timeout:g} s ({attempt} tries); "
                                 f"nothing was written; try again", key=key)
            self.transport.count_error("412-at-current")
            if current["etag"] == etag or attempt > 3:  # type: ignore[index]
                REFUSED_AT_CURRENT.sleep(attempt)
            etag = current["etag"]  # type: ignore[index]

    def new_id(self, key: str) -> str:
        """A pre-generated file id (``files.generateIds``, twenty at a time)."""
        with self._lock:
            if self._spare_ids:
                return self._spare_ids.pop()
        answer = self.transport.call("generateIds", key,
                                     lambda s: s.files().generateIds(maxResults=20, space="drive"))
        ids = list(answer.get("ids") or [])
        if not ids:
            raise StoreError(f"Google Drive: generateIds gave no ids for {key!r}; try again", key=key)
        with self._lock:
            self._spare_ids.extend(ids[1:])
        return ids[0]

    def insert(self, key: str, data: Optional[Content], title: str, parent: str, mime: Optional[str] = None,
               properties: Optional[dict[str, str]] = None, file_id: Optional[str] = None) -> dict[str, Any]:
        """Insert a file under a pre-generated id (``file_id``, else a new one). After any
        failed try the id is read: there with our nonce, the insert landed."""
        file_id = file_id or self.new_id(key)
        nonce = uuid.uuid4().hex
        body: dict[str, Any] = {"id": file_id, "title": title, "parents": [{"id": parent}],
                                "properties": _properties({**(properties or {}), NONCE_PROPERTY: nonce})}
        if mime:
            body["mimeType"] = mime

        def landed() -> Optional[dict[str, Any]]:
            found = self.get_meta(key, file_id, FOLDER_FIELDS)  # type: ignore[arg-type]
            return found if found is not None and nonce_of(found) == nonce else None

        try:
            meta = self.transport.call("insert", key, lambda s: with_media(
                s.files().insert, data, body=body, fields=FOLDER_FIELDS, supportsAllDrives=True),
                settle=landed)
        except Refused as exc:
            raise self.transport.refusal("create", key, exc) from None
        self.remember(meta, nonce)
        return meta

    def remove(self, key: str, file_id: str) -> None:
        """Delete a file no catalog names (an orphan or a tombstone), without ``If-Match``
        (whether Drive honours it on DELETE is unproven, and nothing needs it here);
        failures are logged: an unused file costs space, never correctness."""
        try:
            self.transport.call("delete", key, lambda s: s.files().delete(fileId=file_id,
                                                                          supportsAllDrives=True))
        except (Refused, StoreError) as exc:
            if not (isinstance(exc, Refused) and exc.status == 404):
                log.info("Google Drive: could not remove unused file %s of %r (%s); `sessionkit gc` "
                         "collects it later", file_id, key, exc)
        self._etags.pop(file_id, None)
