"""How an interrupted loop ended, learned from the process around it.

A generator cannot tell a ``break`` from an exception in the loop body: both close
it. An interrupted job is ``JobStatus.LEFT_EARLY`` (stored as "running") until one of
these learns the outcome:
``with job:`` (exact), IPython's ``post_run_cell`` (the cell's error),
``sys.excepthook`` (an uncaught error in a script), or interpreter exit (no error
seen: paused). ``Job`` installs these hooks explicitly, the first time a job is
made (``install_exit_hook``) or interrupted (``watch``); nothing is installed at import.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
from typing import Any, Generator, Optional, Protocol

from ..errors import SessionkitError
from ..env import ipython_shell
from ..events import EventLog
from ..registry import Registry

log = logging.getLogger("sessionkit.jobs")


class Settled(Protocol):
    """What the hooks need of a job (``Job`` is one)."""

    id: str
    events: EventLog

    @property
    def left_early(self) -> bool:
        """Its loop was left early and how it ended is not recorded yet."""

    @property
    def active_loop(self) -> "Optional[Generator[Any, None, None]]":
        """The generator of its run in progress, if one is suspended or running."""

    def record_outcome(self, exc: Optional[BaseException]) -> None: ...


class Outcomes:
    """The process-wide hooks, and the jobs they settle."""

    def __init__(self) -> None:
        # process-wide (sessionkit.registry); reset() also removes the hooks that serve each
        self.interrupted: "Registry[int, Settled]" = Registry("jobs.interrupted", weak=True, on_reset=self._unhook)
        self.live: "Registry[int, Settled]" = Registry("jobs.live", weak=True, on_reset=self._unhook_exit)
        self._lock = threading.Lock()
        self._hooks = False
        self._exit_hook = False
        self._previous_hook: Any = None

    def install_exit_hook(self, job: Settled) -> None:
        """Checkpoint ``job`` at interpreter exit if it is still tracking."""
        with self._lock:
            self.live.add(job)
            if self._exit_hook:
                return
            self._exit_hook = True
        atexit.register(self.at_exit)

    def watch(self, job: Settled) -> None:
        """``job``'s loop was left early: settle it when the cell or script ends."""
        with self._lock:
            self.interrupted.add(job)
            if self._hooks:
                return
            self._hooks = True
        ip = ipython_shell()
        if ip is not None:
            ip.events.register("post_run_cell", self._post_run_cell)
        self._previous_hook = sys.excepthook
        sys.excepthook = self._excepthook

    def _unhook(self) -> None:
        with self._lock:
            if not self._hooks:
                return
            self._hooks = False
        ip = ipython_shell()
        if ip is not None and self._post_run_cell in ip.events.callbacks.get("post_run_cell", ()):
            ip.events.unregister("post_run_cell", self._post_run_cell)
        if sys.excepthook == self._excepthook:
            sys.excepthook = self._previous_hook

    def _unhook_exit(self) -> None:
        with self._lock:
            self._exit_hook = False
        atexit.unregister(self.at_exit)

    def settle(self, exc: Optional[BaseException]) -> None:
        for job in list(self.interrupted):
            self.interrupted.discard(job)
            if job.left_early:
                try:
                    job.record_outcome(exc)
                except SessionkitError as err:
                    log.warning("could not record how job %r ended: %s", job.id, err)

    def _post_run_cell(self, result: Any = None) -> None:
        self.settle(getattr(result, "error_in_exec", None))

    def _excepthook(self, exc_type: Any, exc: BaseException, tb: Any) -> None:
        self.settle(exc)
        self._previous_hook(exc_type, exc, tb)

    def at_exit(self) -> None:
        """Checkpoint jobs still tracking when the interpreter exits; settle interrupted ones."""
        for job in list(self.live):
            try:
                gen = job.active_loop
                if gen is not None:
                    gen.close()  # a loop still suspended: finish it now, while modules still work
                if job.left_early:
                    job.record_outcome(None)
                if job.events.pending:
                    job.events.flush()  # e.g. job.created of a job never tracked
            except (SessionkitError, OSError) as exc:
                log.warning("could not checkpoint job %r at exit: %s", job.id, exc)


OUTCOMES = Outcomes()
