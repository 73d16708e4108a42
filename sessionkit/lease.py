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
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .validate import at_least_floor, check_period, check_seconds
from .clock import SYSTEM_CLOCK, Clock
from .records import read_all
from .errors import Conflict, CorruptRecord, LeaseLost, LeaseTimeout, SessionkitError, StoreError
from .events import EventLog
from .store import ABSENT, Record, Store, open_store
from .store.base import check_key
from .store.bounded import BoundedCaller

__all__ = ["Lease", "LeaseRecord", "LeaseTimeout", "list_leases", "read_lease"]

log = logging.getLogger("sessionkit.lease")
RENEW_EVENT_EVERY = 20  # lease.renewed events are sampled: one per this many renewals
REQUEST_SHARE = 0.4  # each store request is given at most this share of the renew deadline (< 1/2)


@dataclass(frozen=True)
class LeaseRecord:
    """What ``leases/<name>`` holds. Times are wall-clock ISO strings, for people only."""

    holder: Optional[str]  # None once released
    token: int
    ttl: float
    acquired: str
    renewed: str
    renewals: int = 0  # written one higher by every renewal, so each one changes the content

    def encode(self) -> bytes:
        return json.dumps({"v": 1, "holder": self.holder, "token": self.token, "ttl": self.ttl,
                           "acquired": self.acquired, "renewed": self.renewed,
                           "renewals": self.renewals}).encode()

    @classmethod
    def decode(cls, key: str, where: str, data: bytes, version: str) -> "LeaseRecord":
        try:
            body = json.loads(data)
            token = body["token"]
            if not isinstance(token, int) or token < 0 or isinstance(token, bool):
                raise ValueError(f"token {token!r} is not a count")
            holder = body["holder"]
            if holder is not None and not isinstance(holder, str):
                raise ValueError("holder is not a string")
            renewals = body.get("renewals", 0)  # records written before the counter have none
            if not isinstance(renewals, int) or renewals < 0 or isinstance(renewals, bool):
                raise ValueError(f"renewals {renewals!r} is not a count")
            return cls(holder, token, float(body["ttl"]), str(body["acquired"]), str(body["renewed"]), renewals)
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptRecord(key, where, f"not a lease record ({exc})", version) from None


def lease_key(name: str) -> str:
    if not isinstance(name, str) or "/" in name:
        raise ValueError(f"a lease name must be one name without '/', got {name!r}")
    return check_key(f"leases/{name}")


def high_water_key(name: str) -> str:
    """Where the highest token ever issued for lease ``name`` is kept, apart from the lease."""
    lease_key(name)
    return check_key(f"lease-tokens/{name}")


def _decode_high_water(key: str, where: str, data: bytes, version: str) -> tuple[int, Optional[str]]:
    """(highest token issued, the holder that raised the mark to it)."""
    try:
        body = json.loads(data)
        token, holder = body["token"], body.get("holder")
        if not isinstance(token, int) or isinstance(token, bool) or token < 0:
            raise ValueError(f"token {token!r} is not a count")
        if holder is not None and not isinstance(holder, str):
            raise ValueError("holder is not a string")
        return token, holder
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptRecord(key, where, f"not a lease token record ({exc})", version) from None


def read_lease(store: Store, name: str) -> Optional[LeaseRecord]:
    """The lease record as stored, or None (for status views; judge expiry with a Lease)."""
    key = lease_key(name)
    record = store.get(key)
    if record is None:
        return None
    return LeaseRecord.decode(key, store.url, record.data, record.version)


def list_leases(store: Store, damaged: Optional[list[CorruptRecord]] = None) -> list[tuple[str, LeaseRecord]]:
    """Every lease record as stored, by name; a damaged one is logged, left out, and added
    to ``damaged`` when given (read-only tools show the rest and flag it)."""
    found = read_all(store, "leases/", LeaseRecord.decode)
    if damaged is not None:
        damaged.extend(found.damaged)
    return [(stored.key.split("/", 1)[1], stored.value) for stored in found.records]


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
        remote = getattr(self.store, "remote", False)
        ttl = check_seconds("ttl", ttl, "how long a lease record may lie unchanged before others take over")
        renew_deadline = (check_seconds("renew_deadline", renew_deadline, "how long a holder acts after its "
                                        "last renewal began, or None: 2/3 of ttl")
                          if renew_deadline is not None else ttl * 2 / 3)
        retry_period = (check_period("retry_period", retry_period, clock=clock, remote=remote,
                                     what="how often the lease is renewed or tried, or None: ttl/7.5")
                        if retry_period is not None else at_least_floor(ttl / 7.5, clock=clock, remote=remote))
        if not ttl > renew_deadline:
            raise ValueError(f"lease {name!r}: ttl ({ttl:g} s) must be greater than renew_deadline "
                             f"({renew_deadline:g} s), so a holder gives up before others take over")
        if not renew_deadline > 1.2 * retry_period:
            raise ValueError(f"lease {name!r}: renew_deadline ({renew_deadline:g} s) must be greater "
                             f"than 1.2 x retry_period ({retry_period:g} s), so a renewal can be "
                             f"retried before the deadline")
        if getattr(self.store, "on_mounted_drive", False) and not allow_unsafe_mount:
            raise SessionkitError(
                f"lease {name!r}: the store {self.store.url} is on a mounted Google Drive, which "
                f"syncs late and cannot arbitrate between runtimes. Use a gdrive:// store for "
                f"handover across runtimes (or allow_unsafe_mount=True for one runtime only).")
        self.ttl, self.renew_deadline, self.retry_period = ttl, renew_deadline, retry_period
        self.clock = clock
        self.on_lost = on_lost
        self.events = events
        self.token: Optional[int] = None
        #: Real seconds this lease waits for any one store request: below half the renew
        #: deadline, so a hung request leaves time for a retry before the holder gives up.
        self.request_timeout = self.clock.real_seconds(renew_deadline * REQUEST_SHARE)
        self._requests = BoundedCaller(self.request_timeout, f"lease {name!r}")
        # Two locks: _lock guards the in-memory view only and is never held during a store
        # request, so ``held`` (read on a job loop's slow path) never waits on the network;
        # _io makes this lease's own requests (renewer thread, acquire, release) take turns.
        self._lock = threading.RLock()
        self._io = threading.Lock()
        self._version: Optional[str] = None  # version of the record as last seen
        self._data: Optional[bytes] = None  # its content as last seen: a change of it is a change
        self._mine: Optional[str] = None  # version this holder last wrote: renew/release CAS on it
        self._record: Optional[LeaseRecord] = None
        self._damaged: Optional[CorruptRecord] = None  # the record as last seen could not be read
        self._raised_unanswered: Optional[int] = None  # a token this holder's mark write may have set
        #: (version, when first seen here) of the high-water mark: a missing record is judged
        #: missing only since the mark last changed (see _raise_high_water)
        self._mark_seen: Optional[tuple[Optional[str], float]] = None
        self._observed_at: Optional[float] = None  # my monotonic time when I saw it change
        self._looked_at: Optional[float] = None  # ... and when I last read it
        self._change_window: Optional[float] = None  # it changed at most this long before I saw it
        #: (waited_s, window_s) of the last acquisition: the record lay unchanged for between
        #: waited_s and waited_s + window_s seconds of this clock before it was taken (None:
        #: no record existed). History's gaps use it: no other machine's clock is needed.
        self.acquired_after: Optional[tuple[float, Optional[float]]] = None
        self._renewed_at: Optional[float] = None  # start of my last successful renewal
        self._renewals = 0
        self._unsure = False  # an acquisition failed after it may have landed
        self._last_error: Optional[str] = None  # why the last renewal failed, for LeaseLost
        self._ended: Optional[LeaseLost] = None  # why this holder holds it no longer (released or lost)
        self._renewer: Optional[threading.Thread] = None
        self._stop = threading.Event()

    # -- observing -------------------------------------------------------------

    def _get(self) -> Any:
        return self._requests.call(f"reading {self.key!r}", self.store.get, self.key)

    def _put(self, data: bytes, expect: Any) -> str:
        return self._requests.call(f"writing {self.key!r}", self.store.put, self.key, data, expect=expect)

    def observe(self) -> Optional[LeaseRecord]:
        """Read the record; note when it changed, on my clock. A damaged record raises
        ``CorruptRecord`` and is remembered as held by an unknown holder (``damaged``):
        ``expires_in`` counts its ttl from when it was first seen."""
        try:
            record = self._get()
        except CorruptRecord as exc:  # the store itself could not read it (e.g. a foreign file)
            record, unreadable = None, exc
        else:
            unreadable = None
        now = self.clock.monotonic()
        with self._lock:
            looked, self._looked_at = self._looked_at, now
            if unreadable is not None:
                version = unreadable.version or "(unreadable)"
                if version != self._version or self._damaged is None:
                    self._version = version
                    self._saw_change(now, looked)
                self._record, self._damaged = None, unreadable
                raise unreadable
            if record is None:
                if self._version is not None or self._record is not None or self._observed_at is None:
                    self._saw_change(now, looked)  # it changed (to absent), as seen here
                self._version, self._data, self._record, self._damaged = None, None, None, None
                return None
            self._version = record.version  # what the next compare-and-swap needs, changed or not
            if record.data != self._data or (self._record is None and self._damaged is None):
                self._data = record.data
                self._saw_change(now, looked)
                try:
                    self._record = LeaseRecord.decode(self.key, self.store.url, record.data, record.version)
                    self._damaged = None
                except CorruptRecord as exc:
                    self._record, self._damaged = None, exc
            if self._damaged is not None:
                raise self._damaged
            return self._record

    def _saw_change(self, now: float, looked: Optional[float]) -> None:
        """The record changed between the look before (``looked``) and this one (``now``)."""
        self._observed_at = now
        self._change_window = None if looked is None else now - looked

    def _wrote(self, version: str, record: LeaseRecord) -> None:
        """This holder's write landed: the record is now ``record`` (call under ``_lock``)."""
        self._version, self._data, self._record, self._damaged = version, record.encode(), record, None
        self._observed_at = self._looked_at = self.clock.monotonic()
        self._change_window = 0.0

    @property
    def damaged(self) -> Optional[CorruptRecord]:
        """Why the record, as last seen, could not be read (None if it could)."""
        return self._damaged

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
        with self._lock:
            if self._observed_at is None:
                return None
            if self._damaged is None and (self._record is None or self._record.holder is None):
                return None
            return self.ttl - (self.clock.monotonic() - self._observed_at)

    def unchanged_for(self) -> Optional[float]:
        """Seconds, on this observer's clock, since it saw the record change (None: never seen)."""
        with self._lock:
            if self._observed_at is None:
                return None
            return self.clock.monotonic() - self._observed_at

    @property
    def record(self) -> Optional[LeaseRecord]:
        """The record as last seen by this observer."""
        return self._record

    # -- acquiring -------------------------------------------------------------

    def try_acquire(self) -> Optional[int]:
        """One attempt: take the lease if it is free, released, or expired on my clock.
        Returns the new token, or None if someone else holds it.

        1. Already holding (within the renew deadline): keep the token.
        2. Read the record; held by another (or damaged) and not expired on my clock: give up.
        3. It names me after an attempt whose answer was lost: take it up (``_adopt``).
        4. Read the high-water mark; the new token is one above it and the record's token.
        5. Raise the high-water mark to the new token by compare-and-swap.
        6. Write the new token by compare-and-swap on the version read in 2.
        """
        with self._io:
            started = self.clock.monotonic()
            if self.held:
                return self.token
            try:
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
                if current is not None and current.holder == self.holder and self._unsure:
                    return self._adopt(current, started)
            # how long the record lay still as seen here (None: there was none), for history
            waited = self.unchanged_for() if current is not None or self._damaged else None
            window = self._change_window
            token = self._raise_high_water(current.token if current is not None else 0,
                                           removed=current is None and self._damaged is None)
            if token is None:
                return None
            now = self.clock.now().isoformat()
            new = LeaseRecord(self.holder, token, self.ttl, now, now)
            try:
                version = self._put(new.encode(), self._version if self._version is not None else ABSENT)
            except Conflict:
                return None  # someone else moved first
            except StoreError as exc:
                # the write may have landed (its answer was lost): the next try looks
                self._unsure = True
                log.warning("lease %r: acquiring failed (%s); it may have landed, the next try checks",
                            self.name, exc)
                return None
            with self._lock:
                self._unsure = False
                self._wrote(version, new)
                self._mine = version
                self.token, self._renewed_at, self._renewals = token, started, 0
                self._ended = None
        previous = current.holder if current is not None else None
        self.acquired_after = (waited, window) if waited is not None else None
        self._emit("lease.acquired", token=token, previous=previous,
                   how="expired" if previous else ("released" if current else "new"),
                   waited_s=waited, window_s=window)
        return token

    def _raise_high_water(self, seen: int, removed: bool) -> Optional[int]:
        """Steps 4-5: the next token, above both ``seen`` (the lease record's) and the high-water
        mark, written to the mark first; None if another acquirer moved it in between or the
        store did not answer (a mark raised without a lease write only skips a token).
        ``removed``: there is no lease record. If the mark shows one was issued, the record
        was removed, perhaps under a live holder: as for a damaged record, wait until it has
        been absent for ``ttl`` on this clock (the holder gave up at its renew deadline)."""
        key = high_water_key(self.name)
        try:
            found = self._requests.call(f"reading {key!r}", self.store.get, key)
        except CorruptRecord as exc:  # unreadable to the store itself: replace it by its version
            found, damaged = Record(b"", exc.version or "(unreadable)"), exc
        except StoreError as exc:
            log.warning("lease %r: reading its token high-water mark failed (%s); trying again", self.name, exc)
            return None
        else:
            damaged = None
        high, raised_by = 0, None
        if found is not None and damaged is None:
            try:
                high, raised_by = _decode_high_water(key, self.store.url, found.data, found.version)
            except CorruptRecord as exc:
                damaged = exc
        if damaged is not None:
            log.warning("%s; the lease record's token is used and the mark is written anew", damaged)
        # (unless the mark is this holder's own raise whose answer was lost: no lease record was
        # written with it, so nobody can hold it; a raise that then lost the race is not exempt)
        mine = raised_by == self.holder and high == self._raised_unanswered
        # A record seen missing twice may have been written and removed in between (absent,
        # present, absent looks unchanged): every acquisition raises the mark first, so the
        # record counts as missing only since the mark last changed, as seen here.
        now = self.clock.monotonic()
        if found is None or self._mark_seen is None or self._mark_seen[0] != found.version:
            self._mark_seen = (found.version if found is not None else None, now)
        still = min(self.unchanged_for(), now - self._mark_seen[1])  # type: ignore[type-var]
        if removed and high > 0 and not mine and still < self.ttl:
            log.warning("lease %r: its record %s is missing from %s although token %d was issued; "
                        "it is written anew once it has been missing for the lease's ttl (%g s)",
                        self.name, self.key, self.store.url, high, self.ttl)
            return None
        token = max(seen, high) + 1
        body = json.dumps({"v": 1, "token": token, "holder": self.holder}).encode()
        try:
            raised = self._requests.call(f"writing {key!r}", self.store.put, key, body,
                                         expect=found.version if found is not None else ABSENT)
        except Conflict:
            return None  # another acquirer is moving first
        except StoreError as exc:
            log.warning("lease %r: raising its token high-water mark failed (%s); trying again", self.name, exc)
            self._raised_unanswered = token
            return None
        self._raised_unanswered = None
        self._mark_seen = (raised, self.clock.monotonic())
        return token

    def _adopt(self, current: LeaseRecord, started: float) -> Optional[int]:
        """The record names this holder: an earlier acquisition landed though its answer was
        lost. Take it up by renewing it now, so the renew deadline counts from this write."""
        new = LeaseRecord(self.holder, current.token, self.ttl, current.acquired, self.clock.now().isoformat(),
                          current.renewals + 1)
        try:
            version = self._put(new.encode(), self._version)
        except Conflict:
            return None
        except StoreError as exc:
            log.warning("lease %r: taking up its own record failed (%s); trying again", self.name, exc)
            return None
        with self._lock:
            self._unsure = False
            self._wrote(version, new)
            self._mine = version
            self.token, self._renewed_at, self._renewals = current.token, started, 0
            self._ended = None
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
                holder = self._record.holder if self._record else None
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
                now = self.clock.now().isoformat()
                acquired = self._record.acquired if self._record is not None else now
                renewals = (self._record.renewals if self._record is not None else 0) + 1
                new = LeaseRecord(self.holder, token, self.ttl, acquired, now, renewals)
                mine = self._mine
            if deadline_passed:
                self._lose("the renew deadline passed")
            try:
                version = self._put(new.encode(), mine)
            except Conflict:
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
                    version = self._put(new.encode(), self._version)
                except (Conflict, StoreError) as exc:
                    log.warning("lease %r: renewal failed (%s); retrying until the deadline", self.name, exc)
                    self._last_error = str(exc)
                    return False
            except StoreError as exc:
                log.warning("lease %r: renewal failed (%s); it may have landed; retrying until the "
                            "deadline", self.name, exc)
                self._last_error = str(exc)
                return False
            with self._lock:
                if self.token != token:
                    return False  # released while the request was out
                self._last_error = None
                self._wrote(version, new)
                self._mine = version
                self._renewed_at = started
                self._renewals += 1
                renewals = self._renewals
        if renewals % RENEW_EVENT_EVERY == 1:
            self._emit("lease.renewed", token=token, renewals=renewals)
        return True

    def renew_if_due(self) -> bool:
        """Renew if ``retry_period`` has passed since the last renewal began (loops call
        this; it costs a clock read when nothing is due)."""
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
        self._stop.set()
        with self._io:
            with self._lock:
                if self.token is None:
                    return True
                token, self.token = self.token, None
                self._renewed_at = None
                self._ended = LeaseLost(self.name, token, None, released=True)
                now = self.clock.now().isoformat()
                acquired = self._record.acquired if self._record is not None else now
                renewals = (self._record.renewals if self._record is not None else 0) + 1
                new = LeaseRecord(None, token, self.ttl, acquired, now, renewals)
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
                    mine = self._version
                except StoreError as exc:
                    return self._not_released(exc)
            else:
                return self._not_released("its record kept changing")
            with self._lock:
                self._version, self._data, self._record, self._damaged = version, new.encode(), new, None
        self._requests.close()  # its worker thread (and a connection a store keeps per thread) ends
        self._emit("lease.released", token=token)
        return True

    def _not_released(self, why: object) -> bool:
        log.warning("lease %r: could not release it (%s); it stays held in the store until others "
                    "take it over after its ttl (%g s)", self.name, why, self.ttl)
        return False

    def _lose(self, why: str, newer: Optional[int] = None, newer_holder: Optional[str] = None) -> None:
        lost = None
        with self._lock:
            token, self.token = self.token, None
            self._renewed_at = None
            lost = LeaseLost(self.name, token, newer, why, None if newer is not None else self._last_error,
                             newer_holder=newer_holder)
            self._ended = lost
        self._stop.set()
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
        """Renew every ``retry_period`` from a background thread until released or lost.
        The thread only talks to the store; it never touches widgets. On a clock that does
        not move by itself (``FakeClock``) no thread starts: its time is the test's, so
        the loop renews (``renew_if_due``)."""
        if self._renewer is not None and self._renewer.is_alive():
            return
        if self.clock.real_seconds(1.0) is None:
            return
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name=f"sessionkit-lease-{self.name}",
                                         daemon=True)
        self._renewer.start()

    def _renew_loop(self) -> None:
        while not self.clock.wait(self._stop, self.retry_period):
            try:
                self.renew()
            except LeaseLost as exc:
                log.warning("%s", exc)
                return
            except SessionkitError as exc:
                log.warning("lease %r: renewal error: %s", self.name, exc)

    @property
    def renewing(self) -> bool:
        """True while the background renewer thread runs."""
        return self._renewer is not None and self._renewer.is_alive()

    def stop_renewing(self) -> None:
        self._stop.set()
        self._requests.close()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join(timeout=5)

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
