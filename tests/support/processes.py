"""Starting the worker processes (``support.workers``) and reading what they say: a test
waits for a worker's ready line or for a condition, never for a while."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from support import WORKERS


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, WORKERS, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def expect_line(proc: subprocess.Popen, word: str) -> list[str]:
    line = proc.stdout.readline().split()
    if not line or line[0] != word:
        proc.kill()
        raise AssertionError(f"expected {word!r}, got {line}: {proc.stderr.read()}")
    return line


def read_log(path: Path) -> list[tuple[int, int, float, float]]:
    return [(int(i), int(t), float(a), float(b))
            for i, t, a, b in (line.split() for line in path.read_text().splitlines())]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0, *,
             proc: "subprocess.Popen | None" = None) -> None:
    """Return once ``condition()`` holds; fail naming ``what`` after ``timeout`` real seconds
    (a bound on a hung process, not a time the test measures) or when ``proc`` ends first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {proc.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.01)  # polling the condition, not waiting for it to happen by itself
