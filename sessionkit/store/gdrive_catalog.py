"""The ``gdrive://`` store's catalog (key -> file id) and how a store folder is made.

Drive's search lags inserts by seconds, so keys are never looked up by title: one
*catalog* file maps them to file ids, and it changes only by compare-and-swap on its
content (``DriveFiles.swap``: a media update with ``If-Match``, confirmed).

- **A store is created with its ids chosen first**: the folder's id and its catalog's id
  come from ``files.generateIds``; the folder is inserted already naming its catalog (a
  property set at creation), then the catalog under its id. No metadata-only update is
  conditional, so whether Drive honours ``If-Match`` there does not matter, nor whether a
  child insert changes the folder's etag: neither is ever relied on.
- **A folder with no catalog is not made a store unless the caller asked** (``create``):
  a backup that gets there before the primary, or a folder made by hand, is refused with
  a StoreError saying to open it where the job starts first. A catalog the folder names
  but that is not there yet (its creator is between its two inserts) is waited for.
- The catalog is read again only when its nonce changed (one request when it did not).
- **What was last read is one frozen value** (``CatalogRead``: the keys and the nonce they
  were read at), replaced whole: threads of one store create keys at once (a save sends
  four chunks together), and a change must swap on the nonce of the very keys it
  changed. Read as two attributes, a thread could pair the keys it read before another
  thread's change with the nonce after it, and its swap then dropped that change's key.
- **Ids reserved for files not catalogued yet** (``pending``: file id -> when reserved, in
  seconds since the epoch) let a batch of new files go up with one catalog change before
  and one after, instead of one per file (``gdrive_batch``). A reservation older than its
  store's ``pending_max_age`` belongs to a batch that was killed: the next batch (or
  ``sweep``) drops it and deletes its file. A catalog written by a version before these
  reservations had none, and that version keeps the keys and drops the reservations when it
  changes the catalog: their files then stay until removed by hand.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional

from ..errors import CorruptRecord, DriveMoved as Moved, DriveRefused as Refused, StoreError
from .gdrive_files import FOLDER_FIELDS, FOLDER_MIME, DriveFiles, alive, nonce_of, props
from .gdrive_transport import service_account_hint

log = logging.getLogger("sessionkit.gdrive")
CATALOG_PROPERTY = "sessionkitCatalog"
CATALOG_KIND = "sessionkit.gdrive-catalog"
CATALOG_TITLE = "sessionkit-catalog.json"
#: a read is metadata then content; when a write lands between them it is tried again
RACED_READS = 8


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _empty() -> bytes:
    return json.dumps({"kind": CATALOG_KIND, "v": 1, "keys": {}}).encode()


@dataclass(frozen=True)
class CatalogRead:
    """The catalog's keys as of one read or write, and the nonce of that content."""

    keys: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    nonce: str = ""
    loaded: bool = False
    pending: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


#: a catalog change: the keys and the reservations as read, to the new ones, or None (nothing to do)
ChangeWithPending = Callable[[dict[str, str], dict[str, float]], Optional[tuple[dict[str, str], dict[str, float]]]]


class Catalog:
    """The key -> file id map of one store folder, with its nonce as last read."""

    def __init__(self, files: DriveFiles, catalog_id: str, url: str) -> None:
        self.files, self.catalog_id, self.url = files, catalog_id, url
        self.last = CatalogRead()  # replaced whole, never changed in place (module docstring)

    @property
    def keys(self) -> Mapping[str, str]:
        return self.last.keys

    @property
    def nonce(self) -> str:
        return self.last.nonce

    @property
    def loaded(self) -> bool:
        return self.last.loaded

    @property
    def pending(self) -> Mapping[str, float]:
        return self.last.pending

    def _keep(self, keys: dict[str, str], nonce: str, pending: dict[str, float]) -> None:
        self.last = CatalogRead(MappingProxyType(keys), nonce, True, MappingProxyType(pending))

    def load(self, key: str = "(catalog)", missing_ok: bool = False) -> bool:
        """Read the catalog: its metadata, and its content when its nonce changed (one or
        two requests); ``key`` is what the caller wanted, for messages. False when it is
        not there and ``missing_ok``."""
        for _attempt in range(RACED_READS):
            meta = self.files.get_meta(key, self.catalog_id)
            if meta is None or not alive(meta):
                if missing_ok:
                    return False
                raise StoreError(f"Google Drive: the catalog of {self.url} is gone (deleted or trashed "
                                 f"by hand?); restore {CATALOG_TITLE} from Drive's trash", key="(catalog)")
            if self.last.loaded and nonce_of(meta) == self.last.nonce:
                return True  # unchanged since we read it: a miss costs one request, not two
            data = self.files.download(key, self.catalog_id)
            if data is None or hashlib.md5(data).hexdigest() != meta.get("md5Checksum"):
                continue  # changed between the two reads
            try:
                body = json.loads(data)
                if body.get("kind") != CATALOG_KIND or not isinstance(body.get("keys"), dict):
                    raise ValueError("not a sessionkit catalog")
                keys = {str(k): str(v) for k, v in body["keys"].items()}
                pending = {str(k): float(v) for k, v in (body.get("pending") or {}).items()}
            except (ValueError, AttributeError, TypeError) as exc:
                raise CorruptRecord("(catalog)", self.url, str(exc), meta["etag"]) from None
            self._keep(keys, nonce_of(meta), pending)
            return True
        raise StoreError(f"Google Drive: the catalog of {self.url} keeps changing while being read; "
                         f"try again", key="(catalog)")

    def change(self, key: str, change: Callable[[dict[str, str]], Optional[dict[str, str]]]) -> None:
        """Compare-and-swap the catalog: ``change`` returns the new mapping, or None when
        there is nothing to do (e.g. an earlier try already landed). It may raise. Only
        another writer's change counts as a conflict (an etag that moved is not one)."""
        def keys_only(keys: dict[str, str], pending: dict[str, float]) -> Optional[tuple[dict[str, str],
                                                                                       dict[str, float]]]:
            new = change(keys)
            return None if new is None else (new, pending)
        self.change_with_pending(key, keys_only)

    def change_with_pending(self, key: str, change: ChangeWithPending) -> None:
        """``change`` for the keys and the reserved ids together (module docstring)."""
        if not self.last.loaded:
            self.load(key)
        for _attempt in range(50):
            read = self.last  # the keys changed and the nonce swapped on: one read
            new = change(dict(read.keys), dict(read.pending))
            if new is None:
                return
            keys, pending = new
            body: dict[str, Any] = {"kind": CATALOG_KIND, "v": 1, "keys": keys}
            if pending:
                body["pending"] = pending
            raw = json.dumps(body, separators=(",", ":")).encode()
            try:
                _meta, nonce = self.files.swap(key, self.catalog_id, read.nonce, raw, {})
            except Moved:
                self.load(key)
                continue
            self._keep(keys, nonce, pending)
            return
        raise StoreError(f"Google Drive: too many writers changed the catalog of {self.url} at once; "
                         f"try again", key=key)

    def file_id(self, key: str, fresh: bool = False) -> Optional[str]:
        """The key's file id (the catalog read again when the key is unknown or ``fresh``)."""
        if fresh or not self.last.loaded or key not in self.last.keys:
            self.load(key)
        return self.last.keys.get(key)


def create_store_folder(files: DriveFiles, title: str, parent: str) -> str:
    """A new store folder under ``parent``: both ids first, the folder naming its catalog
    from its creation, then the catalog. Returns the folder's id."""
    folder_id, catalog_id = files.new_id(title), files.new_id(title)
    files.insert(title, None, title, parent, FOLDER_MIME, {CATALOG_PROPERTY: catalog_id}, file_id=folder_id)
    files.insert("(catalog)", _empty(), CATALOG_TITLE, folder_id, file_id=catalog_id)
    return folder_id


def resolve_path(files: DriveFiles, path: str) -> str:
    """Find or create the store folder ``path`` under My Drive, by title search (so for one
    account only). The last folder is one that names a catalog (the oldest); when none
    does, a new store folder is made beside any folder of that name made by hand."""
    parent = "root"
    names = [p for p in path.strip("/").split("/") if p]
    for depth, name in enumerate(names):
        q = (f"title = '{_quote(name)}' and '{_quote(parent)}' in parents and trashed = false "
             f"and mimeType = '{FOLDER_MIME}'")
        found = files.transport.call("list", name, lambda s: s.files().list(
            q=q, maxResults=100, fields=f"items({FOLDER_FIELDS})", supportsAllDrives=True,
            includeItemsFromAllDrives=True)).get("items", [])
        last = depth == len(names) - 1
        stores = [f for f in found if CATALOG_PROPERTY in props(f)]
        if last and not stores:
            if found:
                log.warning("Google Drive: the folder %r has no sessionkit catalog (made by hand?); a new "
                            "store folder of that name is made beside it", path)
            return create_store_folder(files, name, parent)
        if found:  # prefer an existing store, then the oldest
            found = stores if last else found
            found.sort(key=lambda f: (CATALOG_PROPERTY not in props(f), f.get("createdDate", ""), f["id"]))
            parent = found[0]["id"]
        else:
            parent = files.insert(name, None, name, parent, FOLDER_MIME)["id"]
    return parent


def open_catalog(files: DriveFiles, folder_id: str, url: str, *, create: bool, service_account: bool,
                 source: str, wait: float) -> Catalog:
    """The catalog of the store in ``folder_id`` (see the module docstring)."""
    folder = files.get_meta("(store folder)", folder_id, FOLDER_FIELDS)
    if folder is None or not alive(folder) or folder.get("mimeType") != FOLDER_MIME:
        raise StoreError(f"Google Drive: no folder {folder_id} reachable by this account ({source}): "
                         f"check the link, and share the folder with this account as Editor")
    if service_account and not folder.get("driveId"):
        raise StoreError(service_account_hint(url))
    catalog_id = props(folder).get(CATALOG_PROPERTY)
    if not catalog_id:
        if not create:
            raise StoreError(
                f"Google Drive: the folder {folder_id} holds no sessionkit store yet (no catalog). Open it "
                f"first where the job starts (gdrive://<path>, or GDriveStore(folder_id=..., create=True)), "
                f"then open store.url here; a backup never creates the store, so it cannot split it.")
        return _adopt_folder(files, folder_id, url)
    catalog = Catalog(files, catalog_id, url)
    deadline = time.monotonic() + wait
    while not catalog.load(missing_ok=True):
        there = files.get_meta("(catalog)", catalog_id) is not None  # trashed, or a tombstone
        if not there and create:
            # its creator stopped between its two inserts: finish the set-up under the same id
            files.insert("(catalog)", _empty(), CATALOG_TITLE, folder_id, file_id=catalog_id)
            continue
        if there or time.monotonic() > deadline:
            raise StoreError(f"Google Drive: the catalog {catalog_id} of {url} is missing (deleted or "
                             f"trashed by hand, or the store's creation was interrupted): restore "
                             f"{CATALOG_TITLE} from Drive's trash, or open the store where the job "
                             f"starts (create=True) to finish setting it up", key="(catalog)")
        time.sleep(0.2)  # its creator is between its two inserts
    return catalog


def _adopt_folder(files: DriveFiles, folder_id: str, url: str) -> Catalog:
    """``create=True`` on an existing folder that names no catalog (made by hand): the only
    way to name one is a metadata-only update of the folder, unconditional (If-Match there
    is unproven). Two runtimes doing this to one folder at the same moment could each use
    their own catalog, so only the runtime where the job starts may pass ``create``; the
    folder is read back, and a catalog it does not name is removed."""
    catalog_id = files.new_id("(catalog)")
    files.insert("(catalog)", _empty(), CATALOG_TITLE, folder_id, file_id=catalog_id)
    try:
        files.transport.call("set up the store in", "(store folder)", lambda s: s.files().patch(
            fileId=folder_id, body={"properties": [{"key": CATALOG_PROPERTY, "value": catalog_id,
                                                    "visibility": "PUBLIC"}]},
            fields="id", supportsAllDrives=True))
    except Refused as exc:
        files.remove("(catalog)", catalog_id)
        raise files.transport.refusal("set up the store in", "(store folder)", exc) from None
    except StoreError:
        files.remove("(catalog)", catalog_id)
        raise
    folder: Optional[dict[str, Any]] = files.get_meta("(store folder)", folder_id, FOLDER_FIELDS)
    named = props(folder).get(CATALOG_PROPERTY) if folder else None
    if named != catalog_id:
        files.remove("(catalog)", catalog_id)
        if not named:
            raise StoreError(f"Google Drive: could not set up a store in the folder {folder_id}; try again")
        catalog_id = named
    catalog = Catalog(files, catalog_id, url)
    catalog.load()
    return catalog
