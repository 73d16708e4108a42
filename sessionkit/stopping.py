"""Orderly exits: a primary told to stop hands over at once instead of after a lease ttl.

While a ``Primary`` holds its lease, this module keeps two hooks installed:

- **SIGTERM** (``docker stop``, Kaggle ending a session, a kernel shutdown that did not
  finish in time): the primary's loop stops, a final checkpoint is written and the
  lease is released, then the signal is passed on (the previous handler runs, or the
  default action ends the process). If the loop is in the middle of sessionkit's own
  code, it stops at its next tick instead (``requested`` is what its ``stop_when``
  sees), within about 50 ms of item time.
- **interpreter exit** (the end of a script, a kernel shut down or restarted): the
  same, from ``atexit``.

A handler set after ours that calls ours in turn (Lightning's does) is the handler in
place: passing the signal on runs it once more, and it decides what follows (Lightning
leaves ``fit`` with a ``SystemExit``); ours, reached again through it, does nothing twice.

A waiting backup then finds the lease free and takes over at its next poll. SIGKILL
and a vanished VM give no warning: those still take ttl + 2 retry periods.
The previous SIGTERM handler is restored when the last primary is gone.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from dataclasses import dataclass, replace
from typing import Any, Optional, Protocol

from .registry import Registry

__all__ = ["Stoppable", "install", "uninstall", "requested"]

log = logging.getLogger("sessionkit.stopping")


class Stoppable(Protocol):
    def stop_now(self, reason: str) -> bool:
        """Stop, checkpoint and release now; False if its loop is busy (it stops at its next tick)."""


@dataclass(frozen=True)
class Hooks:
    """What this module installed in the process, and what it was told."""

    previous: Any = None  # the SIGTERM handler that was in place when ours was installed
    requested: Optional[str] = None  # why this process was told to stop
    passing_on: bool = False  # pass_on is running a handler: one that chains ours (Lightning's) must not loop
    exit_hook: bool = False  # _at_exit is registered with atexit


def _undo() -> None:
    """For tests (``reset()``): our SIGTERM handler and exit hook gone, as in a fresh process."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is _on_sigterm:
        previous = _hooks().previous
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    atexit.unregister(_at_exit)
    PRIMARIES.reset()


#: the primaries watched until ``uninstall`` (weak: a primary garbage collected is gone)
PRIMARIES: Registry[int, Stoppable] = Registry("stopping.primaries", weak=True)
#: the one ``Hooks`` record, under "SIGTERM"; its lock (re-entrant: the SIGTERM handler runs
#: on the main thread, maybe inside install()) guards every change here
HOOKS: Registry[str, Hooks] = Registry("stopping.hooks", on_reset=_undo)
_lock = HOOKS.lock


def _hooks() -> Hooks:
    return HOOKS.get("SIGTERM") or Hooks()


def _change(**fields: Any) -> None:
    with _lock:
        HOOKS.put("SIGTERM", replace(_hooks(), **fields))


def requested() -> Optional[str]:
    """Why this process was told to stop ("SIGTERM"), or None."""
    return _hooks().requested


def install(primary: Stoppable) -> None:
    """Watch ``primary`` until ``uninstall``. The signal handler can only be set from the
    main thread; elsewhere only the exit hook is installed (and that is said in the log)."""
    with _lock:
        PRIMARIES.add(primary)
        if not _hooks().exit_hook:
            atexit.register(_at_exit)
            _change(exit_hook=True)
        if threading.current_thread() is not threading.main_thread():
            log.info("not in the main thread: SIGTERM will not hand over early (the lease expires)")
            return
        current = signal.getsignal(signal.SIGTERM)
        if current is not _on_sigterm:  # judge by the handler in place: a program may have set its own
            _change(previous=current)
            signal.signal(signal.SIGTERM, _on_sigterm)


def uninstall(primary: Stoppable) -> None:
    """Stop watching ``primary``; restore the previous SIGTERM handler when none is left."""
    with _lock:
        PRIMARIES.discard(primary)
        if len(PRIMARIES) or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            previous = _hooks().previous
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        _change(previous=None)


def _stop_all(reason: str) -> bool:
    """Ask every primary to stop now; True when all did (none has a busy loop)."""
    done = True
    for primary in PRIMARIES.values():
        try:
            done = primary.stop_now(reason) and done
        except Exception as exc:  # one primary's failure must not keep the others holding
            log.error("could not stop %r on %s: %r", primary, reason, exc)
    return done


def _on_sigterm(signum: int, frame: Any) -> None:
    if _hooks().passing_on:
        # pass_on gave the signal to a handler set after ours that calls ours in turn (as
        # Lightning's does): ours has run already, and running it again would pass it on again
        log.info("SIGTERM passed on came back to sessionkit's handler: already handled")
        return
    _change(requested="SIGTERM")
    log.warning("SIGTERM: checkpointing and releasing the lease so a backup takes over now")
    if _stop_all("SIGTERM"):
        pass_on(signum, frame)
    # else: a loop is inside sessionkit's code; it sees requested() at its next tick, stops,
    # and its Primary calls pass_on() once it has released


def pass_on(signum: int = signal.SIGTERM, frame: Any = None) -> None:
    """Give the signal to whoever had it before us: the handler in place once ours is gone
    (``uninstall`` restored it), else the default action, which ends the process."""
    main = threading.current_thread() is threading.main_thread()
    with _lock:
        current = signal.getsignal(signal.SIGTERM) if main else None
        if current is _on_sigterm:  # still ours (another primary lives): the one before ours
            handler = _hooks().previous
            _change(previous=None)
            signal.signal(signal.SIGTERM, handler if handler is not None else signal.SIG_DFL)
        else:
            handler = current
    if handler is None or handler == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _change(requested=None)  # the process goes on (a handler of its own, or ignored): no longer stopping
    if callable(handler):
        _change(passing_on=True)
        try:
            handler(signum, frame)
        finally:
            _change(passing_on=False)


def _at_exit() -> None:
    _stop_all("exit")
