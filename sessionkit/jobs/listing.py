"""Finding jobs in a store, and removing finished ones."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Optional, Union

from ..checks import check_timedelta
from ..clock import SYSTEM_CLOCK, Clock
from ..errors import Conflict, CorruptRecord
from ..store import Store, open_store
from .manifest import ACTIVE, FINISHED, TRANSITIONS, load, manifest_key, prev_key

log = logging.getLogger("sessionkit.jobs")


@dataclass(frozen=True)
class JobInfo:
    """What a job's manifest says, without opening the job."""

    id: str
    status: str
    done: int
    total: Optional[int]
    stage: Optional[str]
    created: Optional[str]
    updated: Optional[str]
    token: Optional[int]
    error: Optional[str]


def job_ids(store: Store) -> list[str]:
    return sorted({k.split("/")[1] for k in store.list("jobs/")
                   if k.count("/") == 2 and k.endswith("/manifest")})


def list_jobs(store: Union[Store, str], damaged: Optional[list[CorruptRecord]] = None) -> list[JobInfo]:
    """Every readable job in the store, sorted by id; unreadable ones are logged, left out,
    and added to ``damaged`` when given."""
    store = open_store(store)
    out = []
    for job_id in job_ids(store):
        try:
            loaded = load(store, job_id)
        except CorruptRecord as exc:
            log.warning("leaving out job %r: %s", job_id, exc)
            if damaged is not None:
                damaged.append(exc)
            continue
        if loaded is None:
            continue
        m = loaded.manifest
        error = m.error
        out.append(JobInfo(job_id, m.status, m.done, m.total, m.stage, m.created or None, m.updated or None,
                           m.token, error.get("message") if isinstance(error, dict) else None))
    return out


def latest_id(store: Store, clock: Clock) -> Optional[str]:
    """The job to restore: active ones (running, paused) first, most recent first; then
    one completed in the last 5 minutes; then the most recent overall. None if no job."""
    infos = list_jobs(store)
    if not infos:
        return None
    by_recent = sorted(infos, key=lambda i: i.updated or datetime.min.isoformat(), reverse=True)
    active = [i for i in by_recent if i.status in ACTIVE]
    recent_cutoff = (clock.now() - timedelta(minutes=5)).isoformat()
    completed = [i for i in by_recent if i.status == "completed" and (i.updated or "") >= recent_cutoff]
    return (active or completed or by_recent)[0].id


def clear(store: Union[Store, str], older_than: timedelta = timedelta(hours=24),
          statuses: Iterable[str] = FINISHED, *, clock: Optional[Clock] = None) -> list[str]:
    """Remove jobs in ``statuses`` not updated for ``older_than``; return their ids.

    Crash-safe: the manifest goes last, by compare-and-swap on the version judged old, so a
    run killed part-way leaves a job the next run finds and finishes (not files no manifest
    leads to), and a job that moved on meanwhile keeps its manifest. Files under
    ``jobs/<id>/`` with neither a manifest nor a previous generation (what an interrupted
    removal by an older sessionkit left) cannot be opened by anything and are removed too.
    """
    check_timedelta("older_than", older_than, "how long a job must have been left alone")
    statuses = (statuses,) if isinstance(statuses, str) else tuple(statuses)
    unknown = [s for s in statuses if s not in TRANSITIONS]
    if unknown or not statuses:
        raise ValueError(f"statuses must name job statuses ({', '.join(TRANSITIONS)}), got {statuses!r}")
    store = open_store(store)
    cutoff = ((clock or SYSTEM_CLOCK).now() - older_than).isoformat()
    files: dict[str, list[str]] = {}
    for key in store.list("jobs/"):
        parts = key.split("/", 2)
        if len(parts) == 3:
            files.setdefault(parts[1], []).append(key)
    cleared = []
    for job_id, keys in sorted(files.items()):
        manifest = manifest_key(job_id)
        expect = None
        if manifest in keys:
            try:
                loaded = load(store, job_id)
            except CorruptRecord as exc:
                log.warning("leaving job %r in place: %s", job_id, exc)
                continue
            if loaded is None:
                continue
            m = loaded.manifest
            if m.status not in statuses or (m.updated or "") > cutoff:
                continue
            expect = loaded.version
        elif prev_key(job_id) in keys:
            continue  # its manifest was moved away: a person is looking at it
        for key in keys:
            if key != manifest:
                store.delete(key)
        if expect is not None:
            try:
                store.delete(manifest, expect=expect)
            except Conflict:
                log.warning("job %r was resumed while it was being removed; its done items and blobs "
                            "were removed, so they run again (or load_blob finds none)", job_id)
                continue
        cleared.append(job_id)
    return cleared
