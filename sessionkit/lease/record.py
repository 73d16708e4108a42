"""The lock record of a lease (``leases/<name>``) and what one observer has seen of it.

``LeaseRecord`` is what the store holds. ``Observed`` is a frozen value: the record as
last seen by one observer and when, on its own monotonic clock, it saw it change. A
``Lease`` keeps one and swaps it, under its lock, for the one each read or write
returns, so a reader (``held``, ``expires_in``) sees one consistent observation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Callable, Optional

from ..errors import CorruptRecord
from ..records import read_all
from ..store import Record, Store
from ..store.base import check_key

__all__ = ["LeaseRecord", "Observed", "lease_key", "list_leases", "read_lease"]


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


@dataclass(frozen=True)
class Observed:
    """The lock record as one observer last saw it; times are that observer's monotonic clock.

    "Changed" means its content changed (holder, token, renewals), not only the store's
    version string: Drive's etag, for one, moves with no content change. A readable
    record's content never repeats (its token and renewals only grow), but damaged bytes
    can: a record damaged, then rewritten by others, then damaged again the same way is a
    new sighting, told by its version (a store's versions never repeat for a key). So a
    damaged record counts as changed when its bytes or its version moved: a damaged record
    whose version moves by itself is then never taken over, which is safe (the message
    says to move it away)."""

    version: Optional[str] = None  # of the record as last seen: what the next CAS needs
    data: Optional[bytes] = None  # its content as last seen: a change of it is a change
    record: Optional[LeaseRecord] = None
    damaged: Optional[CorruptRecord] = None  # the record as last seen could not be read
    observed_at: Optional[float] = None  # when I saw it change
    looked_at: Optional[float] = None  # ... and when I last read it
    change_window: Optional[float] = None  # it changed at most this long before I saw it

    def _changed(self, now: float) -> "Observed":
        """It changed between the look before (``looked_at``) and this one (``now``)."""
        looked = self.looked_at
        return replace(self, observed_at=now, change_window=None if looked is None else now - looked)

    def after_read(self, now: float, found: Optional[Record], unreadable: Optional[CorruptRecord],
                   decode: Callable[[bytes, str], LeaseRecord]) -> "Observed":
        """What is seen after reading ``found`` (None: absent) at ``now``; ``unreadable``: the
        store itself could not read it. A damaged record counts as held by an unknown holder."""
        if unreadable is not None:
            version = unreadable.version or "(unreadable)"
            base = self._changed(now) if version != self.version or self.damaged is None else self
            return replace(base, version=version, looked_at=now, record=None, damaged=unreadable)
        if found is None:  # it changed (to absent), as seen here, unless it was absent already
            changed = self.version is not None or self.record is not None or self.observed_at is None
            base = self._changed(now) if changed else self
            return replace(base, looked_at=now, version=None, data=None, record=None, damaged=None)
        if found.data != self.data or (self.record is None and self.damaged is None) \
                or (self.damaged is not None and found.version != self.version):
            try:
                record, damaged = decode(found.data, found.version), None
            except CorruptRecord as exc:
                record, damaged = None, exc
            return replace(self._changed(now), looked_at=now, version=found.version, data=found.data,
                           record=record, damaged=damaged)
        return replace(self, looked_at=now, version=found.version)  # unchanged: only the version

    def after_write(self, now: float, version: str, record: LeaseRecord) -> "Observed":
        """This holder's write of ``record`` landed at ``now`` as ``version``."""
        return Observed(version, record.encode(), record, None, now, now, 0.0)

    def unchanged_for(self, now: float) -> Optional[float]:
        """Seconds since it was seen to change (None: never seen)."""
        return None if self.observed_at is None else now - self.observed_at

    def expires_in(self, now: float, ttl: float) -> Optional[float]:
        """Seconds until an observer may take the lease over (None: free or never seen)."""
        if self.observed_at is None:
            return None
        if self.damaged is None and (self.record is None or self.record.holder is None):
            return None
        return ttl - (now - self.observed_at)
