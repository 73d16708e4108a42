"""The fencing-token high-water mark: the highest token ever issued for a lease, kept
apart from the lease record (``lease-tokens/<name>``) and raised by compare-and-swap
before a lease record with a new token is written.

Losing either record (damaged, removed, restored from an old copy) cannot make a token
repeat: the next token is above both.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Optional

from ..errors import Conflict, CorruptRecord, StoreError
from ..store import ABSENT, Record
from ..store.base import check_key
from ..store.bounded import BoundedCaller
from .record import lease_key

__all__ = ["HighWaterMark", "high_water_key"]

log = logging.getLogger("sessionkit.lease")


def high_water_key(name: str) -> str:
    """Where the highest token ever issued for lease ``name`` is kept, apart from the lease."""
    lease_key(name)
    return check_key(f"lease-tokens/{name}")


def decode_high_water(key: str, where: str, data: bytes, version: str) -> tuple[int, Optional[str]]:
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


class HighWaterMark:
    """One acquirer's view of a lease's high-water mark, and its raises.

    ``monotonic``: the acquirer's clock; ``ttl``: the lease's (how long a missing lease
    record must have been missing before it is written anew)."""

    def __init__(self, store: Any, name: str, holder: str, *, requests: BoundedCaller,
                 monotonic: Callable[[], float], ttl: float) -> None:
        self.store, self.name, self.holder = store, name, holder
        self.key = high_water_key(name)
        self.ttl = ttl
        self._requests = requests
        self._monotonic = monotonic
        self._raised_unanswered: Optional[int] = None  # a token this holder's mark write may have set
        #: (version, when first seen here) of the mark: a missing lease record is judged
        #: missing only since the mark last changed (see ``next_token``)
        self._seen: Optional[tuple[Optional[str], float]] = None

    def next_token(self, seen: int, *, removed: bool,
                   unchanged_for: Callable[[], Optional[float]]) -> Optional[int]:
        """Steps 4-5 of an acquisition: the next token, above both ``seen`` (the lease record's)
        and the mark, written to the mark first; None if another acquirer moved it in between
        or the store did not answer (a mark raised without a lease write only skips a token).
        ``removed``: there is no lease record. If the mark shows one was issued, the record
        was removed, perhaps under a live holder: as for a damaged record, wait until it has
        been absent for ``ttl`` on this clock (the holder gave up at its renew deadline).
        ``unchanged_for()``: how long the lease record has looked as it does now, here."""
        key = self.key
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
                high, raised_by = decode_high_water(key, self.store.url, found.data, found.version)
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
        now = self._monotonic()
        if found is None or self._seen is None or self._seen[0] != found.version:
            self._seen = (found.version if found is not None else None, now)
        still = min(unchanged_for(), now - self._seen[1])  # type: ignore[type-var]
        if removed and high > 0 and not mine and still < self.ttl:
            log.warning("lease %r: its record %s is missing from %s although token %d was issued; "
                        "it is written anew once it has been missing for the lease's ttl (%g s)",
                        self.name, lease_key(self.name), self.store.url, high, self.ttl)
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
        self._seen = (raised, self._monotonic())
        return token
