"""Resumable jobs: ``Job.track`` with checkpoints, statuses, stages, state and blobs.

``sessionkit.jobs.list_jobs(store)``, ``clear(store, ...)`` and ``request(store, job_id,
action)`` work on jobs without running them. (``jobs.list`` is the same as ``list_jobs``;
it is left out of ``__all__`` so ``from sessionkit.jobs import *`` keeps the builtin.)
"""

from __future__ import annotations

from ..errors import BlobError, DuplicateKey, InvalidTransition, JobCancelled
from .control import ACTIONS, request
from .job import Job
from .listing import JobInfo, clear, list_jobs
from .manifest import ACTIVE, FINISHED, STATUSES
from .progress import Progress
from .status import JobStatus

list = list_jobs  # noqa: A001 - an earlier name, kept; not in __all__

__all__ = ["ACTIONS", "ACTIVE", "FINISHED", "STATUSES", "BlobError", "DuplicateKey", "InvalidTransition", "Job",
           "JobCancelled", "JobInfo", "JobStatus", "Progress", "clear", "list_jobs", "request"]
