"""The exact allowlists of the source checks (tests/test_layers.py, tests/test_hygiene.py):
a check fails on an offender not listed, and on a listed one that is gone, so a list
holds exactly today's offenders and is emptied as they are fixed."""

from __future__ import annotations

from typing import Callable, Iterable, Optional


def check(found: Iterable[str], known: set[str], list_name: str, fix: str,
          shown: Optional[Callable[[str], list[str]]] = None) -> None:
    """``found`` against ``known`` (named ``list_name`` in the test module); ``fix`` says what
    to do about a new offender; ``shown(offender)`` gives what to print for it (a line number)."""
    found = set(found)
    new = sorted(found - known)
    if new:
        details = sorted(x for offender in new for x in (shown(offender) if shown else [offender]))
        raise AssertionError(f"{fix}: {details}")
    gone = sorted(known - found)
    assert not gone, f"fixed, so delete them from {list_name}: {gone}"
