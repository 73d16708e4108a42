"""Control of a job from elsewhere: another process, notebook or the command line.

``request(store, job_id, "pause")`` writes ``jobs/<id>/control``; a running
``Job.track`` reads it about once a second and stops cleanly at an item boundary
with a checkpoint. The record holds the latest request only: a later request
replaces an earlier one.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Optional, Union

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import CorruptRecord, NotFound
from ..store import Store, open_store
from .manifest import check_job_id, control_key, load

ACTIONS = ("cancel", "pause", "resume")
log = logging.getLogger("sessionkit.jobs")


@dataclass(frozen=True)
class Control:
    """One request. ``job`` is the ``created`` stamp of the job it was made for: a job
    created anew under the same id (after ``gc`` removed the old one) ignores it."""

    action: str
    id: str
    at: str
    job: str = ""

    def applies_to(self, created: str) -> bool:
        """Whether this request was made for the job created at ``created``. Requests
        written before requests named their job count if made after it was created."""
        if self.job:
            return self.job == created
        return not created or self.at >= created


def request(store: Union[Store, str], job_id: str, action: str, *, clock: Optional[Clock] = None) -> Control:
    """Ask the job to ``cancel``, ``pause`` or ``resume``; return the request written."""
    store = open_store(store)
    check_job_id(job_id)
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r} for job {job_id!r}; use one of {', '.join(ACTIONS)}")
    loaded = load(store, job_id)
    if loaded is None:
        raise NotFound(f"no job {job_id!r} in {store.url}; see sessionkit.jobs.list_jobs(store)")
    control = Control(action, uuid.uuid4().hex, (clock or SYSTEM_CLOCK).now().isoformat(),
                      loaded.manifest.created)
    store.put(control_key(job_id), json.dumps(control.__dict__).encode())
    return control


def read(store: Store, job_id: str, created: Optional[str] = None) -> Optional[Control]:
    """The latest request for the job, or None; a damaged record reads as no request, and
    so does one made for an earlier job of this id (``created``: this job's stamp)."""
    key = control_key(job_id)
    try:
        record = store.get(key)
    except CorruptRecord as exc:
        log.warning("ignoring a damaged control request: %s", exc)
        return None
    if record is None:
        return None
    try:
        body = json.loads(record.data)
        control = Control(str(body["action"]), str(body["id"]), str(body.get("at", "")), str(body.get("job") or ""))
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring a control request at %r that is not one (%s)", key, exc)
        return None
    if control.action not in ACTIONS:
        return None
    if created is not None and not control.applies_to(created):
        log.info("ignoring a %s request at %r made for an earlier job of this id", control.action, key)
        return None
    return control
