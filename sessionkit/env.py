"""Where this code runs: Colab, Kaggle, a Jupyter kernel or plain Python, and since when.

The one place that looks at the interpreter and the machine: which IPython shell is
loaded, Colab's and Kaggle's environment variables, the VM's uptime. A session's
start is the runtime's start where it can be known: on Colab and Kaggle each
runtime is its own VM, so the VM's uptime (``/proc/uptime``) dates it. Elsewhere
(a laptop, a shared server) the machine outlives the runtime, so the start is this
process's (the kernel's) start.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from .clock import SYSTEM_CLOCK, Clock

__all__ = ["Environment", "detect", "headless", "ipython_shell", "in_colab", "in_kaggle", "in_notebook"]


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
    if _colab_shell(shell):
        kind, preset = "colab", "colab-free"
    elif in_kaggle():
        kind, preset = "kaggle", "kaggle"  # Kaggle also sets COLAB_RELEASE_TAG: check it first
    elif os.environ.get("COLAB_RELEASE_TAG") and shell is not None:
        kind, preset = "colab", "colab-free"  # a hint only, when the shell class is not Colab's
    elif _kernel_shell(shell):
        kind, preset = "jupyter", "local"
    else:
        kind, preset = "python", "local"
    now = clock.now()
    uptime = _vm_uptime() if kind in ("colab", "kaggle") else None
    if uptime is not None:
        return Environment(kind, preset, now - timedelta(seconds=uptime), "vm-uptime")
    return Environment(kind, preset, now - timedelta(seconds=_process_age()), "process")




def _colab_shell(shell: object) -> bool:
    return shell is not None and type(shell).__module__.startswith("google.colab")


def _kernel_shell(shell: object) -> bool:
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def in_kaggle() -> bool:
    """True inside a Kaggle notebook session."""
    return bool(os.environ.get("KAGGLE_KERNEL_RUN_TYPE"))


def in_colab() -> bool:
    """True inside a Colab runtime (not Kaggle, which sets some of the same variables)."""
    if in_kaggle():
        return False
    return "google.colab" in sys.modules or bool(os.environ.get("COLAB_RELEASE_TAG"))


def in_notebook() -> bool:
    """True inside a Jupyter or Colab kernel whose front end can show widgets."""
    shell = ipython_shell()
    return _kernel_shell(shell) or _colab_shell(shell)


def headless() -> bool:
    """True where no one watches the page, so views must be log lines: a Kaggle "Save &
    Run All" (``KAGGLE_KERNEL_RUN_TYPE`` is "Batch" there and "Interactive" in the editor;
    community-observed, not documented by Kaggle), or ``SESSIONKIT_HEADLESS=1`` (papermill,
    a scheduler); ``SESSIONKIT_HEADLESS=0`` turns it off."""
    flag = os.environ.get("SESSIONKIT_HEADLESS", "").strip().lower()
    if flag in ("1", "true", "yes"):
        return True
    if flag in ("0", "false", "no"):
        return False
    return os.environ.get("KAGGLE_KERNEL_RUN_TYPE") == "Batch"

