"""Waiting for a condition in tests that run real threads: poll it, never sleep-and-hope."""

from __future__ import annotations

import time
from typing import Callable

WAIT_S = 30.0  # how long a test waits for a condition before it fails (never reached when it holds)


def wait_until(condition: Callable[[], object], what: str) -> None:
    """Return once ``condition()`` is true; fail naming ``what`` after ``WAIT_S`` seconds."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.005)
