"""``JobProgress``: a job's progress as an ipywidgets bar with a one-line summary."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from ..jobs.progress import Progress
from .text import describe, describe_lines

COLOURS = {"running": "#1f77b4", "pending": "#1f77b4", "completed": "#2ca02c", "failed": "#d62728",
           "paused": "#9e9e9e", "cancelled": "#9e9e9e", "handed over": "#17becf"}


def _snapshot(source: Any) -> Progress:
    return source if isinstance(source, Progress) else source.progress


class JobProgress:
    """Bar, done/total, rate, ETA, stage and a status colour (running blue, completed green,
    failed red, paused or cancelled grey). Give it a Job or a Progress snapshot; the job
    calls ``update`` from the loop's thread."""

    def __init__(self, job_or_progress: Any) -> None:
        p = _snapshot(job_or_progress)
        # A 240 px bar, never under 160 px (issue 26: the text squeezed it to 50-70 px), and the
        # label beside it on one line (cut with an ellipsis, never wrapped); the forecast goes
        # on a second, quieter line.
        self.bar = widgets.FloatProgress(value=0.0, min=0.0, max=1.0,
                                         layout=widgets.Layout(flex="0 0 240px", min_width="160px", width="auto"))
        self.bar.style.description_width = "initial"  # "handed over" in full, never "handed o..."
        self.label = widgets.HTML(layout=widgets.Layout(flex="1 1 auto", min_width="0"))
        self.widget = widgets.HBox([self.bar, self.label],
                                   layout=widgets.Layout(width="100%", align_items="center"))
        self._handle: Any = None
        self._fallback_at: Any = None
        self._closed = False
        self.update(p)

    def bundle(self) -> dict[str, Any]:
        """What is displayed and saved: the widget's view, and a readable line as its text
        fallback (a reloaded page without the widget's model shows the line, never the
        widget's repr "HBox(children=(FloatProgress(...")."""
        return {"text/plain": self.text,
                "application/vnd.jupyter.widget-view+json": {"version_major": 2, "version_minor": 0,
                                                             "model_id": self.widget.model_id}}

    def show(self) -> None:
        from IPython.display import display

        self._handle = display(self.bundle(), raw=True, display_id=True)

    def _ipython_display_(self) -> None:  # displaying the object shows the widget
        self.show()

    def update(self, progress: Progress) -> None:
        fraction = progress.fraction
        self.bar.value = fraction if fraction is not None else (1.0 if progress.status == "completed" else 0.0)
        status = "handed over" if progress.handed_to and progress.status == "paused" else progress.status
        self.bar.style.bar_color = COLOURS.get(status, "#9e9e9e")
        self.bar.description = status
        self.text = describe(progress)
        main, details = describe_lines(progress)
        quiet = (f"<br><small style='color:#7f7f7f'>{html.escape(details)}</small>" if details else "")
        self.label.value = (f"<div style='white-space:nowrap;overflow:hidden;text-overflow:ellipsis' "
                            f"title='{html.escape(main)}'><code>{html.escape(main)}</code>{quiet}</div>")
        # The saved fallback follows the status and each 5%, not every item (each redraws the view).
        at = (progress.status, None if fraction is None else int(fraction * 20))
        if self._handle is not None and self._closed:  # a last word after the close: still plain HTML
            self._handle.update({"text/html": self.static_html(), "text/plain": self.text}, raw=True)
        elif self._handle is not None and at != self._fallback_at:
            self._fallback_at = at
            self._handle.update(self.bundle(), raw=True)

    @property
    def colour(self) -> str:
        return self.bar.style.bar_color

    def static_html(self) -> str:
        """The bar and its line as plain HTML: what stays on the page once the view is closed."""
        fraction = max(0.0, min(1.0, float(self.bar.value)))
        status = html.escape(str(self.bar.description))
        return (f"<div class='sk-bar' data-status='{status}' style='display:flex;align-items:center;gap:8px'>"
                f"<span>{status}</span><div style='flex:0 0 240px;min-width:160px;height:14px;background:#eeeeee'>"
                f"<div class='sk-bar-fill' style='width:{fraction * 100:.1f}%;height:100%;"
                f"background-color:{self.colour}'></div></div>{self.label.value}</div>")

    def close(self) -> None:
        """Leave the final state on the page as plain HTML (and the text line), needing no
        widget model: ipywidgets 7 (Colab, Notebook 6) removes a widget's view from the page
        when the kernel drops the widget (its ``__del__`` closes it), so the finished bar
        vanished there once the loop ended; a saved notebook shows it too."""
        self._closed = True
        if self._handle is not None:
            self._handle.update({"text/html": self.static_html(), "text/plain": self.text}, raw=True)
