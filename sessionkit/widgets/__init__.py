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


def show(store: Any, lease_name: str = "primary", job: Any = None, clock: Any = None) -> Any:
    """Show the primary's countdown, banner and job progress again, read from the store: in a
    new cell, a reloaded tab, or on another runtime (the backup's). The countdown ticks on in
    the browser; the rest is as of the primary's last heartbeat and checkpoint (call it again
    to refresh). Returns the snapshots shown (a ``status.LiveView``)."""
    from ..status import live_view
    from ..store import open_store
    from .session import Countdown, SessionBanner

    store = open_store(store)
    live = live_view(store, lease_name, job, clock)
    if live.session is not None:
        Countdown(live.session).show()
        SessionBanner(live.session).show()
    if live.progress is not None:
        auto_view(live.progress)
    if live.session is None and live.progress is None:
        print(f"nothing to show: no primary has written to {store.url} yet")
    return live


def __getattr__(name: str) -> Any:
    if name == "JobProgress":  # imported lazily: ipywidgets is only needed for widgets
        from .progress import JobProgress

        return JobProgress
    if name in ("Countdown", "SessionBanner", "HandoverStatus", "StoreBanner", "PrimaryWatch"):
        from . import session

        return getattr(session, name)
    raise AttributeError(f"module 'sessionkit.widgets' has no attribute {name!r}")
