"""One retry pause for every retry in sessionkit: truncated exponential backoff with jitter.

Store requests that failed on the network, reads that raced a write, and webhook
deliveries all wait :meth:`Backoff.pause` before retrying: a random time between half
and all of ``min(cap, base * 2**(retry - 1))``. The jitter keeps runtimes that failed
together from retrying together (Google's and AWS's advice for their APIs); the cap
bounds a single wait.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, Iterator


@dataclass(frozen=True)
class Backoff:
    """Pauses that double from ``base`` seconds up to ``cap``, each with jitter."""

    base: float
    cap: float

    def __post_init__(self) -> None:
        if not (0 <= self.base <= self.cap) or self.cap != self.cap or self.cap == float("inf"):
            raise ValueError(f"backoff needs 0 <= base <= cap, both finite (got base={self.base!r}, "
                             f"cap={self.cap!r})")

    def pause(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before the ``retry``-th retry (1 for the first)."""
        if retry < 1:
            raise ValueError(f"retry counts from 1 (got {retry})")
        full = min(self.cap, self.base * 2 ** min(retry - 1, 60))
        return full / 2 + rand() * full / 2

    def sleep(self, retry: int) -> None:
        """Wait before the ``retry``-th retry (real time: the network does not follow a fake clock)."""
        time.sleep(self.pause(retry))

    def attempts(self, at_least: int, for_seconds: float) -> Iterator[int]:
        """Attempt numbers (0, 1, ...) with a pause before each retry: at least ``at_least``
        attempts, and more while ``for_seconds`` have not passed since the first."""
        deadline = time.monotonic() + for_seconds
        attempt = 0
        while True:
            yield attempt
            attempt += 1
            if attempt >= at_least and time.monotonic() >= deadline:
                return
            self.sleep(attempt)
