"""Events: what happened, as versioned JSON lines in append-only segments, one writer each.

Each writer (a session, or a process running a job) owns ``events/<writer>/``
and nobody else writes there, so appending needs no coordination. Events are
buffered in memory and written by ``flush()`` (the job flushes at each
checkpoint): the open segment is rewritten with the new lines until it holds
``segment_events`` events or ``segment_bytes`` bytes, then the next segment
starts, so a flush costs one put bounded by the segment size and the number of
files grows with the events, not with the flushes. Format: ``docs/format.md``.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import uuid
import weakref
from typing import Any, Callable, Optional

from .clock import SYSTEM_CLOCK, Clock
from .errors import Conflict, StoreError
from .scheduler import scheduler_for
from .store import ABSENT, Store

__all__ = ["EVENT_FORMAT", "KNOWN_KINDS", "EventLog", "add_listener", "compact", "new_writer_id",
           "remove_listener", "segment_key"]

EVENT_FORMAT = 1

#: Every kind this version writes (docs/format.md describes each one's data).
KNOWN_KINDS = (
    "job.created", "job.status", "job.stage", "job.checkpoint", "job.fenced", "job.damaged",
    "job.stalled", "job.unstalled", "job.item_failed", "job.failed_unlisted", "job.items_abandoned",
    "session.started", "session.phase", "session.ended", "session.resumed", "session.dropped",
    "lease.acquired", "lease.renewed", "lease.released", "lease.lost",
    "handover.requested", "handover.ready", "handover.completed",
    "approval.requested", "approval.granted",
)


_listeners: list = []  # called with each event as it is emitted (see sessionkit.notify)
log = logging.getLogger("sessionkit.events")
_unflushed: "weakref.WeakSet[EventLog]" = weakref.WeakSet()  # logs with a background flush pending
_exit_hook = False


def add_listener(listener: "Callable[[dict[str, Any]], None]") -> None:
    """Call ``listener(event)`` for every event emitted in this process. It runs on the
    emitting thread (often the job loop), so it must return at once: queue, do not send."""
    _listeners.append(listener)


def remove_listener(listener: "Callable[[dict[str, Any]], None]") -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def new_writer_id(prefix: str = "proc") -> str:
    """An unguessable writer id (events of one writer go under ``events/<id>/``)."""
    return f"{prefix}-{uuid.uuid4().hex}"


def segment_key(writer: str, number: int) -> str:
    return f"events/{writer}/{number:08d}.jsonl"


class EventLog:
    """Buffers events of one writer and appends them to its segments on ``flush()``.

    ``context`` fields (e.g. session and role) are added to every event.
    Thread-safe: heartbeats and the job loop may emit from different threads.
    """

    def __init__(self, store: Store, writer: Optional[str] = None, *, clock: Optional[Clock] = None,
                 context: Optional[dict[str, Any]] = None, segment_events: int = 1000,
                 segment_bytes: int = 256 * 1024) -> None:
        if segment_events < 1 or segment_bytes < 1024:
            raise ValueError("segment_events must be >= 1 and segment_bytes >= 1024")
        self.store = store
        self.writer = writer or new_writer_id()
        self.clock = clock or SYSTEM_CLOCK
        self.context = dict(context or {})
        self.segment_events = segment_events
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._pending: list[bytes] = []
        self._segment = 0  # number of the open segment
        self._lines: list[bytes] = []  # what the open segment holds in the store
        self._size = 0
        self._version: Any = ABSENT
        self._seq = 0
        self._numbered = False  # the store is first asked at the first flush, not here

    def _resume_numbering(self) -> None:
        """A writer id reused (e.g. a session restarted) continues after its last segment."""
        self._numbered = True
        existing = self.store.list(f"events/{self.writer}/")
        if existing:
            last = existing[-1].rsplit("/", 1)[-1].split(".", 1)[0]
            self._segment = int(last) + 1 if last.isdigit() else len(existing)

    def emit(self, kind: str, **data: Any) -> dict[str, Any]:
        """Record an event of ``kind`` with JSON-able ``data``; written at the next flush."""
        with self._lock:
            self._seq += 1
            event = {"v": EVENT_FORMAT, "ts": self.clock.now().isoformat(),
                     "mono": round(self.clock.monotonic(), 3), "kind": kind,
                     "writer": self.writer, "seq": self._seq, **self.context, "data": data}
            self._pending.append(json.dumps(event, separators=(",", ":"), default=str).encode() + b"\n")
        for listener in list(_listeners):
            try:
                listener(event)
            except Exception as exc:  # a listener's bug must not break the job that emitted
                log.error("event listener %r failed: %r", listener, exc)
        return event

    @property
    def pending(self) -> int:
        """Events emitted and not yet written."""
        return len(self._pending)

    def flush_soon(self) -> None:
        """Write the buffered events in the background (a one-step task on the clock's
        scheduler: a thread, or at once on a FakeClock), so the caller does not wait for the
        store (a job's final checkpoint). Events still pending at interpreter exit are
        written then."""
        if not self._pending:
            return
        global _exit_hook
        if not _exit_hook:
            _exit_hook = True
            atexit.register(_flush_at_exit)
        _unflushed.add(self)
        scheduler_for(self.clock).start("events", self._flush_logged, after=0)

    def _flush_logged(self) -> None:
        try:
            self.flush()
        except StoreError as exc:
            log.warning("events of %s not written yet (%s); the next flush retries", self.writer, exc)

    def flush(self) -> int:
        """Write the buffered events; return how many were written (one put, or none)."""
        with self._lock:
            if not self._pending:
                return 0
            pending, self._pending = self._pending, []
            try:
                if not self._numbered:
                    self._resume_numbering()
                if len(self._lines) >= self.segment_events or self._size >= self.segment_bytes:
                    self._segment += 1
                    self._lines, self._size, self._version = [], 0, ABSENT
                lines = self._lines + pending
                data = b"".join(lines)
                key = segment_key(self.writer, self._segment)
                try:
                    self._version = self.store.put(key, data, expect=self._version)
                except Conflict as exc:
                    raise StoreError(
                        f"event segment {key!r} was changed by another writer; each writer id "
                        f"must be used by one process only", key=key) from exc
                self._lines, self._size = lines, len(data)
                return len(pending)
            except BaseException:
                self._pending = pending + self._pending  # keep them for the next flush
                raise


def _flush_at_exit() -> None:
    for events in list(_unflushed):
        events._flush_logged()


def compact(store: Store, *, keep_files: int = 8) -> int:
    """Merge each writer's closed segments once it has more than ``keep_files``, so the number
    of files stays bounded. The open (last) segment is never touched: its writer may still
    append to it. Merged files are written before the originals are removed; readers drop
    the duplicates a crash in between would leave (by writer and seq). Returns files removed."""
    by_writer: dict[str, list[str]] = {}
    for key in store.list("events/"):
        parts = key.split("/")
        if len(parts) == 3 and parts[2].endswith(".jsonl"):
            by_writer.setdefault(parts[1], []).append(key)
    removed = 0
    for writer, keys in by_writer.items():
        closed = keys[:-1]
        if len(closed) <= keep_files:
            continue
        chunks = []
        for key in closed:
            record = store.get(key)
            if record is not None:
                chunks.append(record.data if record.data.endswith(b"\n") else record.data + b"\n")
        first = closed[0].rsplit("/", 1)[1].split(".")[0].split("-")[0]
        last = closed[-1].rsplit("/", 1)[1].split(".")[0].split("-")[-1]
        merged = f"events/{writer}/{first}-{last}.jsonl"  # sorts before the writer's open segment
        store.put(merged, b"".join(chunks))
        for key in closed:
            if key != merged:
                store.delete(key)
                removed += 1
    return removed
