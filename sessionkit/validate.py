"""The checks every parameter a user passes goes through: one wording, naming the
parameter, its unit and the range, so a bad value is refused at construction.

Periods that set how often a store is asked (a lease's retry period, a session's
heartbeat, a backup's or primary's poll, a job's control poll and checkpoint interval)
have a floor in *real* seconds, whatever the clock's scale: ``MIN_PERIOD`` on a local or
memory store, ``MIN_REMOTE_PERIOD`` on a remote one (Drive, GCS, S3), where every look
is a request against a quota. A value below it is refused; a default below it (a
scaled clock's 30 s heartbeat is 42 ms of real time at x720) is raised to it.
"""

from __future__ import annotations

import math
import os
from datetime import timedelta
from typing import Any, Optional

__all__ = ["MIN_PERIOD", "MIN_REMOTE_PERIOD", "check_count", "check_period", "check_seconds",
           "check_timedelta", "period_floor", "at_least_floor", "seconds_setting"]

MIN_PERIOD = 0.05  # real seconds: at most 20 requests a second from one poller on a local store
MIN_REMOTE_PERIOD = 0.5  # ... and at most 2 a second on a remote one


def check_seconds(name: str, value: object, what: str = "", *, zero_ok: bool = False) -> float:
    """``value`` as float seconds if it is a finite number > 0 (>= 0 with ``zero_ok``),
    else ValueError naming ``name`` (and ``what`` it is for)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) \
            or math.isinf(value) or not (value >= 0 if zero_ok else value > 0):
        purpose = f" ({what})" if what else ""
        bound = ">= 0" if zero_ok else "> 0"
        raise ValueError(f"{name} must be a number of seconds {bound}{purpose}, got {value!r}")
    return float(value)


def period_floor(clock: Any, remote: bool) -> Optional[float]:
    """The shortest period, in this clock's seconds, a poller may use; None on a clock
    that does not move by itself (a FakeClock: its time is the test's)."""
    real_per_clock_second = clock.real_seconds(1.0)
    if real_per_clock_second is None or real_per_clock_second <= 0:
        return None
    return (MIN_REMOTE_PERIOD if remote else MIN_PERIOD) / real_per_clock_second


def check_period(name: str, value: object, *, clock: Any, remote: bool, what: str) -> float:
    """A period that sets a request rate: seconds > 0 and at least the floor."""
    seconds = check_seconds(name, value, what)
    floor = period_floor(clock, remote)
    if floor is not None and seconds < floor * (1 - 1e-9):
        real = MIN_REMOTE_PERIOD if remote else MIN_PERIOD
        where = "a remote store" if remote else "a local store"
        scaled = "" if abs(floor - real) < 1e-12 else f" ({floor:g} s on this scaled clock)"
        raise ValueError(f"{name} must be at least {real:g} real seconds{scaled} on {where} ({what}: each "
                         f"one is a store request), got {value!r}; a shorter one would hammer the store")
    return seconds


def at_least_floor(seconds: float, *, clock: Any, remote: bool) -> float:
    """A default period raised to the floor where it would be below it."""
    floor = period_floor(clock, remote)
    return seconds if floor is None else max(seconds, floor)


def check_count(name: str, value: object, *, minimum: int = 1, what: str = "") -> int:
    """An int >= ``minimum`` (bools refused), else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        purpose = f" ({what})" if what else ""
        raise ValueError(f"{name} must be an int >= {minimum}{purpose}, got {value!r}")
    return value


def check_timedelta(name: str, value: object, what: str = "") -> timedelta:
    """A ``datetime.timedelta`` >= 0; a bare number is refused (hours? seconds?)."""
    if not isinstance(value, timedelta) or value < timedelta(0):
        purpose = f" ({what})" if what else ""
        hint = (f"; a bare number is ambiguous: pass timedelta(seconds={value!r}) or timedelta(hours={value!r})"
                if isinstance(value, (int, float)) and not isinstance(value, bool) else "")
        raise (TypeError if not isinstance(value, timedelta) else ValueError)(
            f"{name} must be a datetime.timedelta >= 0{purpose}, e.g. timedelta(hours=24), got {value!r}{hint}")
    return value


def seconds_setting(name: str, default: float, what: str = "") -> float:
    """A duration from the environment variable ``name`` (seconds > 0), else ``default``;
    ValueError naming the variable when it holds anything else."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value: object = float(raw)
    except ValueError:
        value = raw
    return check_seconds(name, value, what)
