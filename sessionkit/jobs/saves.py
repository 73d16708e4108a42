"""A job's saves and loads of large objects, files and folders, in the background.

``Job.save_state``/``save_blob``/``save_file``/``save_dir`` delegate here. The caller's
thread only captures the state (``capture.py``: arrays and tensors copied to host
memory or shared with the last capture where unchanged, a file or folder copied into a
staging folder) and returns a ``SaveHandle``; hashing and sending the chunks happen on
the job's ``Uploader``. A blob becomes current
once it is whole in the store and a checkpoint names it:

- in a ``track`` loop, the loop's next checkpoint after the upload landed names it;
- ``job.checkpoint(done=step)`` asked while uploads are queued is written once they are
  whole, with that ``done`` (the step the blob was captured at: see uploader.py);
- ``job.checkpoint()``, the end of a loop, ``set_status`` (a handover, a pause) and the
  interpreter's exit wait for every upload queued, so a backup never takes over a blob
  that is not whole.

What a kill leaves (docs/saves.md): chunks sent and not yet named. The first save of
a later writer lists the job's chunks and marks those no generation names as garbage:
removed at its next write when it holds the job's lease (its claim has landed, so no
older holder's checkpoint can land any more), else ``ORPHAN_GRACE`` generations later
(a writer without a lease cannot tell a dead writer's chunks from a live one's upload).
"""

from __future__ import annotations

import atexit
import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Optional

from ..clock import Clock
from ..errors import BlobError, CorruptRecord, NotFound, StoreError
from ..registry import Registry
from ..scheduler import scheduler_for
from ..store import Store
from . import blobs, capture, chunks
from .checkpoint import Checkpointer, Snapshot
from .manifest import Manifest, decode, prev_key
from .uploader import Commit, SaveHandle, Task, Upload, Uploader

log = logging.getLogger("sessionkit.jobs")
ORPHAN_GRACE = 20  # generations an unnamed chunk is kept when this writer holds no lease
_MISSING = object()


def _wait_all_at_exit() -> None:
    """Interpreter exit (a script's end, SIGTERM via sessionkit.stopping, a kernel shutdown):
    let every upload queued and the checkpoints behind it land."""
    for saves in list(_LIVE):
        try:
            saves.uploader.wait()
        except Exception as exc:  # at exit nothing is left to raise it to: say so
            log.warning("job %r: a save did not reach the store before exit: %s", saves.job_id, exc)


def _unhook_exit() -> None:
    atexit.unregister(_wait_all_at_exit)


# process-wide (sessionkit.registry): the Saves with an upload since the exit hook went in
_LIVE: "Registry[int, Saves]" = Registry("jobs.saves_live", weak=True, on_reset=_unhook_exit)


class Saves:
    """The save/load side of one ``Job``. ``blobs_now()``: the job's blob entries as the
    loop sees them; ``written()``: the last generation that landed; ``token()``: the
    fencing token the job writes with; ``on_failure(exc)``: hand a background failure to a
    running loop (True when taken: the loop raises it at its next tick)."""

    def __init__(self, store: Store, job_id: str, *, clock: Clock, keep: int,
                 blobs_now: Callable[[], dict[str, Any]], written: Callable[[], Manifest],
                 token: Callable[[], Optional[int]], on_failure: Callable[[BaseException], bool]) -> None:
        self.store, self.job_id, self.clock, self.keep = store, job_id, clock, keep
        self._blobs_now, self._written, self._token = blobs_now, written, token
        self.uploader = Uploader(scheduler=scheduler_for(clock), name=job_id,
                                 on_failure=on_failure)
        self._lock = threading.Lock()
        self._landed: dict[str, tuple[dict[str, Any], ...]] = {}  # entries of names saved by this object
        self._touched: set[str] = set()  # chunks the upload in flight names (sent or found)
        self._buffers: dict[str, capture.HostBuffers] = {}  # host buffers of each name's snapshots
        self._checkpointer: Optional[Checkpointer] = None
        self._swept = False
        self._pending_failure: Optional[BaseException] = None
        self.sent_bytes = 0  # chunk bytes this object sent (not those the store held already)

    def attach(self, checkpointer: Checkpointer) -> None:
        """The job's checkpointer (new at each adoption): it must not remove chunks a save
        here names before a generation does, and it carries the orphans a sweep found."""
        self._checkpointer = checkpointer
        checkpointer.keep = self.protected

    # -- the blob entries ------------------------------------------------------

    def view(self, base: dict[str, Any]) -> dict[str, Any]:
        """``base`` (a manifest's blobs) with what landed here since."""
        with self._lock:
            return {**base, **self._landed} if self._landed else base

    def protected(self) -> set[str]:
        """Files under ``jobs/<id>/`` that saves here name or will name (never garbage)."""
        with self._lock:
            names = {f"chunks/{h}" for h in self._touched}
            for entries in self._landed.values():
                for entry in entries:
                    names |= chunks.named_files(entry)
        return names

    def _land(self, name: str, entry: dict[str, Any]) -> str:
        with self._lock:
            current = self._landed.get(name)
            if current is None:
                current = tuple(self._blobs_now().get(name, ()))
            if not current or current[0]["hash"] != entry["hash"]:
                current = ((entry,) + current)[:self.keep]
            self._landed[name] = current
            self._touched.clear()
        return str(entry["hash"])

    # -- saving ----------------------------------------------------------------

    def save_blob(self, name: str, obj: Any, fmt: Optional[str]) -> SaveHandle:
        check_blob_name(name)
        fmt = blobs.choose_format(obj, fmt)
        handle = self._make_room(name)
        with self._lock:
            buffers = self._buffers.setdefault(name, capture.HostBuffers())
        return self._queue(handle, capture.capture_object(obj, fmt, buffers))

    def save_file(self, name: str, path: Any) -> SaveHandle:
        check_blob_name(name)
        if not Path(path).is_file():
            raise FileNotFoundError(f"job {self.job_id!r}: cannot save {path} as a blob: it is not a file")
        handle = self._make_room(name)
        return self._queue(handle, capture.capture_path(path, "file"))

    def save_dir(self, name: str, folder: Any) -> SaveHandle:
        check_blob_name(name)
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"job {self.job_id!r}: cannot save {folder} as a folder blob: it is not a folder")
        handle = self._make_room(name)
        return self._queue(handle, capture.capture_path(folder, "dir"))

    def _make_room(self, name: str) -> SaveHandle:
        self.raise_failure()  # a failure a final checkpoint waited past is raised here
        handle = SaveHandle(name)
        self.uploader.make_room(name, handle)
        return handle

    def save_state(self, name: str, extra: Optional[dict[str, Any]], objects: dict[str, Any]) -> SaveHandle:
        from .training_state import capture

        return self.save_blob(name, capture(objects, extra), "torch")

    def _queue(self, handle: SaveHandle, staged: capture.Staged) -> SaveHandle:
        name = handle.name
        handle.captured_bytes, handle.copied_bytes = staged.nbytes, staged.copied
        at = self.clock.now().isoformat()

        def run() -> str:
            try:
                known = set(self.store.list(chunks.chunk_prefix(self.job_id)))
                entry, sent = chunks.send(self.store, self.job_id, staged, known, self._touch, at)
            except BaseException:
                with self._lock:
                    self._touched.clear()
                raise
            finally:
                staged.discard()
            self.sent_bytes += sent
            digest = self._land(name, entry)
            if not self._swept:
                self._swept = True
                self.sweep(known)
            return digest

        try:
            self.uploader.upload(Upload(handle, run, staged.discard))
        except BaseException:
            staged.discard()
            raise
        with _LIVE.lock:
            _LIVE.add(self)
            atexit.unregister(_wait_all_at_exit)  # registered once, whatever ran before
            atexit.register(_wait_all_at_exit)
        return handle

    def _touch(self, digest: str) -> None:
        with self._lock:
            self._touched.add(digest)

    # -- checkpoints and waiting -------------------------------------------------

    def defer(self, snap: Snapshot, write: Callable[[Snapshot], Any]) -> bool:
        """Queue ``write(snap)`` behind the uploads queued now (its blobs taken when it is
        written); False when none is queued: write it now."""
        def run() -> None:
            write(replace(snap, manifest=snap.manifest.with_changes(blobs=self.view(snap.manifest.blobs))))
        return self.uploader.commit(Commit(run))

    def wait(self, timeout: Optional[float] = None, *, raise_failure: bool = True) -> bool:
        """Wait for every upload (and checkpoint behind them); False if ``timeout`` passed.
        ``raise_failure=False``: a failure is kept for the next save or explicit wait."""
        try:
            done = self.uploader.wait(timeout)
        except Exception as exc:  # kept: raised at the caller's next save or explicit checkpoint
            if raise_failure:
                raise
            self._keep(exc)
            return True
        if raise_failure:
            self.raise_failure()
        return done

    def _keep(self, exc: BaseException) -> None:
        self._pending_failure = exc

    def raise_failure(self) -> None:
        failure, self._pending_failure = self._pending_failure, None
        if failure is not None:
            raise failure
        self.uploader.raise_failure()

    # -- orphans ---------------------------------------------------------------

    def sweep(self, listed_chunks: Optional[set[str]] = None) -> int:
        """Mark chunks and old whole blobs no generation names (a killed save's) as garbage
        of the next write; how many. Run by the first save of this object, or ``job.gc()``."""
        checkpointer = self._checkpointer
        if checkpointer is None:
            return 0
        prefix = f"jobs/{self.job_id}/"
        listed = set(listed_chunks if listed_chunks is not None
                     else self.store.list(chunks.chunk_prefix(self.job_id)))
        listed |= set(self.store.list(f"{prefix}blobs/"))
        m = self._written()
        keep = named_by(m) | {name for name, _ in m.garbage} | self.protected() | self._named_by_prev()
        orphans = {key[len(prefix):] for key in listed} - keep
        token = self._token()
        due = m.generation if token is not None and m.token == token else m.generation + ORPHAN_GRACE
        checkpointer.mark_garbage(orphans, due)
        if orphans:
            log.info("job %r: %d file(s) no generation names (left by a killed save) are removed at "
                     "generation %d", self.job_id, len(orphans), due + 1)
        return len(orphans)

    def _named_by_prev(self) -> set[str]:
        key = prev_key(self.job_id)
        try:
            record = self.store.get(key)
            if record is None:
                return set()
            return named_by(Manifest.from_json(decode(key, self.store.url, record.data, record.version)))
        except (CorruptRecord, StoreError):
            return set()

    def gc(self) -> int:
        """Sweep now (after the uploads queued); the files found are removed by the job's
        next writes as ``sweep`` says."""
        self.uploader.wait()
        found: list[int] = []
        self.uploader.task(Task(lambda: found.append(self.sweep()), "sweep"))
        self.uploader.wait()
        return found[0] if found else 0

    # -- loading ---------------------------------------------------------------

    def entries(self, base: dict[str, Any], name: str, default: Any) -> "tuple[dict[str, Any], ...]":
        current = self.view(base)
        found = current.get(name) or ()
        if not found and default is _MISSING:
            saved = ", ".join(sorted(current)) or "none"
            raise NotFound(f"job {self.job_id!r} has no blob {name!r} (saved blobs: {saved})")
        return tuple(found)

    def load_blob(self, base: dict[str, Any], name: str, default: Any = _MISSING) -> Any:
        found = self.entries(base, name, default)
        if not found:
            return default
        check_kind(self.job_id, name, found[0], "object")

        def attempt(entry: dict[str, Any]) -> Any:
            if chunks.is_chunked(entry):
                return chunks.load_object(self.store, self.job_id, entry)
            return blobs.load_newest(self.store, self.job_id, name, (entry,))
        return blobs.newest(self.job_id, name, found, attempt)

    def load_file(self, base: dict[str, Any], name: str, path: Any) -> Optional[Path]:
        found = self.entries(base, name, None)
        if not found:
            return None
        check_kind(self.job_id, name, found[0], "file")

        def attempt(entry: dict[str, Any]) -> Path:
            if chunks.is_chunked(entry):
                chunks.fetch_file(self.store, self.job_id, entry, path)
            else:
                blobs.fetch(self.store, self.job_id, entry["hash"], entry.get("size"), path)
            return Path(path)
        return blobs.newest(self.job_id, name, found, attempt)

    def load_dir(self, base: dict[str, Any], name: str, folder: Any) -> Optional[Path]:
        found = self.entries(base, name, None)
        if not found:
            return None
        check_kind(self.job_id, name, found[0], "dir")

        def attempt(entry: dict[str, Any]) -> Path:
            if chunks.is_chunked(entry):
                return chunks.fetch_dir(self.store, self.job_id, entry, folder)
            return blobs.fetch_dir(self.store, self.job_id, entry, folder)
        return blobs.newest(self.job_id, name, found, attempt)

    def load_state(self, base: dict[str, Any], name: str, objects: dict[str, Any]) -> Optional[dict[str, Any]]:
        from .training_state import restore

        if not self.view(base).get(name):
            return None
        return restore(self.load_blob(base, name), objects, job=self.job_id)


def named_by(manifest: Manifest) -> set[str]:
    """The blob files (chunks, whole blobs) a generation names."""
    names: set[str] = set()
    for entries in manifest.blobs.values():
        for entry in entries:
            names |= chunks.named_files(entry)
    return names


def check_blob_name(name: Any) -> None:
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"a blob name must be a non-empty str without '/', got {name!r}")


def check_kind(job_id: str, name: str, entry: dict[str, Any], kind: str) -> None:
    """``kind``: "file", "dir" or "object" (any other format)."""
    fmt = entry.get("format")
    found = fmt if fmt in ("file", "dir") else "object"
    if found != kind:
        what = {"file": "a file", "dir": "a folder", "object": f"an object ({fmt})"}[found]
        how = {"file": f"job.load_file({name!r}, path)", "dir": f"job.load_dir({name!r}, folder)",
               "object": f"job.load_blob({name!r})"}[found]
        raise BlobError(f"job {job_id!r}: blob {name!r} is {what}; get it with {how}")


MISSING = _MISSING
__all__ = ["MISSING", "ORPHAN_GRACE", "SaveHandle", "Saves", "check_blob_name", "check_kind", "named_by"]
