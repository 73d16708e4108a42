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

__all__ = ["WATCH_PACE_S", "live_feed", "watch_pace"]

#: real seconds between looks at the store while a view watches (a remote store's requests
#: cost quota and take ~0.1-1 s each; a local folder is cheap)
WATCH_PACE_S = {False: 2.0, True: 10.0}


def watch_pace(store: Store) -> float:
    """Real seconds between two looks at ``store``: 2 on a local folder, 10 on a remote store."""
    return WATCH_PACE_S[bool(getattr(store, "remote", False))]


def settled(live: LiveView) -> bool:
    """Nothing will move any more: the job finished, or it is paused (handed over or stopped)
    and no primary runs it now."""
    p = live.progress
    if p is None:
        return False
    if p.status in FINISHED:
        return True
    return p.status == "paused" and (live.session is None or live.session.get("status") != "active")


def live_feed(store: Any, lease_name: str = "primary", job: Optional[str] = None,
              clock: Optional[Clock] = None, *, watch: bool = True,
              until: Optional[float] = None) -> Iterator[LiveView]:
    """The primary's snapshots now and then every ``watch_pace`` real seconds (in the clock's
    seconds where it is scaled) until the job settles; ``until``: at most that many seconds of
    ``clock``; without ``watch`` only the snapshot now. Nothing written to the store yet: one
    empty snapshot, and the feed ends."""
    store = open_store(store)
    clock = clock or SYSTEM_CLOCK
    live = live_view(store, lease_name, job, clock)
    yield live
    if not watch or (live.session is None and live.progress is None):
        return
    pace = watch_pace(store) * clock_rate(clock)  # in the clock's seconds
    started = clock.monotonic()
    while not settled(live):
        if until is not None and clock.monotonic() - started >= until:
            return
        clock.sleep(pace)
        live = live_view(store, lease_name, job, clock)
        yield live
