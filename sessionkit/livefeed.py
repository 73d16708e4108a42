"""A live feed of the primary's snapshots, read from the store at the store's pace.

Views render snapshots and never read the store (issue 28, item 7); this is the one place
that looks at the store again and again for views that re-attach (``show_again``, a new
cell, another kernel): it yields ``status.LiveView`` snapshots until the job ends, and
``widgets.show`` renders whatever it is given.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

from .clock import SYSTEM_CLOCK, Clock, clock_rate
from .jobs.manifest import FINISHED
from .status import LiveView, live_view
from .store import Store, open_store

__all__ = ["UNATTENDED_PATIENCE_S", "WATCH_PACE_S", "live_feed", "unattended", "watch_pace"]

#: real seconds between looks at the store while a view watches (a remote store's requests
#: cost quota and take ~0.1-1 s each; a local folder is cheap)
WATCH_PACE_S = {False: 2.0, True: 10.0}


def watch_pace(store: Store) -> float:
    """Real seconds between two looks at ``store``: 2 on a local folder, 10 on a remote store."""
    return WATCH_PACE_S[bool(getattr(store, "remote", False))]


#: real seconds an unfinished job with no primary running it is watched for before the feed ends:
#: a planned handover leaves it so until the backup takes it on (a poll or two), a primary that
#: died until its lease expires (the notebooks' LEASE_TTL, 60 s by default)
UNATTENDED_PATIENCE_S = 120.0


def unattended(live: LiveView) -> bool:
    """The job has not finished and no primary runs it now (it handed over, stopped or died)."""
    p = live.progress
    return p is not None and p.status not in FINISHED and (
        live.session is None or not live.session.active)


def live_feed(store: Any, lease_name: str = "primary", job: Optional[str] = None,
              clock: Optional[Clock] = None, *, watch: bool = True,
              until: Optional[float] = None) -> Iterator[LiveView]:
    """The primary's snapshots now and then every ``watch_pace`` real seconds (in the clock's
    seconds where it is scaled) until the job finishes, or has had no primary running it for
    UNATTENDED_PATIENCE_S real seconds (right after a handover nobody runs it until the
    backup takes it on: the feed keeps watching, issue 26); ``until``: at most that many seconds of
    ``clock``; without ``watch`` only the snapshot now. Nothing written to the store yet: one
    empty snapshot, and the feed ends."""
    store = open_store(store)
    clock = clock or SYSTEM_CLOCK
    live = live_view(store, lease_name, job, clock)
    yield live
    if not watch or (live.session is None and live.progress is None):
        return
    pace = watch_pace(store) * clock_rate(clock)  # in the clock's seconds
    patience = UNATTENDED_PATIENCE_S * clock_rate(clock)
    started = clock.monotonic()
    alone_since = None  # since when no primary has been seen running the job
    while not (live.progress is not None and live.progress.status in FINISHED):
        now = clock.monotonic()
        if until is not None and now - started >= until:
            return
        alone_since = (alone_since if alone_since is not None else now) if unattended(live) else None
        if alone_since is not None and now - alone_since >= patience:
            return  # nobody took it on: the closing line says where it stands
        clock.sleep(pace)
        live = live_view(store, lease_name, job, clock)
        yield live
