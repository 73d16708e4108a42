"""Resumable jobs: ``Job.track`` with checkpoints, statuses, stages, state and blobs.

``sessionkit.jobs.list(store)``, ``clear(store, ...)`` and ``request(store, job_id,
action)`` work on jobs without running them.
"""

from __future__ import annotations

from .control import ACTIONS, request
from .blobs import BlobError
from .job import Job, JobCancelled
from .listing import JobInfo, clear, list_jobs
from .loop import DuplicateKey
from .manifest import ACTIVE, FINISHED, STATUSES, InvalidTransition
from .progress import Progress

list = list_jobs  # noqa: A001 - the documented name is sessionkit.jobs.list

__all__ = ["ACTIONS", "ACTIVE", "FINISHED", "STATUSES", "BlobError", "DuplicateKey", "InvalidTransition", "Job",
           "JobCancelled", "JobInfo", "Progress", "clear", "list", "list_jobs", "request"]
