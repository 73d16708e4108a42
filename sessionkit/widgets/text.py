"""A text progress view: one rewritten line on a terminal, sparse lines anywhere else."""

from __future__ import annotations

import sys
import time
from typing import Any, Optional, TextIO

from ..jobs.progress import Progress, format_bytes, format_seconds

PIPE_SECONDS = 60.0  # on a pipe or log file: a line at most this often ...
PIPE_STEP = 0.1  # ... or at each further tenth of the total


def describe(p: Progress) -> str:
    """``job 'x' running [stage 2/3 process] 1200/5000 24% 310 it/s ETA 00:12 1.2 MB``, and
    the forecast after it (``describe_lines`` gives the two apart, for the page)."""
    main, details = describe_lines(p)
    return main + (f" · {details}" if details else "")


def describe_lines(p: Progress) -> tuple[str, str]:
    """The progress line, and the forecast for a quieter second line ("" when none)."""
    if p.handed_to and p.status == "paused":  # its own words, never "paused"
        return (f"job {p.job!r} handed over to {p.handed_to} at "
                + (f"{p.done}/{p.total}" if p.total else f"{p.done}"), "")
    parts = [f"job {p.job!r} {p.status}"]
    if p.stage:
        parts.append(f"[stage {p.stage_index}/{p.stages} {p.stage}]")
    parts.append(f"{p.done}/{p.total}" if p.total is not None else f"{p.done}")
    if p.fraction is not None:
        parts.append(f"{p.fraction:.0%}")
    scaled = abs(p.clock_rate - 1.0) > 1e-9
    if p.rate:  # per real second, also on a scaled clock: what the user's watch sees
        parts.append(f"{p.rate * p.clock_rate:.3g} it/s")
    if p.eta is not None and p.status == "running":
        parts.append(f"ETA {format_seconds(p.eta / p.clock_rate)}")
    if p.bytes:
        parts.append(format_bytes(p.bytes))
    if p.in_flight:
        parts.append(f"· {p.in_flight} in flight")
    if p.failed:
        parts.append(f"· {p.failed} failed")
    if p.skipped:
        parts.append(f"({p.skipped} done before)")
    details = ""
    if p.status == "running" and p.runtime_left is not None:
        outlook = p.forecast
        if outlook.verdict.name not in ("UNKNOWN", "DONE"):
            # in real seconds as the rate and ETA above (issue 26: "ETA 00:47" beside "needs 9.4 h")
            details = outlook.text(per_real_second=p.clock_rate) + (" (real time)" if scaled else "")
    if p.error:
        parts.append(f"error: {p.error}")
    if scaled:  # one unit system on this line: the user's watch; the countdown runs on the scaled clock
        parts.append(f"(real time; clock x{p.clock_rate:g})")
    return " ".join(parts), details


class TextProgress:
    """Writes progress to ``stream`` (stderr): ``\\r``-rewritten on a terminal; on a
    pipe at most one line a minute or per tenth of the total, plus the first and last."""

    def __init__(self, progress: Optional[Progress] = None, stream: Optional[TextIO] = None,
                 clock: Any = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._clock = clock
        self._last_line_at: Optional[float] = None
        self._last_step = -1
        self._last_status: Optional[str] = None
        self._width = 0
        self.lines = 0
        self._latest = progress
        if progress is not None:
            self.update(progress)

    def update(self, progress: Progress) -> None:
        self._latest = progress
        text = describe(progress)
        if self.tty:
            pad = " " * max(0, self._width - len(text))
            self.stream.write("\r" + text + pad)
            self._width = len(text)
            self.stream.flush()
            return
        now = self._clock()
        step = int(progress.fraction / PIPE_STEP) if progress.fraction is not None else -1
        due = (self._last_line_at is None or progress.status != self._last_status
               or step > self._last_step or now - self._last_line_at >= PIPE_SECONDS)
        if due:
            self.stream.write(text + "\n")
            self.stream.flush()
            self.lines += 1
            self._last_line_at, self._last_step, self._last_status = now, step, progress.status

    def close(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
