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

__all__ = ["Countdown", "HandoverStatus", "JobProgress", "LiveViews", "PrimaryWatch", "SessionBanner", "StoreBanner",
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


def show(feed: Any, lease_name: str = "primary", job: Any = None, clock: Any = None, *,
         watch: bool = True, until: Any = None, where: str = "the store") -> Any:
    """Render the primary's countdown, banner and job progress from ``feed``: one
    ``status.LiveView`` snapshot or an iterable of them (``livefeed.live_feed``, which reads
    the store at its pace until the job ends); each redraws the views, and the last one says
    how it ended. Views never read the store themselves. Returns the last snapshot.

    Deprecated: ``show(store, lease_name, job, clock, watch=..., until=...)`` with a store or
    its URL; call ``sessionkit.notebook.show_again`` or pass ``live_feed(store, ...)``."""
    if hasattr(feed, "progress") and hasattr(feed, "session"):
        snapshots: Any = iter([feed])
        watch = False
    elif isinstance(feed, (str, bytes)) or hasattr(feed, "url") or feed is None:
        import warnings

        from ..livefeed import live_feed  # the old form, kept for old notebooks: the feed reads the store

        warnings.warn("widgets.show(store, ...) is deprecated: views render snapshots only; use "
                      "sessionkit.notebook.show_again(store, job) or widgets.show(livefeed.live_feed(store, ...))",
                      DeprecationWarning, stacklevel=2)
        where = getattr(feed, "url", None) or (feed if isinstance(feed, str) else where)
        snapshots = live_feed(feed, lease_name, job, clock, watch=watch, until=until)
    else:
        snapshots = iter(feed)
    views = LiveViews(next(snapshots), where=where)
    for live in snapshots:
        views.update(live)
    views.close()
    if watch and not views.empty:
        print(views.closing_line(job))
    return views.live


class LiveViews:
    """The countdown, banner and progress bar of one ``status.LiveView`` snapshot, shown at
    once and redrawn by ``update``; ``closing_line`` says how the job ended (or that it still
    runs) from the last snapshot alone."""

    def __init__(self, live: Any, where: str = "the store") -> None:
        from .session import Countdown, SessionBanner

        self.live = live
        self.empty = live.session is None and live.progress is None
        self.views: list[Any] = []
        self.bar: Any = None
        if self.empty:
            print(f"nothing to show: no primary has written to {where} yet")
            return
        if live.session is not None:
            self.views = [Countdown(live.session), SessionBanner(live.session)]
            for view in self.views:
                view.show()
        if live.progress is not None:
            self.bar = auto_view(live.progress)

    def update(self, live: Any) -> None:
        self.live = live
        if live.session is not None:
            for view in self.views:
                view.update(live.session)
        if live.progress is not None and self.bar is not None:
            self.bar.update(live.progress)

    def close(self) -> None:
        """Leave the last rendering on the page (the bar as plain HTML: see JobProgress.close)."""
        for view in self.views + ([self.bar] if self.bar is not None else []):
            view.close()

    def closing_line(self, job: Any = None) -> str:
        p = self.live.progress
        if p is None:
            return f"job {job}: still running: stopped watching"
        count = f" {p.done}/{p.total}" if p.total else f" {p.done} done"
        how = (f"ended: {p.status}" if p.status in FINISHED else
               "paused: no primary runs it now" if p.status == "paused" else
               "still running: stopped watching")
        return f"job {p.job}{count}: {how}"


FINISHED = ("completed", "failed", "cancelled")


def __getattr__(name: str) -> Any:
    if name == "WATCH_PACE_S":  # moved: how often to look at the store is not a view's business
        import warnings

        from ..livefeed import WATCH_PACE_S

        warnings.warn("sessionkit.widgets.WATCH_PACE_S moved to sessionkit.livefeed.WATCH_PACE_S",
                      DeprecationWarning, stacklevel=2)
        return WATCH_PACE_S
    if name == "JobProgress":  # imported lazily: ipywidgets is only needed for widgets
        from .progress import JobProgress

        return JobProgress
    if name in ("Countdown", "SessionBanner", "HandoverStatus", "StoreBanner", "PrimaryWatch"):
        from . import session

        return getattr(session, name)
    raise AttributeError(f"module 'sessionkit.widgets' has no attribute {name!r}")
