"""A job's manifest: the one small, contended record that says where the job stands.

``jobs/<id>/manifest`` is written by compare-and-swap at every checkpoint;
``jobs/<id>/manifest.prev`` holds the generation before it, so a damaged
manifest falls back one generation (with a warning) instead of stopping the job.
Everything in it is JSON; its fields are listed in ``docs/format.md``.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Optional

from ..errors import CorruptRecord, InvalidKey, SessionkitWarning
from ..store import Store
from ..store.base import check_key
from .status import ACTIVE, FINISHED, STATUSES, TRANSITIONS, JobStatus

__all__ = ["ACTIVE", "FINISHED", "MAX_FAILED", "STATUSES", "TRANSITIONS", "Loaded", "Manifest", "check_job_id",
           "load", "manifest_key"]

MANIFEST_FORMAT = 3  # 2: a position job's done ranges are in the manifest ("ranges");
#                      3: a keyed job's newest done keys too ("keys"); 1 and 2 are read
MAX_FAILED = 10_000  # failed items a manifest lists (the rest are counted in events only)


def check_job_id(job_id: object) -> str:
    if not isinstance(job_id, str) or not job_id or "/" in job_id:
        raise InvalidKey(job_id, "a job id must be one non-empty name without '/'")
    check_key(f"jobs/{job_id}/manifest")
    return job_id


def manifest_key(job_id: str) -> str:
    return f"jobs/{job_id}/manifest"


def prev_key(job_id: str) -> str:
    return f"jobs/{job_id}/manifest.prev"


def control_key(job_id: str) -> str:
    return f"jobs/{job_id}/control"


def encode(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()


def decode(key: str, where: str, data: bytes, version: Optional[str]) -> dict[str, Any]:
    """Parse and check a manifest; anything foreign or newer is a ``CorruptRecord``."""
    try:
        m = json.loads(data)
    except ValueError as exc:
        raise CorruptRecord(key, where, f"not JSON ({exc})", version) from None
    if not isinstance(m, dict) or m.get("kind") != "sessionkit.job":
        raise CorruptRecord(key, where, "not a sessionkit job manifest", version)
    if not isinstance(m.get("format"), int) or m["format"] > MANIFEST_FORMAT:
        raise CorruptRecord(key, where, f"manifest format {m.get('format')!r} is newer than this "
                                        f"sessionkit understands ({MANIFEST_FORMAT}): upgrade sessionkit",
                            version)
    for field, types in (("status", str), ("generation", int), ("segments", list), ("done", int),
                         ("state", dict), ("blobs", dict)):
        if not isinstance(m.get(field), types):
            raise CorruptRecord(key, where, f"field {field!r} is missing or of the wrong type", version)
    keys = m.get("keys")
    if keys is not None and not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise CorruptRecord(key, where, "field 'keys' is not a list of str", version)
    ranges = m.get("ranges")
    if ranges is not None and not (isinstance(ranges, list) and all(
            isinstance(r, list) and len(r) == 2 and all(isinstance(x, int) and x >= 0 for x in r) for r in ranges)):
        raise CorruptRecord(key, where, "field 'ranges' is not a list of [start, end] positions", version)
    garbage = m.get("garbage")
    if garbage is not None and not (isinstance(garbage, list) and all(
            isinstance(g, list) and len(g) == 2 and isinstance(g[0], str) and isinstance(g[1], int)
            for g in garbage)):
        raise CorruptRecord(key, where, "field 'garbage' is not a list of [file, generation]", version)
    failed = m.get("failed")
    if failed is not None and not (isinstance(failed, list) and all(
            isinstance(f, list) and len(f) == 2 and all(isinstance(x, str) for x in f) for f in failed)):
        raise CorruptRecord(key, where, "field 'failed' is not a list of [item, error]", version)
    if m.get("mode") not in (None, "position", "key"):
        raise CorruptRecord(key, where, f"unknown item mode {m.get('mode')!r}", version)
    if m["status"] not in STATUSES:
        raise CorruptRecord(key, where, f"unknown status {m['status']!r}", version)
    return m


@dataclass(frozen=True)
class Manifest:
    """One generation of ``jobs/<id>/manifest`` (fields as in docs/format.md).

    Frozen: a change is a new value (``manifest.with_changes(total=10)``), so the loop
    can hand the one it holds to the checkpoint writer without a copy or a lock.
    ``state``, ``params`` and ``blobs`` are plain JSON values; they are never changed in
    place, only replaced.
    """

    job: str
    status: JobStatus = JobStatus.PENDING  # stored as its ``stored`` value
    generation: int = 0
    token: Optional[int] = None
    total: Optional[int] = None
    params: dict[str, Any] = field(default_factory=dict)
    mode: Optional[str] = None
    segments: tuple[tuple[str, int], ...] = ()
    ranges: Optional[tuple[tuple[int, int], ...]] = None
    keys: tuple[str, ...] = ()  # key mode: done keys not yet moved to a segment
    done: int = 0
    state: dict[str, Any] = field(default_factory=dict)
    blobs: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    stages: tuple[str, ...] = ()
    stage: Optional[str] = None
    bytes: int = 0
    elapsed: float = 0.0
    created: str = ""
    updated: str = ""
    error: Optional[dict[str, Any]] = None
    control: Optional[str] = None
    writer: Optional[str] = None
    #: Files under ``jobs/<id>/`` (``done/<name>``, ``blobs/<hash>``) no generation from this
    #: one on names, with the generation that dropped them: removed once the generation after
    #: that exists. Kept here, not only in memory, so a writer killed before removing them
    #: leaves the list to the next one (the store keeps no garbage after a crash).
    garbage: tuple[tuple[str, int], ...] = ()
    #: Items ``map(errors="record")`` gave up on: (key, or position as a str; the error), at
    #: most ``MAX_FAILED`` of them. Skipped by later runs unless they ask to retry them.
    failed: tuple[tuple[str, str], ...] = ()

    def with_changes(self, **changes: Any) -> "Manifest":
        """A new manifest: this one with ``changes``."""
        return replace(self, **changes)

    def but(self, **changes: Any) -> "Manifest":
        """Deprecated name of ``with_changes``."""
        warnings.warn("Manifest.but is deprecated; use Manifest.with_changes", DeprecationWarning, stacklevel=2)
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body.update(format=MANIFEST_FORMAT, kind="sessionkit.job", status=self.status.stored.value,
                    segments=[list(s) for s in self.segments], stages=list(self.stages), keys=list(self.keys),
                    ranges=None if self.ranges is None else [list(r) for r in self.ranges],
                    garbage=[list(g) for g in self.garbage], failed=[list(f) for f in self.failed],
                    blobs={name: [dict(e) for e in entries] for name, entries in self.blobs.items()})
        return body

    def encode(self) -> bytes:
        return encode(self.to_json())

    @classmethod
    def from_json(cls, m: dict[str, Any]) -> "Manifest":
        """From a dict ``decode`` has checked."""
        ranges = m.get("ranges")
        return cls(
            job=str(m.get("job") or ""), status=JobStatus(m["status"]), generation=m["generation"], token=m.get("token"),
            total=m.get("total"), params=dict(m.get("params") or {}), mode=m.get("mode"),
            segments=tuple((str(s[0]), int(s[1])) for s in m["segments"]),
            ranges=None if ranges is None else tuple((int(a), int(b)) for a, b in ranges),
            keys=tuple(m.get("keys") or ()), done=m["done"], state=dict(m["state"]),
            blobs={str(k): tuple(v) for k, v in m["blobs"].items() if isinstance(v, list)},
            stages=tuple(m.get("stages") or ()), stage=m.get("stage"), bytes=int(m.get("bytes") or 0),
            elapsed=float(m.get("elapsed") or 0.0), created=str(m.get("created") or ""),
            updated=str(m.get("updated") or ""), error=m.get("error") or None, control=m.get("control"),
            writer=m.get("writer"), garbage=tuple((str(k), int(g)) for k, g in m.get("garbage") or ()),
            failed=tuple((str(k), str(e)) for k, e in m.get("failed") or ()))


@dataclass(frozen=True)
class Loaded:
    """A manifest as read: its content, raw bytes, and the version to compare-and-swap against."""

    manifest: Manifest
    raw: bytes
    version: str  # version of jobs/<id>/manifest (even when the content came from .prev)
    fell_back: bool = False


def load(store: Store, job_id: str) -> Optional[Loaded]:
    """Read a job's manifest, falling back to the previous generation if it is damaged.

    Returns None for a job that does not exist. Raises ``CorruptRecord`` naming
    both keys when neither generation can be read.
    """
    key = manifest_key(job_id)
    try:
        record = store.get(key)
        if record is None:
            return None
        m = decode(key, store.url, record.data, record.version)
        return Loaded(Manifest.from_json(m), record.data, record.version)
    except CorruptRecord as damaged:
        if damaged.version is None:
            raise
        pkey = prev_key(job_id)
        try:
            prev = store.get(pkey)
        except CorruptRecord as also:
            raise CorruptRecord(key, store.url, f"{damaged.reason}; the previous generation "
                                                f"{pkey!r} is unreadable too ({also.reason})",
                                damaged.version) from damaged
        if prev is None:
            raise CorruptRecord(key, store.url, f"{damaged.reason}; and there is no previous "
                                                f"generation ({pkey!r}) to fall back to",
                                damaged.version) from damaged
        try:
            manifest = decode(pkey, store.url, prev.data, prev.version)
        except CorruptRecord as also:
            raise CorruptRecord(key, store.url, f"{damaged.reason}; the previous generation "
                                                f"{pkey!r} is unreadable too ({also.reason})",
                                damaged.version) from damaged
        warnings.warn(f"job {job_id!r}: {damaged}. Using the previous generation "
                      f"({manifest['generation']}) from {pkey!r}; items done since then "
                      f"will run again.", SessionkitWarning, stacklevel=4)
        return Loaded(Manifest.from_json(manifest), prev.data, damaged.version, fell_back=True)
