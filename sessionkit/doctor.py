"""``doctor(store)``: check on the live service what a store relies on, and measure it.

Every store gets the same generic checks, through the store contract only:

- **create-only**: a second ``put(expect=ABSENT)`` of a key that exists raises ``Conflict``;
- **stale compare-and-swap**: ``put(expect=<an older version>)`` raises ``Conflict`` and
  leaves the newer record;
- **stale delete**: ``delete(expect=<an older version>)`` raises ``Conflict`` and leaves
  the newer record;
- **read-after-write**: a ``get`` right after a ``put`` (a new key, then an overwrite)
  returns what was written;
- **listing lag**: seconds until a new key is in ``list(prefix)`` (bounded wait);
- **round trip**: median milliseconds of a few small ``put``/``get`` calls;
- **upload**: ``put_file`` of a few MB and ``get_file`` back, MB/s, same bytes.

The first four and the upload are *needed*: leases, jobs and blobs are only safe where
they hold. Then the backend's own checks (``Store.doctor_checks()``; Drive: its unproven
behaviours). Every key written starts with ``doctor/<run id>-`` and is removed at the end,
also when a check fails or the run is interrupted (object stores keep a tombstone of
each key, as after any delete). A check the store could not settle, because a request
failed, answers "could not tell" with the error.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from .clock import SYSTEM_CLOCK, Clock
from .validate import check_seconds
from .errors import Conflict, StoreError
from .store import ABSENT, Store, open_store
from .store.checks import CHECK_PREFIX, HOLDS, NOT_HOLDS, UNKNOWN, Check, Figure

__all__ = ["Check", "DoctorReport", "Figure", "HOLDS", "NOT_HOLDS", "UNKNOWN", "doctor"]

MB = 1024 * 1024


@dataclass(frozen=True)
class DoctorReport:
    """What ``doctor`` found on one store: its checks in the order they ran."""

    url: str
    checks: tuple[Check, ...]
    #: where the run wrote: every key starts with it (``doctor/<run id>-``)
    prefix: str
    #: keys it wrote and could not remove (empty unless the store failed at the end)
    leftover: tuple[str, ...]
    #: wall time of the whole run
    seconds: float

    @property
    def failed(self) -> tuple[Check, ...]:
        """The needed checks that do not hold."""
        return tuple(c for c in self.checks if c.failed)

    @property
    def ok(self) -> bool:
        """No check the store needs does not hold (a "could not tell" is not a failure)."""
        return not self.failed

    def to_json(self) -> dict[str, Any]:
        """The fixed shape ``sessionkit doctor --json`` prints (docs/cli.md)."""
        return {"store": self.url, "ok": self.ok, "prefix": self.prefix, "leftover": list(self.leftover),
                "seconds": round(self.seconds, 3),
                "checks": [{"name": c.name, "verdict": c.verdict, "needed": c.needed, "detail": c.detail,
                            "figures": [{"name": f.name, "value": round(f.value, 4), "unit": f.unit}
                                        for f in c.figures]} for c in self.checks]}

    def table(self) -> str:
        """The report as ``sessionkit doctor`` prints it on a terminal."""
        rows = [("check", "verdict", "needed", "measured", "detail")]
        rows += [(c.name, c.verdict, "yes" if c.needed else "no", ", ".join(map(str, c.figures)) or "-", c.detail)
                 for c in self.checks]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [f"sessionkit doctor: {self.url}"]
        lines += ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)) + "  " + r[4] for r in rows]
        if self.failed:
            lines.append(f"NOT FIT: {len(self.failed)} check(s) the store needs do not hold: "
                         f"{', '.join(c.name for c in self.failed)}")
        else:
            unknown = [c.name for c in self.checks if c.verdict == UNKNOWN]
            lines.append("fit: every check the store needs holds" if not unknown else
                         f"fit so far: nothing the store needs fails; could not tell: {', '.join(unknown)}")
        lines.append(f"wrote {self.prefix}* and removed it" if not self.leftover else
                     f"wrote {self.prefix}*; could not remove: {', '.join(self.leftover)}")
        return "\n".join(lines)


class _Run:
    """One doctor run: its keys (recorded before each write, which may land even when it
    fails) and its clock."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock
        # flat names (doctor/<run>-<check>): a local folder keeps no folder per check
        self.prefix = f"{CHECK_PREFIX}{uuid.uuid4().hex[:12]}-"
        self.written: list[str] = []

    def key(self, name: str) -> str:
        key = self.prefix + name
        self.written.append(key)
        return key

    def timed(self, op: Callable[[], object]) -> float:
        """Seconds ``op`` took."""
        start = self.clock.monotonic()
        op()
        return self.clock.monotonic() - start

    def clean(self) -> tuple[str, ...]:
        leftover = []
        for key in dict.fromkeys(reversed(self.written)):
            try:
                self.store.delete(key)
            except StoreError:
                leftover.append(key)
        return tuple(leftover)


def _create_only(run: _Run) -> Check:
    store, key = run.store, run.key("create-only")
    first = store.put(key, b"first", expect=ABSENT)
    try:
        second = store.put(key, b"second", expect=ABSENT)
    except Conflict:
        return Check("create-only", HOLDS, "a second create-only put of a key that exists raised Conflict", True)
    return Check("create-only", NOT_HOLDS, f"a second create-only put of a key that exists replaced it (version "
                 f"{first!r} -> {second!r}): two runtimes could each create one lease", True)


def _stale(run: _Run, name: str, verb: str, act: Callable[[Store, str, str], object], harm: str) -> Check:
    """Write a key twice, then ``act`` on it with the first (stale) version: it must raise
    Conflict and leave the newer record."""
    store, key = run.store, run.key(name.replace(" ", "-").lower())
    old = store.put(key, b"old")
    new = store.put(key, b"new", expect=old)
    try:
        act(store, key, old)
    except Conflict:
        now = store.get(key)
        if now is not None and now.data == b"new":
            return Check(name, HOLDS, f"a {verb} with an older version raised Conflict; the newer record stayed",
                         True)
        return Check(name, NOT_HOLDS, f"a {verb} with an older version raised Conflict but the record is now "
                     f"{now!r}, not the newer one", True)
    return Check(name, NOT_HOLDS, f"a {verb} with the older version {old!r} {harm} version {new!r}: a "
                 f"{'compare-and-swap can overwrite' if verb == 'put' else 'conditional delete can remove'} "
                 f"another writer's newer record", True)


def _stale_cas(run: _Run) -> Check:
    return _stale(run, "stale CAS", "put", lambda store, key, old: store.put(key, b"late", expect=old), "replaced")


def _stale_delete(run: _Run) -> Check:
    return _stale(run, "stale delete", "delete", lambda store, key, old: store.delete(key, expect=old), "removed")


def _read_after_write(run: _Run) -> Check:
    store, key = run.store, run.key("read-after-write")
    seen = []
    for what in ("a new key", "an overwrite"):
        data = os.urandom(16).hex().encode()
        version = store.put(key, data)
        got = store.get(key)
        if got is None or got.data != data or got.version != version:
            seen.append(f"{what}: a get right after the put returned "
                        f"{'no record' if got is None else 'other bytes' if got.data != data else 'another version'}")
    if seen:
        return Check("read-after-write", NOT_HOLDS, "; ".join(seen), True)
    return Check("read-after-write", HOLDS, "a get right after a put (new key, then overwrite) returned it", True)


def _listing_lag(run: _Run, wait: float) -> Check:
    store, clock = run.store, run.clock
    prefix = run.prefix + "listed-"
    key = run.key("listed-" + uuid.uuid4().hex[:8])
    store.put(key, b"x")
    start = clock.monotonic()
    lists, pause = 0, 0.05
    while True:
        lists += 1
        if key in store.list(prefix):
            lag = clock.monotonic() - start
            return Check("listing lag", HOLDS, f"a new key was listed after {lists} list call(s)", False,
                         (Figure("lag", lag, "s"),))
        elapsed = clock.monotonic() - start
        if elapsed >= wait:
            return Check("listing lag", NOT_HOLDS, f"a new key was not listed within {wait:g} s ({lists} list "
                         f"calls); status and history show new records late", False, (Figure("lag >", elapsed, "s"),))
        clock.sleep(min(pause, wait - elapsed))
        pause = min(pause * 2, 1.0)


def _round_trip(run: _Run, samples: int) -> Check:
    store, key = run.store, run.key("round-trip")
    payload = b"x" * 64
    puts = [run.timed(lambda: store.put(key, payload)) for _ in range(samples)]
    gets = [run.timed(lambda: store.get(key)) for _ in range(samples)]
    return Check("round trip", HOLDS, f"median of {samples} puts and {samples} gets of 64 bytes", False,
                 (Figure("put", statistics.median(puts) * 1000, "ms"),
                  Figure("get", statistics.median(gets) * 1000, "ms")))


def _upload(run: _Run, size: int) -> Check:
    store, key = run.store, run.key("upload")
    with tempfile.TemporaryDirectory(prefix="sessionkit-doctor-") as tmp:
        src, dst = os.path.join(tmp, "up"), os.path.join(tmp, "down")
        data = os.urandom(size)
        with open(src, "wb") as fh:
            fh.write(data)
        up = run.timed(lambda: store.put_file(key, src))
        down = run.timed(lambda: store.get_file(key, dst))
        with open(dst, "rb") as fh:
            same = hashlib.sha256(fh.read()).digest() == hashlib.sha256(data).digest()
    mb = size / MB
    figures = (Figure("up", mb / up if up > 0 else float("inf"), "MB/s"),
               Figure("down", mb / down if down > 0 else float("inf"), "MB/s"))
    if not same:
        return Check("upload", NOT_HOLDS, f"put_file of {mb:g} MB, then get_file returned other bytes", True, figures)
    return Check("upload", HOLDS, f"put_file of {mb:g} MB and get_file back: the same bytes", True, figures)


def _settled(name: str, needed: bool, check: Callable[[], Check]) -> Check:
    """Run one check; a store failure (other than the Conflict it looks for) settles nothing."""
    try:
        return check()
    except StoreError as exc:
        return Check(name, UNKNOWN, f"the store failed: {exc}", needed)


def doctor(store: Union[Store, str, "os.PathLike[str]"], *, clock: Optional[Clock] = None, list_wait: float = 30.0,
           samples: int = 5, upload_mb: float = 4.0) -> DoctorReport:
    """Check ``store`` (a Store, a URL or a folder) on the live service; see the module docstring.

    ``list_wait``: seconds to wait for a new key to be listed; ``samples``: small puts and
    gets timed for the round trip; ``upload_mb``: size of the ``put_file`` upload, in MB.
    A URL is opened without the first-open check (``open_store(check=False)``), so a
    service that would be refused can be diagnosed; nothing but the doctor runs on it.
    """
    check_seconds("list_wait", list_wait, "seconds to wait for a new key to be listed")
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise ValueError(f"samples must be a whole number of timed puts and gets, at least 1, not {samples!r}")
    if not isinstance(upload_mb, (int, float)) or isinstance(upload_mb, bool) or not 0 < upload_mb <= 1024:
        raise ValueError(f"upload_mb must be the upload's size in MB, more than 0 and at most 1024, "
                         f"not {upload_mb!r}")
    opened = not isinstance(store, Store)
    target = open_store(store, check=False) if opened else store
    run = _Run(target, clock or SYSTEM_CLOCK)
    start = run.clock.monotonic()
    checks: list[Check] = []
    try:
        for name, check in (("create-only", lambda: _create_only(run)), ("stale CAS", lambda: _stale_cas(run)),
                            ("stale delete", lambda: _stale_delete(run)),
                            ("read-after-write", lambda: _read_after_write(run))):
            checks.append(_settled(name, True, check))
        checks.append(_settled("listing lag", False, lambda: _listing_lag(run, list_wait)))
        checks.append(_settled("round trip", False, lambda: _round_trip(run, samples)))
        checks.append(_settled("upload", True, lambda: _upload(run, int(upload_mb * MB))))
        try:
            checks += target.doctor_checks()
        except StoreError as exc:
            checks.append(Check(f"{type(target).__name__} checks", UNKNOWN, f"the store failed: {exc}", True))
    finally:
        leftover = run.clean()
        if opened:
            target.close()
    return DoctorReport(target.url, tuple(checks), run.prefix, leftover, run.clock.monotonic() - start)
