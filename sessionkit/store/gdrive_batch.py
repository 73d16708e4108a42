"""A batch of new Drive files catalogued together: one catalog change before, one after.

Created one at a time (``GDriveStore.put`` of a new key), each costs an insert and a
compare-and-swap of the one catalog file; a save's four chunk threads then collide on it,
each collision a 412, a read and a retry, so 256 MB went up at 6 MB/s on a 50 MB/s link
with 150 ms round trips (docs/benchmarks.md). A batch instead:

1. **reserves ids** (``files.generateIds``) in the catalog's ``pending`` map, stamped with
   the time, ``RESERVE`` at a time: one catalog change per ``RESERVE`` files;
2. **inserts each file under a reserved id**, from any thread, touching no catalog (an
   insert is settled by its id whatever Drive answers, as ``DriveFiles.insert`` does);
3. **publishes**: one catalog change names every key and drops the batch's reservations.
   A key another writer catalogued meanwhile to a live file keeps it (its content is the
   same bytes), and the batch's file for it is deleted.

A file is never catalogued before it is whole, so a reader sees a key complete or not at
all. Every reservation change also re-stamps the batch's earlier reservations (a long
batch stays young) and drops reservations older than the store's ``pending_max_age``,
left by a batch that was killed: their files are deleted after the change, so a kill at
any point leaves only files the next batch or ``GDriveStore.sweep`` removes. A batch
whose reservations were dropped so (it ran longer than ``pending_max_age`` between two
reservation changes) fails at ``publish`` and catalogues nothing: the save fails and says
so, the files it inserted go with the sweep.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Protocol

from ..errors import StoreError
from .base import check_data, check_key
from .gdrive_catalog import Catalog
from .gdrive_files import DriveFiles, alive
from .gdrive_transport import Content, LocalFile
from .new_records import NewRecords

__all__ = ["DriveNewRecords", "RESERVE", "sweep_pending"]

log = logging.getLogger("sessionkit.gdrive")
RESERVE = 20  # ids reserved by one catalog change (one generateIds answer)


class BatchStore(Protocol):
    """What a batch needs of its store (a ``GDriveStore``)."""

    url: str
    folder_id: str
    files: DriveFiles
    catalog: Catalog
    pending_max_age: float


def _stale(pending: dict[str, float], now: float, max_age: float) -> set[str]:
    return {file_id for file_id, at in pending.items() if now - at > max_age}


def _remove_files(store: BatchStore, file_ids: "set[str] | list[str]", why: str) -> None:
    for file_id in file_ids:
        store.files.remove(why, file_id)  # a 404 is fine: the insert never landed


def sweep_pending(store: BatchStore, max_age: float) -> int:
    """Drop reservations older than ``max_age`` seconds (killed batches') from the catalog,
    then delete their files; how many."""
    dropped: list[str] = []

    def change(keys: dict[str, str], pending: dict[str, float]):
        stale = _stale(pending, time.time(), max_age)
        dropped[:] = sorted(stale)
        if not stale:
            return None
        return keys, {i: at for i, at in pending.items() if i not in stale}
    store.catalog.change_with_pending("(sweep)", change)
    _remove_files(store, dropped, "(a killed save's file)")
    if dropped:
        log.info("Google Drive: removed %d file(s) a killed save left uncatalogued in %s", len(dropped), store.url)
    return len(dropped)


class DriveNewRecords(NewRecords):
    """One batch on one ``GDriveStore`` (module docstring)."""

    def __init__(self, store: BatchStore) -> None:
        self.store = store
        self._lock = threading.Lock()  # the spare ids, the ids reserved and the keys inserted
        self._reserving = threading.Lock()  # one reservation change at a time
        self._spare: list[str] = []
        self._reserved: set[str] = set()
        self._inserted: dict[str, str] = {}  # key -> file id
        self._closed = False

    # -- 1. reserving ids -------------------------------------------------------------

    def _take_id(self, key: str) -> str:
        with self._reserving:
            with self._lock:
                if self._closed:
                    raise StoreError(f"Google Drive: {key!r} was put in a batch already published or "
                                     f"abandoned; start a new one (store.new_records())", key=key)
                if self._spare:
                    return self._spare.pop()
            fresh = [self.store.files.new_id(key) for _ in range(RESERVE)]
            with self._lock:
                mine = self._reserved | set(fresh)
            dropped: list[str] = []

            def change(keys: dict[str, str], pending: dict[str, float]):
                now = time.time()
                stale = _stale(pending, now, self.store.pending_max_age) - mine
                dropped[:] = sorted(stale)
                kept = {i: at for i, at in pending.items() if i not in stale}
                kept.update({i: now for i in mine})  # ours, new and earlier ones, stamped now
                return keys, kept
            self.store.catalog.change_with_pending(key, change)
            _remove_files(self.store, dropped, "(a killed save's file)")
            with self._lock:
                self._reserved |= set(fresh)
                self._spare.extend(fresh[1:])
            return fresh[0]

    # -- 2. inserting -----------------------------------------------------------------

    def _insert(self, key: str, content: Content) -> None:
        check_key(key)
        file_id = self._take_id(key)
        self.store.files.insert(key, content, key, self.store.folder_id, file_id=file_id)
        with self._lock:
            earlier = self._inserted.get(key)
            self._inserted[key] = file_id
        if earlier is not None:  # the same key twice in one batch: the last one is named
            _remove_files(self.store, [earlier], key)

    def put(self, key: str, data: bytes) -> None:
        self._insert(key, check_data(key, data))

    def put_file(self, key: str, path: "str | os.PathLike[str]") -> None:
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise StoreError(f"cannot store {path} at {key!r}: it is not a file", key=key)
        self._insert(key, LocalFile(path))

    # -- 3. publishing ----------------------------------------------------------------

    def publish(self) -> None:
        with self._reserving, self._lock:
            self._closed = True
            inserted, reserved = dict(self._inserted), set(self._reserved)
        if not reserved:
            return
        theirs: dict[str, str] = {}  # key -> our file id, for keys another writer holds

        def change(keys: dict[str, str], pending: dict[str, float]):
            lost = set(inserted.values()) - set(pending)
            if lost:
                raise StoreError(
                    f"Google Drive: a save's files in {self.store.url} were taken for a killed save's and "
                    f"removed: the save took longer than pending_max_age ({self.store.pending_max_age:g} s) "
                    f"between two of its catalog changes. Nothing of it was catalogued; save again, or open "
                    f"the store with a larger pending_max_age.", key="(catalog)")
            theirs.clear()
            for key, file_id in inserted.items():
                held = keys.get(key)
                if held is not None and held != file_id and alive(self.store.files.get_meta(key, held)):
                    theirs[key] = file_id
                else:
                    keys[key] = file_id
            return keys, {i: at for i, at in pending.items() if i not in reserved}
        self.store.catalog.change_with_pending("(a save's files)", change)
        _remove_files(self.store, list(theirs.values()), "(a file another writer had catalogued)")

    def abandon(self) -> None:
        with self._reserving, self._lock:
            self._closed = True
            inserted, reserved = list(self._inserted.values()), set(self._reserved)
        if not reserved:
            return
        _remove_files(self.store, inserted, "(an abandoned save's file)")

        def change(keys: dict[str, str], pending: dict[str, float]):
            if not reserved & set(pending):
                return None
            return keys, {i: at for i, at in pending.items() if i not in reserved}
        try:
            self.store.catalog.change_with_pending("(an abandoned save)", change)
        except StoreError as exc:  # the reservations stay; the next batch drops them once stale
            log.info("Google Drive: could not drop an abandoned save's reservations in %s (%s); a later save "
                     "or `sessionkit gc` does", self.store.url, exc)
