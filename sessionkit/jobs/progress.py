"""A job's progress as plain data: what views render and what ``job.progress`` returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

from ..forecast import Forecast, forecast


@dataclass(frozen=True)
class Progress:
    """A snapshot of one job. Views render these and never reach into the job or store."""

    job: str
    status: str
    done: int  # items done in all runs
    total: Optional[int]
    skipped: int  # items found done when this run started and not run again
    rate: Optional[float]  # items per second, smoothed
    eta: Optional[float]  # seconds to the end at the current rate
    bytes: int
    elapsed: float  # seconds spent running, over all runs
    stage: Optional[str]
    stage_index: Optional[int]  # 1-based position of the stage among those seen
    stages: int
    error: Optional[str] = None
    runtime_left: Optional[float] = None  # seconds the runtime running it has (None: no limit or unknown)
    handover_lead: float = 0.0  # seconds a handover needs: a final checkpoint and a takeover
    clock_rate: float = 1.0  # the job's clock seconds per real second (720 on a 720x scaled clock)
    in_flight: int = 0  # items a map has submitted and not yet handed back
    failed: int = 0  # items map(errors="record") gave up on
    handed_to: Optional[str] = None  # a paused job this runtime handed over: to whom ("backup (1a2b3c4d)")

    @property
    def forecast(self) -> Forecast:
        """Will it finish in this runtime (see sessionkit.forecast)."""
        return forecast(self.done, self.total, self.rate, self.runtime_left, self.handover_lead)

    @property
    def fraction(self) -> Optional[float]:
        if not self.total:
            return None
        return min(1.0, self.done / self.total)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RateMeter:
    """Items per second, smoothed by an exponential moving average (as tqdm does)."""

    def __init__(self, smoothing: float = 0.3) -> None:
        self.smoothing = smoothing
        self.rate: Optional[float] = None
        self._last_n: Optional[int] = None
        self._last_t: float = 0.0

    def update(self, n: int, t: float) -> Optional[float]:
        """Feed the count ``n`` at monotonic time ``t``; return the instantaneous rate."""
        if self._last_n is None:
            self._last_n, self._last_t = n, t
            return None
        dt = t - self._last_t
        if dt <= 0:
            return None
        current = (n - self._last_n) / dt
        self._last_n, self._last_t = n, t
        if self.rate is None:
            self.rate = current
        else:
            self.rate = self.smoothing * current + (1 - self.smoothing) * self.rate
        return current

    def restart(self, n: int, t: float) -> None:
        self._last_n, self._last_t = n, t


def format_seconds(seconds: Optional[float]) -> str:
    """``1:02:03`` or ``02:03``, as tqdm prints durations; ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def format_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"
