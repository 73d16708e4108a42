"""Plots of history: ``timeline``, ``progress`` and ``throughput``.

Each takes the events DataFrame from ``history.load`` and returns a matplotlib
``Figure`` built without pyplot (no global state, no display needed, never
``plt.show()``): save it with ``fig.savefig(path)``, or make it a cell's value and
the notebook draws it (``NotebookFigure._repr_png_``: no ``%matplotlib inline``
needed, in Jupyter, Colab or papermill). Times are in UTC and labelled so.
"""

from __future__ import annotations

import io
from typing import Optional

import matplotlib.dates as mdates
import pandas as pd
from matplotlib.figure import Figure

from . import history

__all__ = ["timeline", "progress", "throughput", "NotebookFigure", "ROLE_COLOURS"]

ROLE_COLOURS = {"primary": "#1f77b4", "backup": "#ff7f0e", "observer": "#9e9e9e"}
INLINE_DPI = 100


class NotebookFigure(Figure):
    """A pyplot-free Figure that a notebook draws when it is a cell's value. A plain
    Figure shows as its text (``<Figure size 1100x210 with 1 Axes>``) unless pyplot's
    inline backend was set up; IPython asks any object for ``_repr_png_``, so this
    one draws itself, with or without ``%matplotlib inline``."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=INLINE_DPI)
        return buf.getvalue()


def _time_axis(ax, label: str = "time (UTC)") -> None:
    locator = mdates.AutoDateLocator(tz="UTC")
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz="UTC"))
    ax.set_xlabel(label)


def _units(df: pd.DataFrame) -> str:
    """What the time axis is on, when the runtimes ran on a scaled clock (``history.load``)."""
    scale = df.attrs.get("clock_scale")
    if not scale:
        return ""
    return (f"real time; runtimes on a x{scale:g} clock" if df.attrs.get("real_time", True)
            else f"the runtimes' x{scale:g} clock, not real time")


def _empty(fig: Figure, ax, what: str) -> Figure:
    ax.text(0.5, 0.5, f"no {what} in this store yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return fig


def _naive(ts: pd.Series) -> pd.Series:
    return ts.dt.tz_convert("UTC").dt.tz_localize(None)


def _role_spans(df: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """(session, label, role, start, end): a backup that took over becomes primary from then on."""
    took = df[df["kind"] == "handover.completed"]
    became = dict(zip(took.get("data.to", []), took["ts"])) if len(took) else {}
    rows = []
    for s in table.itertuples():
        switch = became.get(s.session)
        if switch is not None and s.role != "primary" and s.start <= switch <= s.end:
            rows.append((s.session, s.label, s.role, s.start, switch))
            rows.append((s.session, s.label, "primary", switch, s.end))
        else:
            rows.append((s.session, s.label, s.role, s.start, s.end))
    return pd.DataFrame(rows, columns=["session", "label", "role", "start", "end"])


def timeline(df: pd.DataFrame, *, title: Optional[str] = "Sessions") -> Figure:
    """A lane per runtime label; session bars coloured by role; handovers marked; spans with
    no primary shaded."""
    table = history.sessions(df, full_ids=True)
    fig = NotebookFigure(figsize=(11, 1.2 + 0.45 * max(1, table["label"].nunique() if len(table) else 1)),
                 layout="constrained")
    ax = fig.add_subplot()
    if table.empty:
        return _empty(fig, ax, "sessions")
    table["label"] = table["label"].fillna(table["session"].str[:8])
    spans = _role_spans(df, table)
    lanes = list(dict.fromkeys(table["label"]))
    spans["start_n"] = mdates.date2num(_naive(spans["start"]))
    spans["width"] = mdates.date2num(_naive(spans["end"])) - spans["start_n"]
    visible = 0.004 * max(spans["width"].sum() / max(len(lanes), 1), 1e-6)  # short sessions show too
    spans["width"] = spans["width"].clip(lower=visible)
    for lane_no, lane in enumerate(lanes):
        on_lane = spans[spans["label"] == lane]
        for role, part in on_lane.groupby("role"):
            ax.broken_barh(list(zip(part["start_n"], part["width"])), (lane_no - 0.35, 0.7),
                           facecolors=ROLE_COLOURS.get(role, "#9e9e9e"), edgecolor="white", linewidth=0.5)
    gaps = history.gaps(df, full_ids=True)
    for g in gaps.itertuples():
        ax.axvspan(g.start.tz_convert("UTC").tz_localize(None), g.end.tz_convert("UTC").tz_localize(None),
                   color="#d62728", alpha=0.15, lw=0)
    for h in history.handovers(df, full_ids=True).itertuples():
        x = h.ts.tz_convert("UTC").tz_localize(None)
        ax.axvline(x, color="#2ca02c" if h.planned else "#d62728", ls="--", lw=1)
        # above the lanes, level: a label rotated into the gap band was crammed and unreadable
        ax.annotate("planned" if h.planned else "takeover", (mdates.date2num(x), 1.0),
                    xycoords=ax.get_xaxis_transform(),
                    xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=7,
                    color="#444444")
    ax.set_yticks(range(len(lanes)), lanes)
    ax.set_ylim(-0.6, len(lanes) - 0.4)
    ax.invert_yaxis()
    _time_axis(ax, f"time (UTC; {_units(df)})" if _units(df) else "time (UTC)")
    from matplotlib.patches import Patch

    present = set(spans["role"])  # the legend lists only the roles this history has
    handles = [Patch(color=c, label=r) for r, c in ROLE_COLOURS.items() if r in present]
    if len(gaps):
        handles.append(Patch(color="#d62728", alpha=0.15, label="no primary"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    if title:
        ax.set_title(title)
    return fig


def progress(df: pd.DataFrame, *, job: Optional[str] = None, title: Optional[str] = None) -> Figure:
    """Items done over time per job, coloured by the session that did them; handovers marked."""
    fig = NotebookFigure(figsize=(11, 4), layout="constrained")
    ax = fig.add_subplot()
    points = df[(df["kind"] == "job.checkpoint") & df["job"].notna()]
    if job is not None:
        points = points[points["job"] == job]
    if points.empty or "data.done" not in points.columns:
        return _empty(fig, ax, "job checkpoints")
    labels = history.sessions(df, full_ids=True).set_index("session")["label"].to_dict()
    colours = {}
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
    for job_id, part in points.groupby("job", sort=False):
        ax.plot(_naive(part["ts"]), part["data.done"], color="#cccccc", lw=1, zorder=1)
        for sid, run in part.groupby("session", sort=False):
            colour = colours.setdefault(sid, palette[len(colours) % len(palette)])
            name = f"{job_id}: {labels.get(sid) or str(sid)[:8]}"
            ax.plot(_naive(run["ts"]), run["data.done"], "o-", ms=3, color=colour, label=name, zorder=2)
    for h in history.handovers(df, full_ids=True).itertuples():
        if job is None or h.job == job:
            ax.axvline(h.ts.tz_convert("UTC").tz_localize(None), color="#444444", ls="--", lw=1)
    ax.set_ylabel("items done")
    _time_axis(ax, f"time (UTC; {_units(df)})" if _units(df) else "time (UTC)")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.set_title(title or (f"Progress of {job}" if job else "Progress of jobs"))
    return fig


def throughput(df: pd.DataFrame, *, title: Optional[str] = "Throughput per session") -> Figure:
    """Items per second each session achieved on each job (from its first to its last checkpoint)."""
    fig = NotebookFigure(figsize=(8, 3.5), layout="constrained")
    ax = fig.add_subplot()
    points = df[(df["kind"] == "job.checkpoint") & df["job"].notna()]
    if points.empty or "data.done" not in points.columns:
        return _empty(fig, ax, "job checkpoints")
    labels = history.sessions(df, full_ids=True).set_index("session")["label"].to_dict()
    names, rates = [], []
    for (job_id, sid), run in points.groupby(["job", "session"], sort=False):
        seconds = (run["ts"].iloc[-1] - run["ts"].iloc[0]).total_seconds()
        items = run["data.done"].iloc[-1] - run["data.done"].iloc[0]
        if seconds > 0 and items > 0:
            names.append(f"{labels.get(sid) or str(sid)[:8]}\n{job_id}")
            rates.append(items / seconds)
    if not rates:
        return _empty(fig, ax, "runs long enough to measure")
    ax.bar(range(len(rates)), rates, color="#1f77b4")
    ax.set_xticks(range(len(rates)), names, fontsize=8)
    ax.set_ylabel("items per second" + (f"\n({_units(df)})" if _units(df) else ""))
    if title:
        ax.set_title(title)
    return fig
