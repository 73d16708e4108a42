"""Which view ``display=True`` shows: a registry the layer above fills.

The jobs layer knows views only as objects with ``update(progress)`` and ``close()``; it
never names the package that draws them. The package's ``__init__`` registers a factory
that loads the views package on first use (a widget in notebooks, a text line
elsewhere); a program may register its own.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from ..registry import Registry
from .progress import Progress

__all__ = ["ViewFactory", "make_view", "register_view", "registered_view", "reset_views"]

ViewFactory = Callable[[Progress], Any]

# process-wide (sessionkit.registry): the one factory, under the key "display"
_FACTORY: "Registry[str, ViewFactory]" = Registry("jobs.view_factory")


def register_view(factory: Optional[ViewFactory]) -> Optional[ViewFactory]:
    """Make ``factory(progress)`` the view of ``display=True`` (None: no view); returns the
    one it replaces."""
    if factory is not None and not callable(factory):
        raise TypeError(f"a view factory is a function of a Progress, got {type(factory).__name__}")
    with _FACTORY.lock:
        previous = _FACTORY.get("display")
        if factory is None:
            _FACTORY.pop("display")
        else:
            _FACTORY.put("display", factory)
    return previous


def registered_view() -> Optional[ViewFactory]:
    return _FACTORY.get("display")


def reset_views() -> None:
    """For tests: no factory registered."""
    register_view(None)


def make_view(display: Any, progress: Callable[[], Progress]) -> Any:
    """The view a loop updates: ``display`` True (the registered one; none registered: no
    view), False or None (none), or a view object of the caller's."""
    if display is False or display is None:
        return None
    if display is True:
        factory = _FACTORY.get("display")
        return None if factory is None else factory(progress())
    if not hasattr(display, "update"):
        raise TypeError("display must be True, False or a view with update(progress)")
    return display
