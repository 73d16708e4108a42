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
import weakref
from typing import Any, Optional, Protocol

__all__ = ["Stoppable", "install", "uninstall", "requested"]

log = logging.getLogger("sessionkit.stopping")


class Stoppable(Protocol):
    def stop_now(self, reason: str) -> bool:
        """Stop, checkpoint and release now; False if its loop is busy (it stops at its next tick)."""


_primaries: "weakref.WeakSet[Any]" = weakref.WeakSet()
_lock = threading.RLock()  # re-entrant: the SIGTERM handler runs on the main thread, maybe inside install()
_previous: Any = None  # the SIGTERM handler that was in place when ours was installed
_requested: list[Optional[str]] = [None]
_atexit_registered = False
_passing_on = [False]  # pass_on is running a handler: one that chains ours (Lightning's) must not loop


def requested() -> Optional[str]:
    """Why this process was told to stop ("SIGTERM"), or None."""
    return _requested[0]


def install(primary: Stoppable) -> None:
    """Watch ``primary`` until ``uninstall``. The signal handler can only be set from the
    main thread; elsewhere only the exit hook is installed (and that is said in the log)."""
    global _previous, _atexit_registered
    with _lock:
        _primaries.add(primary)
        if not _atexit_registered:
            atexit.register(_at_exit)
            _atexit_registered = True
        if threading.current_thread() is not threading.main_thread():
            log.info("not in the main thread: SIGTERM will not hand over early (the lease expires)")
            return
        current = signal.getsignal(signal.SIGTERM)
        if current is not _on_sigterm:  # judge by the handler in place: a program may have set its own
            _previous = current
            signal.signal(signal.SIGTERM, _on_sigterm)


def uninstall(primary: Stoppable) -> None:
    """Stop watching ``primary``; restore the previous SIGTERM handler when none is left."""
    global _previous
    with _lock:
        _primaries.discard(primary)
        if _primaries or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, _previous if _previous is not None else signal.SIG_DFL)
        _previous = None


def _stop_all(reason: str) -> bool:
    """Ask every primary to stop now; True when all did (none has a busy loop)."""
    done = True
    for primary in list(_primaries):
        try:
            done = primary.stop_now(reason) and done
        except Exception as exc:  # one primary's failure must not keep the others holding
            log.error("could not stop %r on %s: %r", primary, reason, exc)
    return done


def _on_sigterm(signum: int, frame: Any) -> None:
    if _passing_on[0]:
        # pass_on gave the signal to a handler set after ours that calls ours in turn (as
        # Lightning's does): ours has run already, and running it again would pass it on again
        log.info("SIGTERM passed on came back to sessionkit's handler: already handled")
        return
    _requested[0] = "SIGTERM"
    log.warning("SIGTERM: checkpointing and releasing the lease so a backup takes over now")
    if _stop_all("SIGTERM"):
        pass_on(signum, frame)
    # else: a loop is inside sessionkit's code; it sees requested() at its next tick, stops,
    # and its Primary calls pass_on() once it has released


def pass_on(signum: int = signal.SIGTERM, frame: Any = None) -> None:
    """Give the signal to whoever had it before us: the handler in place once ours is gone
    (``uninstall`` restored it), else the default action, which ends the process."""
    global _previous
    main = threading.current_thread() is threading.main_thread()
    with _lock:
        current = signal.getsignal(signal.SIGTERM) if main else None
        if current is _on_sigterm:  # still ours (another primary lives): the one before ours
            handler, _previous = _previous, None
            signal.signal(signal.SIGTERM, handler if handler is not None else signal.SIG_DFL)
        else:
            handler = current
    if handler is None or handler == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _requested[0] = None  # the process goes on (a handler of its own, or ignored): no longer stopping
    if callable(handler):
        _passing_on[0] = True
        try:
            handler(signum, frame)
        finally:
            _passing_on[0] = False


def _at_exit() -> None:
    _stop_all("exit")
