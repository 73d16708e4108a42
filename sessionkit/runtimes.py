"""How long a runtime may last: presets per platform (where we run is env.py).

Limits are the platforms' own words where they give any: Colab's FAQ says free
runtimes last "at most 12 hours" and that idle ones time out sooner (about 90
minutes is what users observe; it is not documented and varies); Colab Pro+
runs up to 24 hours while code executes; Kaggle sessions end after 12 hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from .env import Environment, detect, ipython_shell  # re-exported: their earlier home

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

