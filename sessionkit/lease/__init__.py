"""Leases with fencing tokens: at most one holder acts at a time, and a stale one is fenced.

Modelled on client-go's leaderelection. The lock record (``leases/<name>``,
JSON: holder, token, ttl, timestamps) is separate from the logic that acquires
and renews it. Rules:

- Expiry is judged on the *observer's own* monotonic clock, from the moment it
  saw the record change (``observed_at``), never by reading another machine's
  wall clock: a record that has not changed for ``ttl`` seconds of my time is
  expired. Wall-clock timestamps in the record are for people only. "Changed"
  means its content (holder, token, the renewal counter ``renewals``), never the
  store's version string: Drive's etag, for one, moves with no content change.
- A holder believes it holds the lease only until ``renew_deadline`` seconds
  after it *started* its last successful renewal; after that it stops acting as
  holder by itself (``held`` is False, ``on_lost`` is called), even if it cannot
  reach the store to find out. Because ``ttl > renew_deadline``, the holder
  gives up before anyone else may take over (with clocks that run at the same
  rate; their offsets do not matter).
- Every acquisition writes ``token = previous token + 1`` by compare-and-swap,
  so tokens strictly increase per lease name and each is issued at most once.
- The highest token issued is kept twice: in the lease record and in its own
  record, ``lease-tokens/<name>``, raised (by compare-and-swap) before the lease
  record is written. Losing either one (damaged, removed, restored from an old
  copy) cannot make a token repeat: the next one is above both.
- A damaged lease record is reported (``CorruptRecord``) and treated as held by
  an unknown holder: once it has lain unchanged for ``ttl`` on the observer's
  clock, the next acquirer replaces it (no live holder can renew a record it
  cannot read, so it gave up at its renew deadline).

Where each part lives: ``record.py``, the lock record and the frozen ``Observed`` value
this lease swaps under its lock; ``tokens.py``, the high-water mark; ``renewal.py``, the
durations (validated together) and the renewal loop, run by the clock's scheduler.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any, Callable, Optional

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import Conflict, CorruptRecord, LeaseLost, LeaseTimeout, SessionkitError, StoreError
from ..events import EventLog
from ..store import ABSENT, open_store
from ..store.bounded import BoundedCaller
from .record import LeaseRecord, Observed, lease_key, list_leases, read_lease
from .renewal import REQUEST_SHARE, LeaseTiming, Renewer  # noqa: F401 (REQUEST_SHARE: as before)
from .tokens import HighWaterMark, high_water_key  # noqa: F401 (high_water_key: as before)

__all__ = ["Lease", "LeaseRecord", "LeaseTimeout", "list_leases", "read_lease"]

log = logging.getLogger("sessionkit.lease")
RENEW_EVENT_EVERY = 20  # lease.renewed events are sampled: one per this many renewals


class Lease:
    """A named lease in ``store`` held by ``holder`` (a unique id, e.g. the session id).

    ``ttl``: how long a record may stay unchanged before observers take it over.
    ``renew_deadline``: how long after its last successful renewal began the holder
    keeps acting (default 2/3 of ttl). ``retry_period``: how often to try (default
    ttl/7.5, as client-go's 15 s / 2 s). Validated: ttl > renew_deadline > 1.2 × retry_period.
    """

    def __init__(self, store: Any, name: str, *, holder: str, ttl: float = 60.0,
                 renew_deadline: Optional[float] = None, retry_period: Optional[float] = None,
                 clock: Optional[Clock] = None, on_lost: Optional[Callable[["Lease"], None]] = None,
                 events: Optional[EventLog] = None, allow_unsafe_mount: bool = False) -> None:
        self.store = open_store(store)
        self.name = name
        self.key = lease_key(name)
        if not isinstance(holder, str) or not holder:
            raise ValueError(f"holder must be a non-empty id string, got {holder!r}")
        self.holder = holder
        clock = clock or SYSTEM_CLOCK
        timing = LeaseTiming.of(name, ttl=ttl, renew_deadline=renew_deadline, retry_period=retry_period,
                                clock=clock, remote=getattr(self.store, "remote", False))
        if getattr(self.store, "on_mounted_drive", False) and not allow_unsafe_mount:
            raise SessionkitError(
                f"lease {name!r}: the store {self.store.url} is on a mounted Google Drive, which "
                f"syncs late and cannot arbitrate between runtimes. Use a gdrive:// store for "
                f"handover across runtimes (or allow_unsafe_mount=True for one runtime only).")
        self.timing = timing
        self.ttl, self.renew_deadline, self.retry_period = timing.ttl, timing.renew_deadline, timing.retry_period
        self.clock = clock
        self.on_lost = on_lost
        self.events = events
        self.token: Optional[int] = None
        #: Real seconds this lease waits for any one store request: below half the renew
        #: deadline, so a hung request leaves time for a retry before the holder gives up.
        self.request_timeout = timing.request_timeout
        self._requests = BoundedCaller(self.request_timeout, f"lease {name!r}")
        # Two locks: _lock guards the in-memory view only and is never held during a store
        # request, so ``held`` (read on a job loop's slow path) never waits on the network;
        # _io makes this lease's own requests (renewer, acquire, release) take turns.
        self._lock = threading.RLock()
        self._io = threading.Lock()
        self._seen = Observed()  # the record as last seen: swapped whole, under _lock
        self._marks = HighWaterMark(self.store, name, holder, requests=self._requests,
                                    monotonic=clock.monotonic, ttl=self.ttl)
        self._mine: Optional[str] = None  # version this holder last wrote: renew/release CAS on it
        #: (waited_s, window_s) of the last acquisition: the record lay unchanged for between
        #: waited_s and waited_s + window_s seconds of this clock before it was taken (None:
        #: no record existed). History's gaps use it: no other machine's clock is needed.
        self.acquired_after: Optional[tuple[float, Optional[float]]] = None
        self._renewed_at: Optional[float] = None  # start of my last successful renewal
        self._renewals = 0
        self._unsure = False  # an acquisition failed after it may have landed
        self._last_error: Optional[str] = None  # why the last renewal failed, for LeaseLost
        self._ended: Optional[LeaseLost] = None  # why this holder holds it no longer (released or lost)
        self._renewer = Renewer(name, self.renew, clock=clock, period=self.retry_period)

    # -- observing -------------------------------------------------------------

    def _get(self) -> Any:
        return self._requests.call(f"reading {self.key!r}", self.store.get, self.key)

    def _put(self, data: bytes, expect: Any) -> str:
        return self._requests.call(f"writing {self.key!r}", self.store.put, self.key, data, expect=expect)

    def _decode(self, data: bytes, version: str) -> LeaseRecord:
        return LeaseRecord.decode(self.key, self.store.url, data, version)

    def observe(self) -> Optional[LeaseRecord]:
        """Read the record; note when it changed, on my clock. A damaged record raises
        ``CorruptRecord`` and is remembered as held by an unknown holder (``damaged``):
        ``expires_in`` counts its ttl from when it was first seen."""
        try:
            found, unreadable = self._get(), None
        except CorruptRecord as exc:  # the store itself could not read it (e.g. a foreign file)
            found, unreadable = None, exc
        now = self.clock.monotonic()
        with self._lock:
            self._seen = seen = self._seen.after_read(now, found, unreadable, self._decode)
        if seen.damaged is not None:
            raise seen.damaged
        return seen.record

    def _wrote(self, version: str, record: LeaseRecord) -> None:
        """This holder's write landed: the record is now ``record`` (call under ``_lock``)."""
        self._seen = self._seen.after_write(self.clock.monotonic(), version, record)
        self._mine = version

    @property
    def damaged(self) -> Optional[CorruptRecord]:
        """Why the record, as last seen, could not be read (None if it could)."""
        return self._seen.damaged

    @property
    def held(self) -> bool:
        """True while this holder may act: it holds the lease and its last successful
        renewal began less than ``renew_deadline`` ago on its own clock. Never waits on
        the store."""
        with self._lock:
            return (self.token is not None and self._renewed_at is not None
                    and self.clock.monotonic() - self._renewed_at < self.renew_deadline)

    def expires_in(self) -> Optional[float]:
        """Seconds until this observer may take the lease over (None if free or never seen)."""
        return self._seen.expires_in(self.clock.monotonic(), self.ttl)

    def unchanged_for(self) -> Optional[float]:
        """Seconds, on this observer's clock, since it saw the record change (None: never seen)."""
        return self._seen.unchanged_for(self.clock.monotonic())

    @property
    def record(self) -> Optional[LeaseRecord]:
        """The record as last seen by this observer."""
        return self._seen.record

    def _next_record(self, holder: Optional[str], token: int) -> LeaseRecord:
        """The record a renewal (or, with holder None, a release) writes over the one seen."""
        now = self.clock.now().isoformat()
        seen = self._seen.record
        return LeaseRecord(holder, token, self.ttl, seen.acquired if seen is not None else now, now,
                           (seen.renewals if seen is not None else 0) + 1)

    def _now_holding(self, token: int, started: float) -> None:
        """This holder took the lease with ``token`` at ``started`` (call under ``_lock``)."""
        self._unsure = False
        self.token, self._renewed_at, self._renewals = token, started, 0
        self._ended = None

    # -- acquiring -------------------------------------------------------------

    def try_acquire(self) -> Optional[int]:
        """One attempt: take the lease if it is free, released, or expired on my clock.
        Returns the new token, or None if someone else holds it.

        1. Already holding (within the renew deadline): keep the token.
        2. Read the record; held by another (or damaged) and not expired on my clock: give up.
        3. It names me after an attempt whose answer was lost: take it up (``_adopt``).
        4. Read the high-water mark; the new token is one above it and the record's token.
        5. Raise the high-water mark to the new token by compare-and-swap (tokens.py).
        6. Write the new token by compare-and-swap on the version read in 2.
        """
        with self._io:
            started = self.clock.monotonic()
            if self.held:  # 1
                return self.token
            try:  # 2
                current = self.observe()
            except CorruptRecord as exc:
                current = None
                if self.expires_in() > 0:  # type: ignore[operator]
                    log.warning("%s; it is replaced once it has lain unchanged for the lease's ttl "
                                "(%g s)", exc, self.ttl)
                    return None
                log.warning("%s; replacing it", exc)
            else:
                if current is not None and current.holder is not None and self.unchanged_for() < self.ttl:  # type: ignore[operator]
                    return None
                if current is not None and current.holder == self.holder and self._unsure:  # 3
                    return self._adopt(current, started)
            seen = self._seen
            # how long the record lay still as seen here (None: there was none), for history
            waited = self.unchanged_for() if current is not None or seen.damaged else None
            window = seen.change_window
            token = self._marks.next_token(current.token if current is not None else 0,  # 4, 5
                                           removed=current is None and seen.damaged is None,
                                           unchanged_for=self.unchanged_for)
            if token is None:
                return None
            now = self.clock.now().isoformat()
            new = LeaseRecord(self.holder, token, self.ttl, now, now)
            try:  # 6
                version = self._put(new.encode(), seen.version if seen.version is not None else ABSENT)
            except Conflict:
                return None  # someone else moved first
            except StoreError as exc:
                # the write may have landed (its answer was lost): the next try looks
                self._unsure = True
                log.warning("lease %r: acquiring failed (%s); it may have landed, the next try checks",
                            self.name, exc)
                return None
            with self._lock:
                self._wrote(version, new)
                self._now_holding(token, started)
        previous = current.holder if current is not None else None
        self.acquired_after = (waited, window) if waited is not None else None
        self._emit("lease.acquired", token=token, previous=previous,
                   how="expired" if previous else ("released" if current else "new"),
                   waited_s=waited, window_s=window)
        return token

    def _adopt(self, current: LeaseRecord, started: float) -> Optional[int]:
        """The record names this holder: an earlier acquisition landed though its answer was
        lost. Take it up by renewing it now, so the renew deadline counts from this write."""
        new = LeaseRecord(self.holder, current.token, self.ttl, current.acquired, self.clock.now().isoformat(),
                          current.renewals + 1)
        try:
            version = self._put(new.encode(), self._seen.version)
        except Conflict:
            return None
        except StoreError as exc:
            log.warning("lease %r: taking up its own record failed (%s); trying again", self.name, exc)
            return None
        with self._lock:
            self._wrote(version, new)
            self._now_holding(current.token, started)
        self._emit("lease.acquired", token=current.token, previous=None, how="answer lost, then found")
        return current.token

    def acquire(self, timeout: Optional[float] = None) -> int:
        """Take the lease, waiting (``retry_period`` between tries, on this lease's clock)
        up to ``timeout`` seconds, forever if None. Returns the fencing token."""
        start = self.clock.monotonic()
        while True:
            token = self.try_acquire()
            if token is not None:
                return token
            waited = self.clock.monotonic() - start
            if timeout is not None and waited >= timeout:
                holder = self.record.holder if self.record else None
                raise LeaseTimeout(f"lease {self.name!r} is held by {holder!r}; gave up after "
                                   f"{waited:.1f} s (it expires in {self.expires_in() or 0:.1f} s "
                                   f"if not renewed)")
            pause = self.retry_period
            if timeout is not None:
                pause = min(pause, max(0.0, timeout - waited))
            self.clock.sleep(pause)

    # -- holding ---------------------------------------------------------------

    def renew(self) -> bool:
        """Renew once. True on success; False if the store could not be reached (retry
        later). Raises ``LeaseLost`` if another holder took over or the deadline passed.

        1. Not holding, or past the renew deadline on my clock: lost.
        2. Compare-and-swap on the version I wrote last (nobody else writes my holder id).
        3. Conflict: read; another holder or token means lost; else an earlier renewal of
           mine landed though its answer was lost: swap on top of it.
        4. No answer (error, or none within ``request_timeout``): retry until the deadline.
        """
        with self._io:
            with self._lock:
                token = self.token
                if token is None:
                    raise self._ended or LeaseLost(self.name, None, None, "renewing a lease it never held")
                deadline_passed = not self.held
                started = self.clock.monotonic()
                new = self._next_record(self.holder, token)
                mine = self._mine
            if deadline_passed:  # 1
                self._lose("the renew deadline passed")
            try:  # 2
                version = self._put(new.encode(), mine)
            except Conflict:  # 3
                try:
                    current = self.observe()
                except (StoreError, CorruptRecord) as exc:
                    log.warning("lease %r: renewal conflicted and the record cannot be read (%s); "
                                "retrying until the deadline", self.name, exc)
                    return False
                if current is None:
                    self._lose("its lease record was removed from the store, so another runtime may "
                               "take the lease at once")
                if current.token < token:
                    self._lose(f"its lease record was replaced by an older copy (token {current.token}), "
                               f"so another runtime may take the lease")
                if current.holder != self.holder or current.token != token:
                    self._lose("another holder took over", current.token, current.holder)
                try:
                    version = self._put(new.encode(), self._seen.version)
                except (Conflict, StoreError) as exc:
                    log.warning("lease %r: renewal failed (%s); retrying until the deadline", self.name, exc)
                    self._last_error = str(exc)
                    return False
            except StoreError as exc:  # 4
                log.warning("lease %r: renewal failed (%s); it may have landed; retrying until the "
                            "deadline", self.name, exc)
                self._last_error = str(exc)
                return False
            with self._lock:
                if self.token != token:
                    return False  # released while the request was out
                self._last_error = None
                self._wrote(version, new)
                self._renewed_at = started
                self._renewals += 1
                renewals = self._renewals
        if renewals % RENEW_EVENT_EVERY == 1:
            self._emit("lease.renewed", token=token, renewals=renewals)
        return True

    def renew_if_due(self) -> bool:
        """Renew if ``retry_period`` has passed since the last renewal began (a loop may
        call this; it costs a clock read when nothing is due)."""
        with self._lock:
            if self.token is None or self._renewed_at is None:
                return False
            if self.clock.monotonic() - self._renewed_at < self.retry_period:
                return True
        return self.renew()

    def release(self) -> bool:
        """Give the lease up now, so a waiting backup can take it at once (with token + 1).
        True once the store no longer names this holder (released, or taken over already);
        False, with a warning, when it could not be released (others take over after ttl)."""
        self._renewer.cancel()
        with self._io:
            with self._lock:
                if self.token is None:
                    return True
                token, self.token = self.token, None
                self._renewed_at = None
                self._ended = LeaseLost(self.name, token, None, released=True)
                new = self._next_record(None, token)
                mine = self._mine
            for _try in range(3):
                try:
                    # only a record this holder wrote last may be released: a stale holder must
                    # not free (or turn back the token of) a lease someone else took over
                    version = self._put(new.encode(), mine)
                    break
                except Conflict:
                    try:  # another write is there: whose? (a record still naming me is mine to free)
                        current = self.observe()
                    except (StoreError, CorruptRecord) as exc:
                        return self._not_released(exc)
                    if current is None or current.holder != self.holder or current.token != token:
                        log.info("lease %r was taken over before it was released", self.name)
                        return True
                    mine = self._seen.version
                except StoreError as exc:
                    return self._not_released(exc)
            else:
                return self._not_released("its record kept changing")
            with self._lock:
                self._seen = dataclasses.replace(self._seen, version=version, data=new.encode(), record=new,
                                                 damaged=None)
        self._requests.close()  # its worker thread (and a connection a store keeps per thread) ends
        self._emit("lease.released", token=token)
        return True

    def _not_released(self, why: object) -> bool:
        log.warning("lease %r: could not release it (%s); it stays held in the store until others "
                    "take it over after its ttl (%g s)", self.name, why, self.ttl)
        return False

    def _lose(self, why: str, newer: Optional[int] = None, newer_holder: Optional[str] = None) -> None:
        with self._lock:
            token, self.token = self.token, None
            self._renewed_at = None
            lost = LeaseLost(self.name, token, newer, why, None if newer is not None else self._last_error,
                             newer_holder=newer_holder)
            self._ended = lost
        self._renewer.cancel()
        self._emit("lease.lost", token=token, newer=newer, reason=why, cause=self._last_error)
        if self.on_lost is not None:
            try:
                self.on_lost(self)
            except Exception as exc:  # a user callback must not hide the loss itself
                log.error("lease %r: on_lost callback failed: %r", self.name, exc)
        raise lost

    def check(self) -> int:
        """The token, if this holder may still act; else ``LeaseLost`` saying why: released
        by this holder, taken over (by which token), or its renew deadline passed (with the
        last renewal's error). Use before writing; never waits on the store."""
        with self._lock:
            if not self.held:
                if self.token is None and self._ended is not None:
                    raise self._ended
                raise LeaseLost(self.name, self.token, None, "", self._last_error)
            return self.token  # type: ignore[return-value]

    # -- background renewal ----------------------------------------------------

    def start_renewing(self) -> None:
        """Renew every ``retry_period`` in the background until released or lost, through
        the clock's scheduler (renewal.py): a thread on real and scaled clocks; on a
        ``FakeClock``, the renewals fall due as the test advances it."""
        self._renewer.start()

    @property
    def renewing(self) -> bool:
        """True while background renewal runs."""
        return self._renewer.running

    def stop_renewing(self) -> None:
        self._renewer.cancel()
        self._requests.close()
        self._renewer.stop()

    # -- conveniences ----------------------------------------------------------

    def __enter__(self) -> "Lease":
        self.acquire()
        self.start_renewing()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_renewing()
        self.release()

    def _emit(self, kind: str, **data: Any) -> None:
        if self.events is not None:
            self.events.emit(kind, lease=self.name, holder=self.holder, **data)
            try:
                self.events.flush()
            except StoreError as exc:
                log.info("lease %r: events not written yet: %s", self.name, exc)

    def __repr__(self) -> str:
        state = f"held, token {self.token}" if self.held else "not held"
        return f"<Lease {self.name!r} {self.holder!r} {state}>"
