"""Views of sessions and handover: ``Countdown``, ``SessionBanner``, ``HandoverStatus``,
``PrimaryWatch``.

Each renders a snapshot (plain data) as HTML in a notebook, or as a text line
elsewhere, and re-renders only when ``update`` is called from the loop's thread.
The countdown keeps ticking in the browser on its own: the HTML carries the
seconds left, the phase thresholds and the clock's speed, and a small script
counts down from when the browser drew it (so browser/kernel clock skew does not
matter), because updates from kernel threads do not reach the page in Colab.
"""

from __future__ import annotations

import html
import json
import sys
import time
import uuid
from typing import Any, Optional, TextIO

from ..clock import clock_rate
from ..handover import Backup, Primary
from ..jobs.progress import format_seconds
from ..phase import PHASE_JS
from ..session_record import SessionRecord
from . import in_notebook

PHASE_COLOURS = {"fresh": "#2ca02c", "active": "#1f77b4", "warning": "#ff7f0e", "handover": "#d62728",
                 "expired": "#7f7f7f", "ended": "#7f7f7f", "dropped": "#7f7f7f"}
STALLED_COLOUR = "#9467bd"  # the job finishes no item while its runtime still beats

_SCRIPT = """
<script>
(function () {
  var el = document.getElementById(%(id)s);
  if (!el) { return; }
  var left0 = %(left)s, elapsed0 = %(elapsed)s, rate = %(rate)s, th = %(thresholds)s;
  %(phase_js)s
  var colours = %(colours)s, drawn = %(drawn)s, key = "sessionkit-countdown:" + %(id)s + ":" + drawn;
  // When was this drawn? Remembered in the browser across reloads; else now, for a page
  // drawn just now (the kernel's clock and this one may differ by seconds); else the
  // kernel's own time of drawing, for a notebook reopened later (the deadline is absolute).
  var t0 = null, now = Date.now();
  try { t0 = Number(window.localStorage.getItem(key)) || null; } catch (e) { t0 = null; }
  if (t0 === null) {
    t0 = Math.abs(now - drawn) <= %(fresh_draw_ms)s ? now : drawn;
    try {
      window.localStorage.setItem(key, String(t0));
      for (var i = window.localStorage.length - 1; i >= 0; i--) {  // forget old countdowns
        var k = window.localStorage.key(i);
        if (k && k.indexOf("sessionkit-countdown:") === 0 && now - Number(k.split(":").pop()) > 2 * 86400000) {
          window.localStorage.removeItem(k);
        }
      }
    } catch (e) { /* no storage (private window): a reload counts from the kernel's time */ }
  }
  function fmt(s) {
    s = Math.max(0, Math.round(s));
    var h = Math.floor(s / 3600), m = Math.floor(s %% 3600 / 60), r = s %% 60;
    return (h ? h + ":" : "") + (m < 10 ? "0" : "") + m + ":" + (r < 10 ? "0" : "") + r;
  }
  function tick() {
    var view = el.closest(".sk-view");
    if (view && view.getAttribute("data-stale")) {  // cut off from the kernel: say so, never "expired"
      el.querySelector(".sk-phase").textContent = "stale";
      el.setAttribute("data-phase", "stale");
      return;
    }
    var passed = (Date.now() - t0) / 1000 * rate;  // seconds of the session's clock since drawn
    var left = left0 - passed, phase = skPhase(left, elapsed0 + passed, th);  // the kernel's rule
    el.querySelector(".sk-left").textContent = fmt(left);
    el.querySelector(".sk-phase").textContent = phase;
    el.setAttribute("data-phase", phase);
    el.className = "sk-countdown sk-phase-" + phase;
    el.style.borderColor = colours[phase];
    el.querySelector(".sk-phase").style.color = colours[phase];
    if (left > 0) { setTimeout(tick, Math.max(50, 1000 / rate)); }
  }
  tick();
})();
</script>
"""
#: A view the kernel has not redrawn for this many real seconds is marked stale on the page
#: (a reload cut it off from the kernel, or the kernel is busy elsewhere); a Primary redraws
#: its views at least every 20 real seconds while it runs (handover/primary.py's VIEW_KEEPALIVE_S).
STALE_AFTER_S = 90.0
STALE_WORDS = ("the page was reloaded or the kernel is busy elsewhere; "
               "run show_again in another notebook to watch live")
_STALE_SCRIPT = """
<script>
(function () {
  var box = document.getElementById(%(id)s);
  if (!box) { return; }
  var updated = %(updated)s, after = %(after)s;
  function check() {
    if (!document.body.contains(box)) { return; }  // redrawn: a newer rendering replaced it
    if (Date.now() - updated < after) { setTimeout(check, 1000); return; }
    var at = new Date(updated), hh = at.getHours(), mm = at.getMinutes();
    box.setAttribute("data-stale", "1");
    box.style.opacity = "0.55";
    box.querySelector(".sk-stale-note").textContent = "stale: not updated since " + (hh < 10 ? "0" : "") + hh
      + ":" + (mm < 10 ? "0" : "") + mm + ": " + %(words)s;
  }
  check();
})();
</script>
"""
FRESH_DRAW_MS = 10_000  # a page showing a countdown within this of its drawing counts from its own clock


def _thresholds(snapshot: SessionRecord) -> dict[str, float]:
    """The session's own thresholds (its lead included), as the kernel decides phases with
    them; a record written before they were stored has the session's defaults (its decode)."""
    return snapshot.thresholds.as_dict()


def _wall_ms() -> int:
    """Real time now, in milliseconds since the epoch (what the page's Date.now() counts)."""
    return int(time.time() * 1000)


class _View:
    """Shared plumbing: an HTML output with a display id in notebooks, a text line elsewhere."""

    def __init__(self, snapshot: Any, stream: Optional[TextIO] = None, notebook: Optional[bool] = None) -> None:
        self.snapshot = snapshot
        self.notebook = in_notebook() if notebook is None else notebook
        self.stream = stream or sys.stderr
        self._handle: Any = None

    def final(self) -> bool:
        """True when this rendering is the last word (an ended session, a finished job):
        it never goes stale."""
        return False

    @property
    def goes_stale(self) -> bool:
        """A page's view that is not the last word: its kernel redraws it to show it is live."""
        return self.notebook and not self.final()

    def page(self) -> str:
        """``html()`` in a box that carries when it was drawn; unless final, the page marks it
        stale once the kernel has not redrawn it for STALE_AFTER_S real seconds."""
        box = f"sk-view-{uuid.uuid4().hex[:12]}"
        updated = _wall_ms()
        body = (f'<div id="{box}" class="sk-view" data-updated="{updated}">{self.html()}'
                f'<small class="sk-stale-note" style="color:#7f7f7f"></small></div>')
        if self.final():
            return body
        return body + _STALE_SCRIPT % {"id": json.dumps(box), "updated": updated,
                                       "after": int(STALE_AFTER_S * 1000), "words": json.dumps(STALE_WORDS)}

    def show(self) -> None:
        if self.notebook:
            from IPython.display import HTML, display

            self._handle = display(HTML(self.page()), display_id=True)
        else:
            self.stream.write(self.text() + "\n")
            self.stream.flush()

    def _ipython_display_(self) -> None:
        self.show()

    def update(self, snapshot: Any) -> None:
        """Re-render from a new snapshot (call from the loop's thread)."""
        self.snapshot = snapshot
        if self._handle is not None:
            from IPython.display import HTML

            self._handle.update(HTML(self.page()))
        elif not self.notebook:
            self.stream.write(self.text() + "\n")
            self.stream.flush()

    def close(self) -> None:
        """Nothing to release; the last rendering stays."""

    def html(self) -> str:  # pragma: no cover - every view defines it
        raise NotImplementedError

    def text(self) -> str:  # pragma: no cover
        raise NotImplementedError


def _snapshot_of(source: Any) -> Any:
    if hasattr(source, "snapshot") and callable(source.snapshot):
        return source.snapshot()
    if isinstance(source, (Primary, Backup)):
        return source.handover_view
    return source


class Countdown(_View):
    """Time left to the runtime's limit, ticking in the browser; phase colours
    fresh green, active blue, warning orange, handover red, expired grey.

    The page counts down from the deadline as the kernel saw it when drawing, so a
    reloaded page or a notebook reopened hours later shows the time really left (not
    the time left at the first drawing). A session that ended shows how it ended."""

    def __init__(self, session: Any, **kw: Any) -> None:
        clock = getattr(session, "clock", None)  # a Session; a SessionRecord carries its clock's rate
        snapshot = _snapshot_of(session)
        self.rate = clock_rate(clock) if clock is not None else snapshot.clock_rate
        super().__init__(snapshot, **kw)
        self._id = f"sk-countdown-{uuid.uuid4().hex[:12]}"

    def _scale(self) -> str:
        return f" (clock x{self.rate:g})" if abs(self.rate - 1.0) > 1e-9 else ""

    def final(self) -> bool:
        return not self.snapshot.active

    def html(self) -> str:
        s = self.snapshot
        left = s.remaining_s
        label = html.escape(s.label)
        runtime = html.escape(s.runtime.name)
        status = s.status.value
        if not s.active:
            phase = "ended"
            how = html.escape(str(s.end_reason or status))
            rest = f", {format_seconds(left)} of the runtime left" if left is not None and left > 0 else ""
            return (f'<div class="sk-countdown sk-phase-{phase}" data-phase="{phase}" style="font-family:'
                    f'monospace;padding:4px 8px;border-left:4px solid {PHASE_COLOURS[phase]}">{label} ({runtime}): '
                    f'<span class="sk-phase">session {html.escape(status)}: {how}</span>{rest}</div>')
        if left is None:
            return (f'<div class="sk-countdown sk-phase-active" data-phase="active" style="font-family:monospace;'
                    f'padding:4px 8px;border-left:4px solid {PHASE_COLOURS["active"]}">{label} ({runtime}): '
                    f'no time limit</div>')
        phase = s.phase.value
        box = (f'<div id="{self._id}" class="sk-countdown sk-phase-{html.escape(phase)}" '
               f'data-phase="{html.escape(phase)}" style="font-family:monospace;padding:4px 8px;'
               f'border-left:4px solid {PHASE_COLOURS.get(phase, "#7f7f7f")}">{label} ({runtime}): '
               f'<b class="sk-left">{format_seconds(left)}</b> left, '
               f'<span class="sk-phase">{html.escape(phase)}</span>{html.escape(self._scale())}</div>')
        return box + _SCRIPT % {
            "id": json.dumps(self._id), "left": float(left), "rate": self.rate,
            "elapsed": s.elapsed_s, "thresholds": json.dumps(_thresholds(s)),
            "phase_js": PHASE_JS, "colours": json.dumps(PHASE_COLOURS),
            "drawn": _wall_ms(), "fresh_draw_ms": FRESH_DRAW_MS}

    def text(self) -> str:
        s = self.snapshot
        left = s.remaining_s
        if not s.active:
            return f"[{s.label}] session {s.status}: {s.end_reason or s.status}"
        when = "no time limit" if left is None else f"{format_seconds(left)} left"
        return f"[{s.label}] {s.role} on {s.runtime.name}: {when} ({s.phase}){self._scale()}"


class SessionBanner(_View):
    """Role, runtime, label, lease holder and token, phase, job and stage."""

    def __init__(self, session: Any, **kw: Any) -> None:
        super().__init__(_snapshot_of(session), **kw)

    def final(self) -> bool:
        return not self.snapshot.active

    def _fields(self) -> list[tuple[str, str]]:
        s = self.snapshot
        lease, job = s.lease, s.job
        return [("role", str(s.role)), ("runtime", s.runtime.name), ("label", s.label),
                ("lease", f"{lease.name} token {lease.token}" if lease else "-"),
                ("phase", str(s.phase) + (" · STALLED" if s.stalled else "")),
                ("job", f"{job}" if job else "-")]

    def html(self) -> str:
        cells = "".join(f"<td style='padding:2px 10px'><small>{html.escape(k)}</small><br><b>"
                        f"{html.escape(v)}</b></td>" for k, v in self._fields())
        colour = STALLED_COLOUR if self.snapshot.stalled else PHASE_COLOURS.get(self.snapshot.phase, "#7f7f7f")
        return f"<table style='border-left:4px solid {colour}'><tr>{cells}</tr></table>"

    def text(self) -> str:
        return " | ".join(f"{k}: {v}" for k, v in self._fields())


class HandoverStatus(_View):
    """A backup's status (handover.BackupStatus) or a primary's (handover.PrimaryStatus), from
    a HandoverView snapshot (a ``handover.HandoverViewer``: a Primary redraws it with one)."""

    COLOURS = {"watching": "#1f77b4", "waiting for a primary": "#7f7f7f", "waiting for its turn": "#1f77b4",
               "approval pending": "#ff7f0e", "taking over": "#d62728", "primary": "#2ca02c",
               "handing over": "#ff7f0e", "done": "#7f7f7f", "completed": "#2ca02c", "handed over": "#17becf",
               "lease lost": "#d62728", "failed": "#d62728", "stopped": "#7f7f7f", "paused": "#7f7f7f",
               "cancelled": "#7f7f7f", "closed": "#7f7f7f"}

    def __init__(self, source: Any, **kw: Any) -> None:
        super().__init__(_snapshot_of(source), **kw)

    def show_handover(self, view: Any) -> None:
        self.update(view)

    def final(self) -> bool:
        return self.snapshot.ended

    def text(self) -> str:
        s = self.snapshot
        extra = f": {s.detail}" if s.detail else ""
        if s.role == "primary" and s.ended:
            return f"{s.status}{extra} (job {s.job or '-'})"  # ended: no lease to speak of
        holder = (s.holder or "-")[:8]
        return f"{s.status}{extra} (job {s.job or '-'}; lease {s.lease} held by {holder}, token {s.token})"

    def html(self) -> str:
        colour = self.COLOURS.get(self.snapshot.status, "#7f7f7f")
        return (f"<div style='font-family:monospace;padding:4px 8px;border-left:4px solid {colour}'>"
                f"{html.escape(self.text())}</div>")


class PrimaryWatch(_View):
    """A backup's line about the primary it watches (a ``status.PrimarySeen``): its time
    left and its job's progress, and a warning when this runtime has less time left than
    the job still needs (a backup started together with the primary ends with it). Once
    it took over, ``update`` with a string leaves that as the last word."""

    def __init__(self, seen: Any, rate: float = 1.0, **kw: Any) -> None:
        self.rate = rate  # clock seconds per real second, for rates and ETAs in real time
        super().__init__(seen, **kw)

    def _line(self) -> str:
        s = self.snapshot
        if isinstance(s, str):  # a last word once there is no primary to watch (taken over)
            return s
        if s.label is None and s.job is None:
            return "no primary seen in the store yet"
        label = s.label or "?"
        who = label if "primary" in label.lower() else f"primary {label}"  # never "primary primary"
        count = f"{s.done}/{s.total}" if s.total else f"{s.done}"
        if s.released and s.status not in ("completed", "failed", "cancelled"):
            return f"{who} handed over at {count}: it released the lease of job {s.job!r}; a backup takes it on"
        left = "no time limit" if s.remaining_s is None else f"{format_seconds(max(0.0, s.remaining_s))} left"
        parts = [f"{who}: {left}"]
        if s.job is not None:
            count = f"{s.done}/{s.total} ({s.done / s.total:.0%})" if s.total else f"{s.done}"
            parts.append(f"job {s.job!r} {s.status} {count}")
        if s.rate:
            parts.append(f"{s.rate * self.rate:.3g} it/s")
        if s.needs_s is not None:
            parts.append(f"ETA {format_seconds(s.needs_s / self.rate)}")
        if abs(self.rate - 1.0) > 1e-9:
            parts.append(f"(clock x{self.rate:g}; real-time rates)")
        return " · ".join(parts)

    def final(self) -> bool:
        return isinstance(self.snapshot, str)

    def warning(self) -> str:
        s = self.snapshot
        if isinstance(s, str) or not s.own_too_short:
            return ""
        return (f"this runtime has {format_seconds(max(0.0, s.own_remaining_s))} left, less than the job "
                f"needs ({format_seconds(s.needs_s)}): it would have to hand over again. Start a backup "
                f"later, on a runtime with more time left.")

    def text(self) -> str:
        warning = self.warning()
        return self._line() + (f"\nWARNING: {warning}" if warning else "")

    def html(self) -> str:
        warning = self.warning()
        colour = "#ff7f0e" if warning else "#1f77b4"
        extra = f"<br><b style='color:#d62728'>{html.escape(warning)}</b>" if warning else ""
        return (f"<div class='sk-primary-watch' style='font-family:monospace;padding:4px 8px;border-left:4px "
                f"solid {colour}'>{html.escape(self._line())}{extra}</div>")


class StoreBanner(_View):
    """Where the state lives and what another runtime needs to open it (from a ``StoreShare``)."""

    def final(self) -> bool:
        return True  # where the store is does not go out of date

    def text(self) -> str:
        s = self.snapshot
        lines = [f"store: {s.url}"]
        if s.link:
            lines.append(f"folder: {s.link}")
        lines.append(f"for the backup: STORE = {s.url!r}" if s.shareable else "for a backup: " + s.note)
        if s.shareable and s.note:
            lines.append(s.note)
        return "\n".join(lines)

    def html(self) -> str:
        s = self.snapshot
        link = (f"<br>folder: <a href='{html.escape(s.link)}' target='_blank'>{html.escape(s.link)}</a>"
                if s.link else "")
        backup = (f"<br>for the backup: <code>STORE = {html.escape(repr(s.url))}</code>" if s.shareable else "")
        colour = "#2ca02c" if s.shareable else "#7f7f7f"
        return (f"<div style='padding:4px 8px;border-left:4px solid {colour}'>store: <code>{html.escape(s.url)}"
                f"</code>{link}{backup}<br><small>{html.escape(s.note)}</small></div>")
