"""Views: render snapshots (plain data) and nothing else.

A view has ``update(snapshot)`` and ``close()``. It never reads the store or
drives a loop; the job calls ``update`` from the loop's own thread (updates from
background threads do not reach the page in Colab). ipywidgets views work with
ipywidgets 7.7.1 (Colab) and 8.x; outside a notebook a text view is used.
"""

from __future__ import annotations

from typing import Any

from ..runtimes import ipython_shell

from .text import TextProgress

__all__ = ["Countdown", "HandoverStatus", "JobProgress", "SessionBanner", "StoreBanner", "TextProgress",
           "auto_view", "in_notebook"]


def in_notebook() -> bool:
    """True inside a Jupyter/Colab kernel whose front end can show widgets."""
    shell = ipython_shell()
    if shell is None:
        return False
    return "IPKernelApp" in getattr(shell, "config", {}) or type(shell).__module__.startswith("google.colab")


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


def __getattr__(name: str) -> Any:
    if name == "JobProgress":  # imported lazily: ipywidgets is only needed for widgets
        from .progress import JobProgress

        return JobProgress
    if name in ("Countdown", "SessionBanner", "HandoverStatus", "StoreBanner"):
        from . import session

        return getattr(session, name)
    raise AttributeError(f"module 'sessionkit.widgets' has no attribute {name!r}")
