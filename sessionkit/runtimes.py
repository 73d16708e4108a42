"""Where we run and how long it may last: runtime presets and environment detection.

Limits are the platforms' own words where they give any: Colab's FAQ says free
runtimes last "at most 12 hours" and that idle ones time out sooner (about 90
minutes is what users observe; it is not documented and varies); Colab Pro+
runs up to 24 hours while code executes; Kaggle sessions end after 12 hours.

A session's start is the runtime's start where it can be known: on Colab and
Kaggle each runtime is its own VM, so the VM's uptime (``/proc/uptime``) dates
it. Elsewhere (a laptop, a shared server) the machine outlives the runtime, so
the start is this process's (the kernel's) start.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Optional, Union

from .clock import SYSTEM_CLOCK, Clock

__all__ = ["Runtime", "PRESETS", "Environment", "get_runtime", "detect", "ipython_shell"]

HOUR = 3600.0


@dataclass(frozen=True)
class Runtime:
    """A kind of runtime: at most ``max_runtime`` seconds, idle cut-off after ``idle_timeout``
    seconds without activity (None: no such limit)."""

    max_runtime: Optional[float] = None
    idle_timeout: Optional[float] = None
    name: str = "custom"
    note: str = ""

    def __post_init__(self) -> None:
        for field in ("max_runtime", "idle_timeout"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f"Runtime {field} must be a number of seconds > 0 or None, got {value!r}")

    def as_dict(self) -> dict:
        return {"name": self.name, "max_runtime": self.max_runtime, "idle_timeout": self.idle_timeout}


PRESETS: dict[str, Runtime] = {
    "colab-free": Runtime(12 * HOUR, 90 * 60, "colab-free",
                          "at most 12 h (Colab FAQ); the ~90 min idle cut-off is observed by users, "
                          "not documented, and varies"),
    "colab-pro-plus": Runtime(24 * HOUR, None, "colab-pro-plus",
                              "up to 24 h while code executes (Colab FAQ); limits vary"),
    "kaggle": Runtime(12 * HOUR, None, "kaggle", "Kaggle sessions end after 12 h"),
    "local": Runtime(None, None, "local", "no limit"),
}


def get_runtime(runtime: Union[None, str, Runtime]) -> Runtime:
    """A preset by name, a Runtime as is, or (None) the preset for where we run."""
    if runtime is None:
        return PRESETS[detect().preset]
    if isinstance(runtime, Runtime):
        return runtime
    if isinstance(runtime, str) and runtime in PRESETS:
        return PRESETS[runtime]
    raise ValueError(f"unknown runtime {runtime!r}; presets: {', '.join(PRESETS)}, or "
                     f"Runtime(max_runtime=..., idle_timeout=...) in seconds")


@dataclass(frozen=True)
class Environment:
    kind: str  # "colab", "kaggle", "jupyter" or "python"
    preset: str  # the runtime preset that fits
    started: datetime  # when this runtime started (UTC)
    started_from: str  # "vm-uptime" or "process"


def ipython_shell() -> object:
    """The running IPython shell, or None (without importing IPython when it is not loaded)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    try:
        return ipython.get_ipython()
    except AttributeError:
        return None


def _vm_uptime() -> Optional[float]:
    try:
        with open("/proc/uptime") as fh:
            return float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _process_age() -> float:
    """Seconds since this process started (Linux: /proc; elsewhere: since sessionkit loaded)."""
    try:
        with open("/proc/self/stat") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        uptime = _vm_uptime()
        if uptime is not None:
            return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        pass  # not Linux: fall through to the time sessionkit was imported
    return time.monotonic() - _LOADED


_LOADED = time.monotonic()


def detect(clock: Optional[Clock] = None) -> Environment:
    """Where this code runs, which preset fits, and when the runtime started."""
    clock = clock or SYSTEM_CLOCK
    shell = ipython_shell()
    shell_module = type(shell).__module__ if shell is not None else ""
    if shell_module.startswith("google.colab"):
        kind, preset = "colab", "colab-free"
    elif os.environ.get("KAGGLE_KERNEL_RUN_TYPE"):
        kind, preset = "kaggle", "kaggle"  # Kaggle also sets COLAB_RELEASE_TAG: check it first
    elif os.environ.get("COLAB_RELEASE_TAG") and shell is not None:
        kind, preset = "colab", "colab-free"  # a hint only, when the shell class is not Colab's
    elif shell is not None and "IPKernelApp" in getattr(shell, "config", {}):
        kind, preset = "jupyter", "local"
    else:
        kind, preset = "python", "local"
    now = clock.now()
    uptime = _vm_uptime() if kind in ("colab", "kaggle") else None
    if uptime is not None:
        return Environment(kind, preset, now - timedelta(seconds=uptime), "vm-uptime")
    return Environment(kind, preset, now - timedelta(seconds=_process_age()), "process")


def utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone; pass an aware datetime")
    return value.astimezone(timezone.utc)
