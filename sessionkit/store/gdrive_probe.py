"""Ask a live Drive what it does where nothing public says: the ``gdrive://`` store is
correct either way (docs/gdrive.md), but the answers tell whether the bets it no longer
makes would have held. For ``sessionkit doctor``.

``probe_unproven(store)`` returns one ``(behaviour, verdict, detail)`` per behaviour,
verdict ``"holds"``, ``"does not hold"`` or ``"could not tell"``. It writes only in a
``doctor`` subfolder of the store's folder (made for the probe, outside the catalog, so
no key ever names it) and removes it and everything in it at the end.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..errors import StoreError
from .checks import HOLDS, NOT_HOLDS, UNKNOWN
from .gdrive_files import FOLDER_MIME
from .gdrive_transport import media, reason

if TYPE_CHECKING:
    from .gdrive import GDriveStore

__all__ = ["probe_unproven", "HOLDS", "DOES_NOT_HOLD", "COULD_NOT_TELL", "BEHAVIOURS"]

log = logging.getLogger("sessionkit.gdrive")
DOES_NOT_HOLD, COULD_NOT_TELL = NOT_HOLDS, UNKNOWN  # the doctor's verdicts (checks.py)
METADATA_IF_MATCH = "If-Match honoured on a metadata-only update"
DELETE_IF_MATCH = "If-Match honoured on DELETE"
PARENT_ETAG = "inserting a child changes the parent folder's etag"
DUPLICATE_ID = "an insert with an already-used pre-generated id is answered 409"
BEHAVIOURS = (METADATA_IF_MATCH, DELETE_IF_MATCH, PARENT_ETAG, DUPLICATE_ID)
#: tries of a request Drive may refuse by a reported anomaly (a 412 at a current etag)
TRIES = 4

Verdict = tuple[str, str, str]


class _Probe:
    """The requests of one probe, sent as they are (no retry turns a status into another)."""

    def __init__(self, store: "GDriveStore") -> None:
        self.store = store
        self.transport = store.transport
        self.made: list[str] = []  # ids inserted, removed at the end (the folder last)
        self.folder = ""

    def send(self, make: Callable[[Any], Any], if_match: Optional[str] = None) -> tuple[int, Any]:
        """(HTTP status, answer): 200 and the answer, or the error's status and reason."""
        from googleapiclient.errors import HttpError

        request = make(self.transport.service())
        if if_match is not None:
            request.headers["If-Match"] = if_match
        self.transport.count_request("doctor")
        try:
            return 200, request.execute()
        except HttpError as exc:
            return int(exc.resp.status), reason(exc)

    def etag(self, file_id: str) -> str:
        status, meta = self.send(lambda s: s.files().get(fileId=file_id, fields="etag", supportsAllDrives=True))
        if status != 200:
            raise StoreError(f"Google Drive doctor: reading {file_id} answered HTTP {status} {meta}")
        return meta["etag"]

    def insert(self, title: str, parent: str, mime: Optional[str] = None, file_id: Optional[str] = None,
               remember: bool = True) -> tuple[int, Any]:
        body: dict[str, Any] = {"title": title, "parents": [{"id": parent}]}
        if mime:
            body["mimeType"] = mime
        if file_id:
            body["id"] = file_id
        status, meta = self.send(lambda s: s.files().insert(
            body=body, media_body=None if mime else media(b"doctor"), fields="id,etag", supportsAllDrives=True))
        if status == 200 and remember:
            self.made.append(meta["id"])
        return status, meta

    def file(self, title: str) -> tuple[str, str]:
        status, meta = self.insert(title, self.folder)
        if status != 200:
            raise StoreError(f"Google Drive doctor: creating {title} answered HTTP {status} {meta}")
        return meta["id"], meta["etag"]

    def media_update(self, file_id: str) -> str:
        """Change the file's content (unconditionally): its etag moves. Returns the new etag."""
        status, meta = self.send(lambda s: s.files().update(fileId=file_id, body={}, media_body=media(
            uuid.uuid4().hex.encode()), fields="etag", supportsAllDrives=True))
        if status != 200:
            raise StoreError(f"Google Drive doctor: updating {file_id} answered HTTP {status} {meta}")
        return meta["etag"]

    def clean(self) -> None:
        for file_id in reversed(self.made):
            status, answer = self.send(lambda s: s.files().delete(fileId=file_id, supportsAllDrives=True))
            if status not in (200, 204, 404):
                log.warning("Google Drive doctor: could not remove %s (HTTP %s %s); remove the 'doctor' "
                            "folder in %s by hand", file_id, status, answer, self.store.link)


def _metadata_if_match(probe: _Probe) -> Verdict:
    file_id, _ = probe.file("doctor-metadata")
    stale = probe.etag(file_id)
    probe.media_update(file_id)
    status, answer = probe.send(lambda s: s.files().patch(fileId=file_id, body={"description": "doctor"},
                                                          fields="etag", supportsAllDrives=True), if_match=stale)
    if status == 412:
        return METADATA_IF_MATCH, HOLDS, "a metadata-only update with a stale etag was refused (412)"
    if status == 200:
        return METADATA_IF_MATCH, DOES_NOT_HOLD, "a metadata-only update with a stale etag was applied"
    return METADATA_IF_MATCH, COULD_NOT_TELL, f"answered HTTP {status} {answer}"


def _delete_if_match(probe: _Probe) -> Verdict:
    file_id, _ = probe.file("doctor-delete")
    stale = probe.etag(file_id)
    probe.media_update(file_id)
    status, answer = probe.send(lambda s: s.files().delete(fileId=file_id, supportsAllDrives=True), if_match=stale)
    if status == 412:
        return DELETE_IF_MATCH, HOLDS, "a DELETE with a stale etag was refused (412)"
    if status in (200, 204):
        return DELETE_IF_MATCH, DOES_NOT_HOLD, "a DELETE with a stale etag removed the file"
    return DELETE_IF_MATCH, COULD_NOT_TELL, f"answered HTTP {status} {answer}"


def _parent_etag(probe: _Probe) -> Verdict:
    before = probe.etag(probe.folder)
    if probe.etag(probe.folder) != before:
        return PARENT_ETAG, COULD_NOT_TELL, "the folder's etag moved between two reads with nothing changed"
    probe.file("doctor-child")
    after = probe.etag(probe.folder)
    if after != before:
        return PARENT_ETAG, HOLDS, "the folder's etag changed when a file was inserted in it"
    return PARENT_ETAG, DOES_NOT_HOLD, "the folder's etag stayed the same when a file was inserted in it"


def _duplicate_id(probe: _Probe) -> Verdict:
    file_id = probe.store.files.new_id("doctor")
    status, answer = probe.insert("doctor-id", probe.folder, file_id=file_id)
    if status != 200:
        return DUPLICATE_ID, COULD_NOT_TELL, f"the first insert with a pre-generated id answered HTTP {status} {answer}"
    status, answer = probe.insert("doctor-id-again", probe.folder, file_id=file_id)
    if status == 409:
        return DUPLICATE_ID, HOLDS, "answered 409"
    if status == 200:
        return DUPLICATE_ID, DOES_NOT_HOLD, "a second insert with the same id was accepted (200)"
    return DUPLICATE_ID, DOES_NOT_HOLD, (f"answered HTTP {status} {answer} (the store reads the id back "
                                         f"whatever the status, so this is harmless)")


def probe_unproven(store: "GDriveStore") -> list[Verdict]:
    """(behaviour, verdict, detail) for each behaviour in ``BEHAVIOURS``, asked of the live
    service in a ``doctor`` subfolder that is removed afterwards."""
    probe = _Probe(store)
    status, folder = probe.insert("doctor", store.folder_id, FOLDER_MIME)
    if status != 200:
        return [(name, COULD_NOT_TELL, f"could not make the doctor folder (HTTP {status} {folder})")
                for name in BEHAVIOURS]
    probe.folder = folder["id"]
    verdicts: list[Verdict] = []
    try:
        for check, name in ((_metadata_if_match, METADATA_IF_MATCH), (_delete_if_match, DELETE_IF_MATCH),
                            (_parent_etag, PARENT_ETAG), (_duplicate_id, DUPLICATE_ID)):
            try:
                verdicts.append(check(probe))
            except StoreError as exc:
                verdicts.append((name, COULD_NOT_TELL, str(exc)))
    finally:
        probe.clean()
    return verdicts
