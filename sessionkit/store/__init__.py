"""Stores, chosen by URL scheme from a small registry (as papermill's iorw and fsspec do).

``open_store("/path")`` or ``open_store("file:///path")`` opens a local folder;
``open_store("memory://NAME")`` an in-process store. Each backend is one module
implementing the contract in ``base``; it is imported only when its scheme is used,
so optional dependencies (PyDrive2 for Drive) are needed only by their users.
"""

from __future__ import annotations

import importlib
import os
import re
from typing import Callable, Union

from ..registry import Registry
from .base import ABSENT, Expect, Record, Store

__all__ = ["ABSENT", "Expect", "Record", "Store", "open_store", "register_scheme", "known_schemes"]

Opener = Callable[[str], Store]

#: scheme -> "module:function" (imported on first use) or an opener callable; ``reset()``
#: (tests) leaves only the built-in schemes
SCHEMES: Registry[str, Union[str, Opener]] = Registry("store.schemes", initial={
    "file": "sessionkit.store.local:open_local",
    "memory": "sessionkit.store.memory:open_memory",
    "gdrive": "sessionkit.store.gdrive:open_gdrive",
    "gs": "sessionkit.store.gcs:open_gcs",
    "s3": "sessionkit.store.s3:open_s3",
    # a Drive folder link, as Drive's Share button gives it (nothing else is an https store)
    "https": "sessionkit.store.gdrive:open_drive_link",
})

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def register_scheme(scheme: str, opener: Union[str, Opener], *, clobber: bool = False) -> None:
    """Make ``open_store`` open ``scheme://...`` URLs with ``opener(url)``.

    ``opener`` is a callable or a ``"module:function"`` string imported on first use.
    A scheme already registered to another opener is an error unless ``clobber=True``
    (as fsspec's registry does): replacing ``file`` or ``gdrive`` by accident would send
    every store of that kind elsewhere. Registering the same opener again is a no-op.
    """
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):
        raise ValueError(f"invalid URL scheme {scheme!r}: use lowercase letters, digits, '+', '.', '-'")
    with SCHEMES.lock:
        current = SCHEMES.get(scheme)
        if current is not None and current != opener and not clobber:
            raise ValueError(f"the store scheme {scheme!r} is already registered (to {current!r}); pass "
                             f"clobber=True to replace it")
        SCHEMES.put(scheme, opener)


def known_schemes() -> list[str]:
    """The schemes ``open_store`` understands, sorted."""
    return sorted(SCHEMES.keys())


def open_store(url_or_path: "Union[str, os.PathLike[str], Store]", *, check: bool = True) -> Store:
    """Open the store at a URL or folder path (see the module docstring).

    A plain path (or ``file://``) opens a local folder store, created when missing.
    An unknown scheme raises ValueError listing the known ones. A ``Store`` is
    returned as it is, so functions can take either.

    A store opened from a URL checks that its service enforces what the backend relies
    on (``Store.check_service``; object stores: create-only and ``If-Match`` writes) and
    raises ``StoreError`` when it does not. ``check=False`` skips that, for
    ``sessionkit doctor``, which diagnoses such a service; never run a lease or a job
    on a store opened so.
    """
    if isinstance(url_or_path, Store):
        return url_or_path
    if isinstance(url_or_path, os.PathLike):
        url_or_path = os.fspath(url_or_path)
    if not isinstance(url_or_path, str):
        raise TypeError(f"open_store needs a URL or a path, not {type(url_or_path).__name__}")
    if not url_or_path.strip():
        raise ValueError("open_store needs a URL or a folder path, got an empty string")
    match = _SCHEME.match(url_or_path)
    scheme = match.group(1).lower() if match else "file"
    opener = SCHEMES.get(scheme)
    if opener is None:
        raise ValueError(
            f"unknown store scheme {scheme!r} in {url_or_path!r}; known schemes: "
            f"{', '.join(s + '://' for s in known_schemes())} (or a plain folder path)"
        )
    if isinstance(opener, str):
        module_name, _, attr = opener.partition(":")
        opener = getattr(importlib.import_module(module_name), attr)
    store = opener(url_or_path)
    if check:
        try:
            store.check_service()
        except BaseException:
            store.close()
            raise
    return store
