"""What the ready-made notebooks call, so their cells stay thin (the logic lives here).

``start_primary`` and ``start_backup`` open a session with the notebook's parameters
and show its views; ``demo_items`` is the built-in workload a user replaces with
their own. ``TIME_SCALE`` above 1 runs a scaled clock (720: 12 hours in a minute).
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any, Callable, Iterable, Optional, Union

from .clock import Clock, ScaledClock, SystemClock
from .handover import Backup, Primary
from .runtimes import Runtime
from .errors import Conflict
from .store import ABSENT, Store, open_store
from .widgets import in_notebook

__all__ = ["clock_for", "start_primary", "start_backup", "demo_items", "demo_work"]


def clock_for(time_scale: float, store: Optional[Store] = None) -> Clock:
    """The real clock for 1.0, else one running ``time_scale`` times faster. With a store,
    every runtime using it at this scale shares one epoch (kept at ``clock/epoch-<scale>``),
    so their scaled clocks agree on the time and history lines up."""
    if not isinstance(time_scale, (int, float)) or not time_scale > 0:
        raise ValueError(f"TIME_SCALE must be a number > 0 (1.0 is real time), got {time_scale!r}")
    if time_scale == 1:
        return SystemClock()
    if store is None:
        return ScaledClock(time_scale)
    key = f"clock/epoch-{time_scale:g}"
    record = store.get(key)
    if record is None:
        try:
            store.put(key, json.dumps({"epoch": SystemClock().now().isoformat(), "scale": time_scale}).encode(),
                      expect=ABSENT)
        except Conflict:
            pass  # another runtime wrote it first: use theirs
        record = store.get(key)
    epoch = datetime.fromisoformat(json.loads(record.data)["epoch"])
    return ScaledClock(time_scale, epoch=epoch)


def _show(views: list[Any]) -> None:
    for view in views:
        view.show()


def start_primary(store: Union[Store, str], job: str, *, runtime: Union[str, Runtime] = "colab-free",
                  time_scale: float = 1.0, lease_ttl: float = 60.0, label: Optional[str] = None,
                  show: bool = True, **job_kwargs: Any) -> Primary:
    """Open the primary session, take the lease (waiting while another primary holds it),
    and show Countdown and SessionBanner (JobProgress appears when the job runs)."""
    from .widgets.session import Countdown, HandoverStatus, SessionBanner

    store = open_store(store)
    primary = Primary(store, job, runtime=runtime, clock=clock_for(time_scale, store), ttl=lease_ttl,
                      label=label, **job_kwargs)
    primary.views += [Countdown(primary.session), SessionBanner(primary.session), HandoverStatus(primary)]
    if show:
        _show(primary.views)
    return primary


def start_backup(store: Union[Store, str], *, job: Optional[str] = None,
                 runtime: Union[str, Runtime] = "colab-free",
                 time_scale: float = 1.0, lease_ttl: float = 60.0, priority: int = 1, approval: str = "auto",
                 label: Optional[str] = None, show: bool = True, timeout: Optional[float] = None
                 ) -> Optional[Primary]:
    """Watch the primary and take over when it hands over or dies; returns the new Primary
    (showing its views), or None if ``timeout`` passed or the job finished meanwhile."""
    from .widgets.session import Countdown, HandoverStatus, SessionBanner

    store = open_store(store)
    backup = Backup(store, label, priority=priority, approval=approval, runtime=runtime,
                    clock=clock_for(time_scale, store), ttl=lease_ttl)
    status = HandoverStatus(backup)
    if show:
        status.show()
    last = [None]

    def refresh(b: Backup) -> None:  # from this (the cell's) thread, only when it changes
        if b.status != last[0]:
            last[0] = b.status
            status.update(b.state)

    primary = backup.watch(timeout=timeout, on_step=refresh)
    if primary is None:
        if backup.status == "done":
            print("the primary finished the job: nothing to take over")
        backup.close()
        return None
    if job is not None and primary.job.id != job:
        primary.close()
        raise ValueError(f"this store's primary runs job {primary.job.id!r}, not JOB={job!r}: "
                         f"set JOB to the primary's job, or use another store")
    primary.views += [status, Countdown(primary.session), SessionBanner(primary.session)]
    if show:
        _show(primary.views[1:])
    primary.refresh_views(force=True)
    return primary


def demo_items(items: int) -> range:
    """The built-in workload's items: 0 .. ITEMS-1."""
    return range(int(items))


def demo_work(item_seconds: float) -> Callable[[Any], None]:
    """The built-in workload: each item takes ``item_seconds`` of real time."""
    def work(item: Any) -> None:
        time.sleep(item_seconds)
    return work


def run(primary: Primary, items: Iterable[Any], work: Callable[[Any], None], **track: Any) -> Primary:
    """``for item in primary.track(items): work(item)``, with a widget in notebooks."""
    track.setdefault("display", True if in_notebook() else False)
    for item in primary.track(items, **track):
        work(item)
    return primary
