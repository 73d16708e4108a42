"""Writing a job's checkpoints: fencing, compare-and-swap, adopting a concurrent writer's
work, and removing what no generation names any more.

The loop never calls this directly while it runs: it hands a ``Snapshot`` (an
immutable manifest plus the items done since the last one) to the job's
``CheckpointWriter`` (writer.py), which calls ``Checkpointer.write``. The steps of
one write are listed in docs/format.md.
"""

from __future__ import annotations

import logging
import threading
import warnings
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Callable, Optional, Union

from ..clock import Clock
from ..errors import Conflict, CorruptRecord, LeaseLost, SessionkitWarning, StoreError, Superseded
from ..events import EventLog
from ..store import Store
from .doneset import KEY, POSITION, Ranges, Segment, SegmentList, SegmentMissing
from .manifest import FINISHED, Loaded, Manifest, load, manifest_key, prev_key

if TYPE_CHECKING:
    from .progress import RateMeter

log = logging.getLogger("sessionkit.jobs")

EVENT_SECONDS = 30.0  # job.checkpoint events are sampled at most this often
PREV_EVERY = 10  # manifest.prev is kept at most this many generations apart (more often when files change)
INLINE_KEYS = 2000  # a keyed job keeps up to this many done keys in the manifest itself ...
INLINE_KEY_BYTES = 64 * 1024  # ... and at most this many bytes of them; then they go to a segment
ADOPT_ATTEMPTS = 20


class EventFlush(Enum):
    """When a checkpoint's pending events are written (the loop waits for no event write)."""

    NOW = "now"  # on this thread, after the checkpoint
    SOON = "soon"  # from a background thread (a run's final checkpoint)
    LATER = "later"  # with the next write (the claim a run starts with)


@dataclass(frozen=True)
class Snapshot:
    """What the loop hands over: its view of the manifest and the items done since the
    previous snapshot. ``n_at`` is the loop's count of items done in this run when it
    was taken (so ``done`` can be shown before the write lands)."""

    manifest: Manifest
    fresh_ranges: tuple[tuple[int, int], ...]
    fresh_keys: tuple[str, ...]
    n_at: int

    def after(self, newer: "Snapshot") -> "Snapshot":
        """This snapshot and a newer one as one (the writer coalesces what waits)."""
        return Snapshot(newer.manifest, self.fresh_ranges + newer.fresh_ranges,
                        self.fresh_keys + newer.fresh_keys, newer.n_at)


@dataclass(frozen=True)
class Written:
    """The last generation that landed, as the loop's views need it."""

    manifest: Manifest
    done: int
    n_at: int


class Checkpointer:
    """The store side of one job: the last generation written (or read), its version,
    the done set, and garbage to remove once two newer generations exist. One write
    at a time (a lock); the writer thread and synchronous checkpoints share it."""

    def __init__(self, store: Store, job_id: str, loaded: Loaded, *, clock: Clock, events: EventLog,
                 token: Callable[[], Optional[int]], rate: "RateMeter") -> None:
        self.store, self.job_id, self.clock, self.events = store, job_id, clock, events
        self._token, self._rate = token, rate
        self.lock = threading.Lock()
        self.fenced: Optional[LeaseLost] = None  # once fenced, nothing more is written
        self.seconds = 0.0  # how long the last write took, on the job's clock
        self._last_event = -1e18
        self._take(loaded)
        m = loaded.manifest
        self.segments = SegmentList(store, f"jobs/{job_id}/done/", m.mode or POSITION,
                                    [Segment(name, count) for name, count in m.segments])
        self.done_ranges, self.done_keys, lost = self.segments.load_what_remains()
        if lost:
            self._forget(lost)
        self.done_ranges.update(Ranges(m.ranges or ()))
        self.done_keys.update(m.keys)
        self._removed: set[str] = set()  # garbage files this writer removed (listed until the next write)
        # unknown for the generation read: if it names files, keep a fallback at the first write
        self._files_changed = bool(m.segments or m.blobs)

    def _forget(self, lost: "list[tuple[Segment, CorruptRecord]]") -> None:
        """Damaged or missing done segments: the items they recorded run again (never a dead
        end); the next checkpoint writes a manifest without them."""
        items = sum(segment.count for segment, _ in lost)
        keys = ", ".join(repr(self.segments.key(segment.name)) for segment, _ in lost)
        reasons = "; ".join(exc.reason for _, exc in lost)
        warnings.warn(f"job {self.job_id!r}: done segment(s) {keys} in {self.store.url} cannot be read "
                      f"({reasons}); the {items} item(s) they recorded will run again", SessionkitWarning,
                      stacklevel=5)
        self.events.emit("job.damaged", job=self.job_id, keys=keys, items=items, reason=reasons)
        old = self.written
        done = max(0, old.done - items)
        self.written = Written(old.manifest.with_changes(done=done), done, old.n_at)
        self._files_changed = True

    def _take(self, loaded: Loaded) -> None:
        self.raw, self.version = loaded.raw, loaded.version
        self.written = Written(loaded.manifest, loaded.manifest.done, 0)

    # -- one write -------------------------------------------------------------

    def write(self, snap: Snapshot, *, adopt_state: bool, events: Union[EventFlush, str] = EventFlush.NOW,
              settle: bool = False) -> Written:
        """Write ``snap`` as the next generation. ``adopt_state``: if another writer moved
        the manifest on, take its state and blobs (a run that has done nothing yet).
        ``events``: when pending events are written (``EventFlush``; its value as a str is
        accepted too), so the loop waits for no event write. ``settle``: this write only records how an
        earlier run of this object ended; if anyone else wrote since, raise ``Superseded``
        and write nothing (a newer run's status stands).

        1. Fenced before, or the lease says stop: ``LeaseLost``.
        2. Refuse to swap over a manifest this writer has seen carry a higher token.
        3. Key mode: write the new done segment (and merged ones).
        4. Keep the replaced generation as manifest.prev when a fallback needs it.
        5. Compare-and-swap the manifest; on a conflict adopt the other writer's work
           (or stop, if its token is higher) and go back to 2.
        6. Delete segments and blobs that neither of the two newest generations names.
        """
        with self.lock:
            if self.fenced is not None:
                raise self.fenced
            started = self.clock.monotonic()
            try:
                return self._write(snap, adopt_state, EventFlush(events), settle)
            finally:
                self.seconds = self.clock.monotonic() - started

    def _write(self, snap: Snapshot, adopt_state: bool, events: EventFlush, settle: bool) -> Written:
        token = self._token()
        fresh_ranges = Ranges(snap.fresh_ranges)
        fresh_keys = list(dict.fromkeys(snap.fresh_keys))
        keyed = snap.manifest.mode == KEY
        self.segments.mode = snap.manifest.mode or POSITION
        count = len(fresh_keys) if keyed else len(fresh_ranges)
        base = snap.manifest
        while True:
            old = self.written.manifest
            if (old.token or 0) > (token or 0):
                self._lost(token, old.token, old.writer)
            if keyed:
                # the newest done keys live in the manifest; a segment is written only when
                # they outgrow it (every INLINE_KEYS keys), so most checkpoints are one write.
                # Keys already in the done set are neither counted nor listed twice: another
                # writer's (adopted; without a lease two runs may do the same item), or this
                # writer's own, sent again after a write whose answer was lost had landed
                fresh_keys = [k for k in fresh_keys if k not in self.done_keys]
                count = len(fresh_keys)
                inline = old.keys + tuple(fresh_keys)
                written = []
                if len(inline) > INLINE_KEYS or sum(map(len, inline)) > INLINE_KEY_BYTES:
                    try:
                        written = self.segments.append(None, list(inline), len(inline))
                    except SegmentMissing:
                        base = self._adopt_concurrent(token, base, adopt_state)
                        continue
                    inline = ()
                done, ranges = len(self.done_keys) + count, None
            else:
                # positions live in the manifest itself: no segment files, no merges
                written = []
                self.segments.segments = []  # older stores' segments: garbage now
                inline = ()
                all_ranges = Ranges(self.done_ranges.spans + fresh_ranges.spans)
                done, ranges = len(all_ranges), tuple((a, b) for a, b in all_ranges.spans)
            new = base.with_changes(generation=old.generation + 1, token=token, writer=self.events.writer,
                           segments=tuple(s.to_json() for s in self.segments.segments), ranges=ranges,
                           keys=inline, done=done, updated=self.clock.now().isoformat())
            if new.total is not None and done > new.total:
                new = new.with_changes(total=done)  # done items the items given no longer hold: never done > total
            new = new.with_changes(garbage=self._garbage_after(old, new, written))
            raw = new.encode()
            try:
                files_change = _files(old) != _files(new)
                if self._prev_needed(new, files_change):
                    self.store.put(prev_key(self.job_id), self.raw)
                version = self.store.put(manifest_key(self.job_id), raw, expect=self.version)
                break
            except Conflict:
                self.segments.delete(written)  # nobody names what this attempt wrote
                if settle:
                    raise Superseded(f"job {self.job_id!r} was written by another run after this one "
                                     f"was left; how this run ended is not written over it") from None
                base = self._adopt_concurrent(token, base, adopt_state)
        self._remove_garbage(new)
        self.raw, self.version = raw, version
        self._files_changed = files_change
        self.done_ranges.update(fresh_ranges)
        if keyed:
            self.done_keys.update(fresh_keys)
        self.written = Written(new, done, snap.n_at)
        now = self.clock.monotonic()
        if now - self._last_event >= EVENT_SECONDS or new.status in FINISHED:
            self._last_event = now
            self.events.emit("job.checkpoint", job=self.job_id, generation=new.generation, done=done,
                             total=new.total, new=count, rate=self._rate.rate, bytes=new.bytes,
                             stage=new.stage)
        if events is EventFlush.NOW and self.events.pending:
            try:
                self.events.flush()
            except StoreError as exc:
                # the checkpoint landed: its items are done whatever happens to the events,
                # which stay buffered for the next flush (raising here would send the items
                # again as if the checkpoint had failed)
                log.warning("job %r: checkpoint written, its events not yet (%s); the next "
                            "checkpoint writes them", self.job_id, exc)
        elif events is EventFlush.SOON:
            self.events.flush_soon()
        return self.written

    def _prev_needed(self, new: Manifest, files_change: bool) -> bool:
        """Whether to keep the generation being replaced as ``manifest.prev``, the fallback
        for a damaged manifest. The fallback must find the files it names, and segments and
        blobs a generation drops are deleted at the next write: so when this write or the
        one before it changed the files named. Otherwise when generation 2 replaces the
        first claim, then every PREV_EVERY generations: a fallback redoes at most PREV_EVERY
        checkpoint intervals, and a checkpoint is one request (the claim a run starts with,
        written while the loop waits, never needs two)."""
        if files_change or self._files_changed:
            return True
        return new.generation == 2 or new.generation % PREV_EVERY == 0

    def _lost(self, token: Optional[int], newer: Optional[int], newer_writer: Optional[str]) -> None:
        self.events.emit("job.fenced", job=self.job_id, token=token, newer=newer)
        self.fenced = LeaseLost(f"job:{self.job_id}", token, newer, "checkpointing",
                                newer_holder=newer_writer)
        raise self.fenced

    def _adopt_concurrent(self, token: Optional[int], base: Manifest, adopt_state: bool) -> Manifest:
        """The manifest changed under us. Stop if a newer token wrote it; otherwise build on
        it: its done items join ours, and (``adopt_state``: this run has done nothing yet,
        e.g. a new holder starting) its state and blobs replace the ones loaded earlier.
        Returns the manifest to write next."""
        for _attempt in range(ADOPT_ATTEMPTS):
            loaded = load(self.store, self.job_id)
            if loaded is None:
                raise StoreError(f"job {self.job_id!r} was removed from {self.store.url} while running",
                                 key=manifest_key(self.job_id))
            theirs = loaded.manifest
            if (theirs.token or 0) > (token or 0):
                self._lost(token, theirs.token, theirs.writer)
            listed = SegmentList(self.store, self.segments.prefix, self.segments.mode,
                                 [Segment(name, n) for name, n in theirs.segments])
            try:
                ranges, keys = listed.load()
                ranges.update(Ranges(theirs.ranges or ()))
                keys.update(theirs.keys)
                break
            except SegmentMissing:
                current = self.store.get(manifest_key(self.job_id))
                if current is not None and current.version == loaded.version:
                    raise  # the manifest stands and names a lost segment: real damage
        else:
            raise StoreError(f"job {self.job_id!r}: other writers keep changing it; is it running "
                             f"in several places without a lease?", key=manifest_key(self.job_id))
        if not adopt_state:
            log.warning("job %r was checkpointed by another writer (%s) while this one ran; "
                        "keeping the work of both", self.job_id, theirs.writer)
        # keys only they have done join the done set (the item this run is working on may be
        # one of them: when it finishes, its key is found there and not counted again)
        self.segments = listed
        self.done_ranges.update(ranges)
        self.done_keys.update(keys)
        if adopt_state:
            base = base.with_changes(state=theirs.state, blobs=theirs.blobs, bytes=theirs.bytes)
        self.raw, self.version = loaded.raw, loaded.version
        old = self.written
        done = len(self.done_keys) if self.segments.mode == KEY else len(self.done_ranges)
        self.written = Written(theirs.with_changes(done=done), done, old.n_at)
        self._removed = set()  # theirs lists its own garbage: what is named again is left out
        self._files_changed = bool(theirs.segments or theirs.blobs)
        return base

    # -- garbage -------------------------------------------------------------

    def _garbage_after(self, old: Manifest, new: Manifest, written: "list[Segment]") -> tuple[tuple[str, int], ...]:
        """The garbage list generation ``new`` carries: what ``old`` listed and this writer has
        not removed yet, plus what ``old`` named and ``new`` does not (dropped by ``new``), plus
        segments this write made and merged away at once (named by no generation). Files that
        ``new`` names again are never garbage."""
        named = _files(new)
        listed = {name: gen for name, gen in old.garbage if name not in self._removed}
        for name in _files(old) - named:
            listed.setdefault(name, new.generation)
        for segment in written:
            listed.setdefault(f"done/{segment.name}", old.generation)  # no generation names it
        return tuple(sorted((name, gen) for name, gen in listed.items() if name not in named))

    def _remove_garbage(self, new: Manifest) -> None:
        """After generation ``new`` landed: remove listed files dropped before it (the
        generation before ``new``, the fallback, names none of them). A failure is logged;
        they stay listed and the next write tries again."""
        self._removed = set()
        for name, dropped_at in new.garbage:
            if dropped_at >= new.generation:
                continue
            key = f"jobs/{self.job_id}/{name}"
            try:
                self.store.delete(key)
            except StoreError as exc:
                log.info("could not remove %s, which no generation of job %r names: %s", key, self.job_id, exc)
                continue
            self._removed.add(name)


def _blob_hashes(manifest: Manifest) -> set[str]:
    """The blob files a generation names (a folder's entry names each of its files)."""
    hashes = set()
    for entries in manifest.blobs.values():
        for entry in entries:
            if entry.get("format") == "dir":
                hashes.update(f["hash"] for f in (entry.get("files") or {}).values())
            else:
                hashes.add(entry["hash"])
    return hashes


def _files(manifest: Manifest) -> set[str]:
    """The files under ``jobs/<id>/`` a generation names."""
    return {f"done/{name}" for name, _ in manifest.segments} | {f"blobs/{h}" for h in _blob_hashes(manifest)}
