"""Views: render snapshots (plain data) and nothing else.

A view has ``update(snapshot)`` and ``close()``. It never reads the store or
drives a loop; the job calls ``update`` from the loop's own thread (updates from
background threads do not reach the page in Colab). ipywidgets views work with
ipywidgets 7.7.1 (Colab) and 8.x; outside a notebook a text view is used.
"""

from __future__ import annotations

from typing import Any

from ..env import in_notebook

from .text import TextProgress

__all__ = ["Countdown", "HandoverStatus", "JobProgress", "PrimaryWatch", "SessionBanner", "StoreBanner",
           "TextProgress",
           "auto_view", "in_notebook", "show"]


def auto_view(progress: Any) -> Any:
    """A widget in a notebook with ipywidgets, else a text view on stderr."""
    if in_notebook():
        try:
            from .progress import JobProgress
        except ImportError:
            return TextProgress(progress)
        view = JobProgress(progress)
        view.show()
        return view
    return TextProgress(progress)


#: real seconds between looks at the store while ``show`` watches (a remote store's requests
#: cost quota and take ~0.1-1 s each; a local folder is cheap)
WATCH_PACE_S = {False: 2.0, True: 10.0}
FINISHED = ("completed", "failed", "cancelled")


def show(store: Any, lease_name: str = "primary", job: Any = None, clock: Any = None, *,
         watch: bool = True, until: Any = None) -> Any:
    """Show the primary's countdown, banner and job progress again, read from the store: in a
    new cell, a reloaded tab, or on another runtime (the backup's). With ``watch`` (default)
    it keeps looking (every WATCH_PACE_S real seconds: 2 on a local folder, 10 on a remote
    store) and redraws until the job finishes, then says how it ended; ``until``: at most that
    many seconds of ``clock``. The same kernel cannot show it while the job's cell runs (the
    kernel is busy): run it in another notebook. Returns the last snapshots (``status.LiveView``)."""
    from ..clock import SYSTEM_CLOCK, clock_rate
    from ..status import live_view
    from ..store import open_store
    from .session import Countdown, SessionBanner

    store = open_store(store)
    clock = clock or SYSTEM_CLOCK
    live = live_view(store, lease_name, job, clock)
    if live.session is None and live.progress is None:
        print(f"nothing to show: no primary has written to {store.url} yet")
        return live
    views: list[Any] = []
    if live.session is not None:
        views += [Countdown(live.session), SessionBanner(live.session)]
        for view in views:
            view.show()
    bar = auto_view(live.progress) if live.progress is not None else None
    pace = WATCH_PACE_S[bool(getattr(store, "remote", False))] * clock_rate(clock)  # in the clock's seconds
    started = clock.monotonic()
    while watch and not (live.progress is not None and live.progress.status in FINISHED):
        if until is not None and clock.monotonic() - started >= until:
            break
        clock.sleep(pace)
        live = live_view(store, lease_name, job, clock)
        if live.session is not None:
            for view in views:
                view.update(live.session)
        if live.progress is not None and bar is not None:
            bar.update(live.progress)
        if live.progress is not None and live.progress.status == "paused" and (
                live.session is None or not live.session.active):
            break  # handed over (or stopped) and no primary runs it now: nothing moves
    if watch:
        p = live.progress
        count = "" if p is None else (f" {p.done}/{p.total}" if p.total else f" {p.done} done")
        how = (f"ended: {p.status}" if p is not None and p.status in FINISHED else
               "paused: no primary runs it now" if p is not None and p.status == "paused" else
               "still running: stopped watching")
        print(f"job {p.job if p else job}{count}: {how}" if p else f"job {job}: {how}")
    return live


def __getattr__(name: str) -> Any:
    if name == "JobProgress":  # imported lazily: ipywidgets is only needed for widgets
        from .progress import JobProgress

        return JobProgress
    if name in ("Countdown", "SessionBanner", "HandoverStatus", "StoreBanner", "PrimaryWatch"):
        from . import session

        return getattr(session, name)
    raise AttributeError(f"module 'sessionkit.widgets' has no attribute {name!r}")
