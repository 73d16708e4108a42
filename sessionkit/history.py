"""History as pandas DataFrames: every event, and tables of sessions, jobs, handovers, gaps.

``load(store)`` reads every event segment (``events/<writer>/*.jsonl``) into one
DataFrame sorted by ``ts``. Columns: ``ts`` (datetime64, UTC), ``kind``
(categorical), ``session``, ``role``, ``label``, ``job``, ``writer``, ``seq``, and
each field of an event's ``data`` as ``data.<field>`` (nested ones as
``data.<field>.<sub>``), as MLflow prefixes ``metrics.*`` and ``params.*``.

With pyarrow installed (Colab ships it) the JSON is parsed by Arrow's
multithreaded reader: a million events in about 2 s on two cores. Without it,
or for a batch Arrow cannot read, the standard library parses line by line:
damaged lines, foreign files and events of a newer format are skipped with a
warning that names the files; nothing here raises on bad data in the store.
"""

from __future__ import annotations

import io
import json
import warnings
from collections import defaultdict
from datetime import datetime
from typing import Any, Optional, Union

import pandas as pd

from .errors import SessionkitWarning
from .events import EVENT_FORMAT, KNOWN_KINDS
from .records import read_all
from .store import Store, open_store

__all__ = ["load", "sessions", "jobs", "handovers", "gaps", "readable", "units_note", "BASE_COLUMNS"]

BASE_COLUMNS = ["ts", "kind", "session", "role", "label", "job", "writer", "seq"]


def _is_segment(key: str) -> bool:
    parts = key.split("/")
    return len(parts) == 3 and parts[2].endswith(".jsonl")


def _segment_bytes(key: str, where: str, data: bytes, version: str) -> bytes:
    return data  # lines are decoded (and bad ones counted) when the frame is built


def _segments(store: Store) -> dict[str, list[tuple[str, bytes]]]:
    """Every event segment's bytes, grouped by writer; unreadable ones are warned about."""
    by_writer: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
    found = read_all(store, "events/", _segment_bytes, accept=_is_segment)
    unreadable = [f"{key} (not an event segment)" for key in found.skipped]
    unreadable += [f"{exc.key} ({exc.__class__.__name__})" for exc in found.damaged]
    for stored in found.records:
        by_writer[stored.key.split("/")[1]].append((stored.key, stored.value))
    if unreadable:
        warnings.warn(f"history: skipped {len(unreadable)} file(s) that are not readable event "
                      f"segments: {', '.join(unreadable[:10])}", SessionkitWarning, stacklevel=3)
    return by_writer


def _flatten_arrow(table: Any) -> Any:
    import pyarrow as pa

    while any(pa.types.is_struct(field.type) for field in table.schema):
        table = table.flatten()
    return table


class _Chunks(io.RawIOBase):
    """The segments as one stream, without joining them into one huge buffer (which costs
    more than parsing: a fresh 250 MB allocation is mostly page faults)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = []
        for chunk in chunks:  # a newline after each segment, in case its last line has none
            self._chunks += [memoryview(chunk), memoryview(b"\n")] if chunk else []
        self._i = self._at = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._i < len(self._chunks):
            chunk = self._chunks[self._i]
            n = min(len(view) - filled, len(chunk) - self._at)
            view[filled:filled + n] = chunk[self._at:self._at + n]
            filled += n
            self._at += n
            if self._at == len(chunk):
                self._i, self._at = self._i + 1, 0
        return filled


def _parse_arrow(chunks: list[bytes]) -> Optional[pd.DataFrame]:
    try:
        import pyarrow as pa
        import pyarrow.json as pj
    except ImportError:
        return None
    if all(not c or c.isspace() for c in chunks):  # isspace stops at the first other byte
        return pd.DataFrame()
    try:
        table = pj.read_json(io.BufferedReader(_Chunks(chunks), buffer_size=1 << 22),
                             read_options=pj.ReadOptions(block_size=1 << 23))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None  # damaged lines or fields whose type varies: the careful path reads these
    import pyarrow.compute as pc

    table = _flatten_arrow(table)
    if "v" in table.column_names and pc.max(table["v"]).as_py() > EVENT_FORMAT:
        return None  # events of a newer format: the careful path skips and names them
    if "ts" in table.column_names:  # parse and sort in Arrow: several times faster than pandas
        try:
            table = table.set_column(table.column_names.index("ts"), "ts",
                                     pc.cast(table["ts"], pa.timestamp("us", tz="UTC")))
            table = table.sort_by("ts")
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # an odd timestamp: pandas parses them below
    if "kind" in table.column_names:
        table = table.set_column(table.column_names.index("kind"), "kind", pc.dictionary_encode(table["kind"]))
    return table.to_pandas()


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, out)
    else:
        out[prefix] = value


def _parse_python(files: list[tuple[str, bytes]], problems: list[str]) -> pd.DataFrame:
    rows = []
    for key, data in files:
        bad = newer = 0
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                if not isinstance(event, dict) or "kind" not in event or "ts" not in event:
                    raise ValueError("not an event")
            except ValueError:
                bad += 1
                continue
            if not isinstance(event.get("v"), int) or event["v"] > EVENT_FORMAT:
                newer += 1
                continue
            row = {k: v for k, v in event.items() if k != "data"}
            _flatten("data", event.get("data") or {}, row)
            rows.append(row)
        if bad:
            problems.append(f"{key}: {bad} damaged line(s)")
        if newer:
            problems.append(f"{key}: {newer} event(s) of a newer format (upgrade sessionkit)")
    return pd.DataFrame(rows)


def load(store: Union[Store, str], *, since: Optional[datetime] = None,
         until: Optional[datetime] = None, real_time: bool = True) -> pd.DataFrame:
    """All events in the store (between ``since`` and ``until`` when given), sorted by ``ts``.

    Runtimes that ran on a scaled clock (a notebook's TIME_SCALE, whose epoch the store keeps
    at ``clock/epoch-<scale>``) wrote their times on it: with ``real_time`` (default) they are
    brought back to real time (timestamps, seconds and rates), so a 3 s gap reads 3 s, not
    2,160 s, and rates match the progress bar's items per second; ``units_note(df)`` says so.
    ``real_time=False`` keeps the clock's own times."""
    store = open_store(store)
    scale = _clock_scale(store)
    by_writer = _segments(store)
    problems: list[str] = []
    frames = []
    merged = any("-" in key.rsplit("/", 1)[1] for files in by_writer.values() for key, _ in files)
    everything = [chunk for files in by_writer.values() for _, chunk in files]
    df = _parse_arrow(everything) if everything else pd.DataFrame()
    if df is None:  # one batch failed: read writer by writer, the careful way where needed
        for files in by_writer.values():
            part = _parse_arrow([chunk for _, chunk in files])
            frames.append(part if part is not None else _parse_python(files, problems))
        df = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) \
            else pd.DataFrame()
    if problems:
        warnings.warn("history: loaded what could be loaded; " + "; ".join(problems[:20]),
                      SessionkitWarning, stacklevel=2)
    df = _tidy(df, None, None, dedupe=merged)
    if scale is not None and len(df):
        df = _to_real_time(df, *scale) if real_time else df
    if since is not None:
        df = df[df["ts"] >= pd.Timestamp(since)].reset_index(drop=True)
    if until is not None:
        df = df[df["ts"] < pd.Timestamp(until)].reset_index(drop=True)
    if scale is not None:
        df.attrs.update(clock_scale=scale[0], real_time=real_time)
    return df


def _clock_scale(store: Store) -> Optional[tuple[float, pd.Timestamp]]:
    """(scale, epoch) of the scaled clock the runtimes of this store shared, or None on real
    clocks. Several scales in one store cannot be told apart event by event: warned, kept."""
    found = []
    for key in store.list("clock/"):
        name = key.rsplit("/", 1)[-1]
        record = store.get(key) if name.startswith("epoch-") else None
        if record is None:
            continue
        try:
            body = json.loads(record.data)
            found.append((float(body["scale"]), pd.Timestamp(body["epoch"]).tz_convert("UTC")))
        except (ValueError, KeyError, TypeError) as exc:
            warnings.warn(f"history: skipped the clock record {key} ({exc})", SessionkitWarning, stacklevel=3)
    scaled = [f for f in found if f[0] != 1.0]
    if len(scaled) > 1:
        warnings.warn(f"history: runtimes of this store ran on clocks of {len(scaled)} scales "
                      f"({', '.join(f'x{f[0]:g}' for f in scaled)}): times are left as each clock wrote them",
                      SessionkitWarning, stacklevel=3)
        return None
    return scaled[0] if scaled else None


#: event fields that hold a timestamp on the writer's clock (besides ``ts``)
_TIME_FIELDS = ("data.last_heartbeat", "data.started")


def _to_real_time(df: pd.DataFrame, scale: float, epoch: pd.Timestamp) -> pd.DataFrame:
    """Times on a clock running ``scale`` times as fast from ``epoch``, brought to real time:
    a timestamp ``t`` happened at ``epoch + (t - epoch) / scale``; seconds shrink by the
    scale (``data.*_s``, ``mono``) and rates grow by it (``data.rate``)."""
    df = df.copy()
    df["ts"] = epoch + (df["ts"] - epoch) / scale
    for column in _TIME_FIELDS:
        if column in df.columns:
            stamps = pd.to_datetime(df[column], format="ISO8601", utc=True, errors="coerce")
            df[column] = (epoch + (stamps - epoch) / scale).map(lambda t: None if pd.isna(t) else t.isoformat())
    seconds = [c for c in df.columns if c == "mono" or (c.startswith("data.") and c.endswith("_s"))]
    for column in seconds:
        df[column] = pd.to_numeric(df[column], errors="coerce") / scale
    if "data.rate" in df.columns:
        df["data.rate"] = pd.to_numeric(df["data.rate"], errors="coerce") * scale
    return df


def units_note(df: pd.DataFrame) -> str:
    """A line for people on the units of ``df`` (from ``load``): empty on real clocks."""
    scale = df.attrs.get("clock_scale")
    if not scale:
        return ""
    if df.attrs.get("real_time", True):
        return (f"times in real time: these runtimes ran on a clock x{scale:g} as fast (TIME_SCALE), and "
                f"their times were divided by {scale:g} (1 real second = {scale:g} s of the runtimes' countdowns)")
    return (f"times on the runtimes' clock, x{scale:g} as fast as real time (TIME_SCALE): divide "
            f"durations by {scale:g} for real seconds")


def _tidy(df: pd.DataFrame, since: Optional[datetime], until: Optional[datetime],
          dedupe: bool = True) -> pd.DataFrame:
    if df.empty:
        out = pd.DataFrame({c: pd.Series(dtype="object") for c in BASE_COLUMNS})
        out["ts"] = pd.to_datetime(out["ts"], utc=True)
        out["kind"] = out["kind"].astype("category")
        return out
    if "data.job" in df.columns:
        df = df.rename(columns={"data.job": "job"})
    for column in BASE_COLUMNS:
        if column not in df.columns:
            df[column] = None
    if not isinstance(df["ts"].dtype, pd.DatetimeTZDtype):
        df["ts"] = pd.to_datetime(df["ts"], format="ISO8601", utc=True)
    if "session" in df.columns:
        df["session"] = df["session"].where(df["session"].notna(), df["writer"])
    parents = {c for c in df.columns if any(o.startswith(c + ".") for o in df.columns)}
    df = df.drop(columns=[c for c in ("v", *parents) if c in df.columns])  # a field that is
    # null in some events and an object in others: keep only its flattened parts
    if dedupe and "writer" in df.columns and "seq" in df.columns:
        df = df.drop_duplicates(subset=["writer", "seq"])  # a compaction caught half-way
    if since is not None:
        df = df[df["ts"] >= pd.Timestamp(since)]
    if until is not None:
        df = df[df["ts"] < pd.Timestamp(until)]
    unknown = sorted(set(df["kind"].dropna().unique()) - set(KNOWN_KINDS))
    if unknown:
        warnings.warn(f"history: event kinds this sessionkit does not know (kept as they are): "
                      f"{', '.join(map(str, unknown[:10]))}", SessionkitWarning, stacklevel=3)
    if not isinstance(df["kind"].dtype, pd.CategoricalDtype):
        df["kind"] = df["kind"].astype("category")
    rest = sorted(c for c in df.columns if c not in BASE_COLUMNS)
    df = df[BASE_COLUMNS + rest]
    if not df["ts"].is_monotonic_increasing:
        df = df.sort_values("ts", kind="stable")
    return df.reset_index(drop=True)


# -- derived tables -------------------------------------------------------------

SHORT_ID = 8  # characters of a session id the tables show (as views and the CLI do)


def _ids(table: pd.DataFrame, columns: tuple[str, ...], full: bool) -> pd.DataFrame:
    """Session ids cut to ``SHORT_ID`` characters, unless ``full`` (to join with the events)."""
    if not full:
        for column in columns:
            table[column] = table[column].map(lambda v: v[:SHORT_ID] if isinstance(v, str) else v)
    return table


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name] if name in df.columns else pd.Series([None] * len(df), index=df.index)


def sessions(df: pd.DataFrame, *, full_ids: bool = False) -> pd.DataFrame:
    """One row per session: start, end, duration, role, runtime, label, end reason, highest token."""
    rows = []
    for sid, ev in df[df["kind"].astype(str).str.startswith(("session.", "lease.", "handover.", "job."))
                      ].groupby("session", sort=False):
        kinds = ev["kind"].astype(str)
        started = ev.loc[kinds == "session.started", "ts"]
        ended = ev.loc[kinds == "session.ended"]
        start = started.iloc[0] if len(started) else ev["ts"].iloc[0]
        end = ended["ts"].iloc[-1] if len(ended) else ev["ts"].iloc[-1]
        reason = ended["data.reason"].iloc[-1] if len(ended) and "data.reason" in ended else None
        dropped = df[(df["kind"] == "session.dropped") & (_col(df, "data.dropped") == sid)]
        if len(dropped) and not len(ended):
            # It ended at its last sign of life: the later of its own last event and its last
            # heartbeat (its wall clock: fine for history), else when the observer last saw
            # its record change.
            reason, first = "dropped", dropped.iloc[0]
            beat = first.get("data.last_heartbeat")
            end = ev["ts"].iloc[-1]
            if pd.notna(beat):
                end = max(end, pd.Timestamp(beat).tz_convert("UTC"))
            elif pd.notna(first.get("data.silent_s")):
                # the observer's wall clock: off by as much as the two machines' clocks disagree
                # (only when the record held no heartbeat time)
                end = max(end, first["ts"] - pd.Timedelta(seconds=float(first["data.silent_s"])))
            end = max(end, start)
        duration = (end - start).total_seconds()
        own = ev[ev["writer"] == sid] if "mono" in ev and len(started) else ev.iloc[0:0]
        if len(own) and own["mono"].notna().all() and not (len(dropped) and not len(ended)):
            # the session's own monotonic clock: a wall clock stepped while it ran (NTP) moves
            # `ts`, not this; end is start plus the time that really passed
            first = own.loc[own["kind"].astype(str) == "session.started", "mono"].iloc[0]
            last = own.loc[own["kind"].astype(str) == "session.ended", "mono"]
            duration = float((last.iloc[-1] if len(last) else own["mono"].max()) - first)
            end = start + pd.Timedelta(seconds=duration)
        tokens = ev.loc[kinds == "lease.acquired", "data.token"] if "data.token" in ev else pd.Series([])
        roles = ev["role"].dropna()
        runtime = ev.loc[kinds == "session.started", "data.runtime.name"] if "data.runtime.name" in ev \
            else pd.Series([])
        rows.append({
            "session": sid, "label": ev["label"].dropna().iloc[0] if ev["label"].notna().any() else None,
            "role": roles.iloc[0] if len(roles) else None,
            "final_role": roles.iloc[-1] if len(roles) else None,
            "runtime": runtime.iloc[0] if len(runtime) else None,
            "start": start, "end": end, "duration_s": max(0.0, duration),
            "end_reason": reason if reason is not None else ("running" if not len(ended) else None),
            "highest_token": int(tokens.max()) if len(tokens.dropna()) else None,
        })
    # the columns a person reads first, left to right; the id (to join with events) last
    out = pd.DataFrame(rows, columns=["label", "role", "runtime", "start", "end", "duration_s", "end_reason",
                                      "final_role", "highest_token", "session"])
    out["highest_token"] = out["highest_token"].astype("Int64")
    return _ids(out.sort_values("start").reset_index(drop=True), ("session",), full_ids)


def jobs(df: pd.DataFrame, *, full_ids: bool = False) -> pd.DataFrame:
    """One row per job: id, status, done, total, started, finished, and the sessions that ran it."""
    rows = []
    ev_all = df[df["kind"].astype(str).str.startswith("job.") & df["job"].notna()]
    for job_id, ev in ev_all.groupby("job", sort=False):
        kinds = ev["kind"].astype(str)
        status = ev.loc[kinds == "job.status"]
        checkpoints = ev.loc[kinds == "job.checkpoint"]
        running = status[_col(status, "data.to") == "running"]
        finished = status[_col(status, "data.to").isin(["completed", "failed", "cancelled"])]
        rows.append({
            "job": job_id,
            "status": status["data.to"].iloc[-1] if len(status) else "pending",
            "done": int(checkpoints["data.done"].iloc[-1]) if len(checkpoints) else 0,
            "total": checkpoints["data.total"].iloc[-1] if len(checkpoints) and "data.total" in checkpoints else None,
            "started": running["ts"].iloc[0] if len(running) else None,
            "finished": finished["ts"].iloc[-1] if len(finished) else None,
            "sessions": list(dict.fromkeys(ev.loc[kinds.isin(["job.status", "job.checkpoint"]), "session"])),
        })
    out = pd.DataFrame(rows, columns=["job", "status", "done", "total", "started", "finished", "sessions"])
    out = out.astype({"done": "Int64", "total": "Int64"})
    if not full_ids:
        out["sessions"] = [[str(sid)[:SHORT_ID] for sid in ids] for ids in out["sessions"]]
    return out


def _judged(wall: Optional[float], waited: Any, window: Any) -> Optional[float]:
    """A span between two machines' events. Their wall clocks may disagree by hours, so it
    is kept within what the acquirer measured on its own monotonic clock: the record lay
    still for at least ``waited`` and at most ``waited + window`` seconds."""
    if waited is None or pd.isna(waited):
        return wall
    low = float(waited)
    high = low + (float(window) if window is not None and pd.notna(window) else 0.0)
    if wall is None:
        return low
    return min(max(wall, low), high)


def _acquisitions(df: pd.DataFrame) -> pd.DataFrame:
    """lease.acquired events in the order of their tokens (a global order, unlike the wall
    clocks of different machines)."""
    acquired = df[df["kind"] == "lease.acquired"]
    if "data.token" not in acquired.columns:
        return acquired
    return acquired.sort_values(["data.token"], kind="stable")


def _ended_hold(df: pd.DataFrame, session: Any, token: Any) -> Optional[pd.Series]:
    """The event with which ``session`` gave up the lease it held with ``token`` (released
    or lost), or None if it never said (it died)."""
    mine = df[(df["session"] == session) & df["kind"].isin(["lease.released", "lease.lost"])]
    if "data.token" in mine.columns and token is not None and pd.notna(token):
        mine = mine[_col(mine, "data.token") == token]
    return mine.iloc[-1] if len(mine) else None


def handovers(df: pd.DataFrame, *, full_ids: bool = False) -> pd.DataFrame:
    """One row per takeover: from, to, planned or not, how, and the gap in seconds without a
    primary. ``how``: "planned" (asked for at the handover phase), "released" (the primary
    was told to stop, e.g. SIGTERM, and released its lease) or "expired" (it died). After a
    release the gap runs from the release to the takeover; after an expiry it is how long
    the new primary saw the lease record lie still (``waited_s``, on its own clock); the old
    primary may have died a little earlier than that. Machines' wall clocks may disagree:
    a gap is kept within the bounds the new primary measured on its own clock."""
    rows = []
    done = df[df["kind"] == "handover.completed"]
    for _, ev in done.iterrows():
        gap = None
        planned = bool(ev.get("data.planned"))
        how = ev.get("data.how") if isinstance(ev.get("data.how"), str) else ("planned" if planned else "expired")
        token = ev.get("data.token")
        before = token - 1 if token is not None and pd.notna(token) else None
        released = _ended_hold(df, ev.get("data.from"), before)
        if how in ("planned", "released") and released is not None:
            gap = (ev["ts"] - released["ts"]).total_seconds()
        gap = _judged(gap, ev.get("data.waited_s"), ev.get("data.window_s"))
        rows.append({"ts": ev["ts"], "from": ev.get("data.from"), "to": ev.get("data.to"),
                     "planned": planned, "job": ev.get("job"), "token": ev.get("data.token"),
                     "gap_s": gap, "how": how})
    out = pd.DataFrame(rows, columns=["ts", "from", "to", "how", "gap_s", "job", "planned", "token"])
    out["token"] = pd.to_numeric(out["token"]).astype("Int64")
    return _ids(out, ("from", "to"), full_ids)


def gaps(df: pd.DataFrame, *, full_ids: bool = False) -> pd.DataFrame:
    """Spans with no primary: from one holder's release, loss or last sign of life to the
    next acquisition of the lease (taken in token order). Each span is kept within what the
    acquirer measured on its own clock, so clocks that disagree do not stretch it."""
    rows = []
    acquired = _acquisitions(df)
    by_lease = (acquired.groupby("data.lease", sort=False, dropna=False) if "data.lease" in acquired.columns
                else [(None, acquired)])
    for _, one_lease in by_lease:
        _gaps_of(df, one_lease, rows)
    out = pd.DataFrame(rows, columns=["start", "end", "duration_s", "before", "after", "lease"])
    out = out.sort_values("end", kind="stable").reset_index(drop=True) if len(out) else out
    return _ids(out, ("before", "after"), full_ids)


def _gaps_of(df: pd.DataFrame, acquired: pd.DataFrame, rows: list[dict[str, Any]]) -> None:
    previous: Optional[pd.Series] = None
    for _, ev in acquired.iterrows():
        if previous is not None:
            holder = previous["session"]
            ended = _ended_hold(df, holder, previous.get("data.token"))
            if ended is not None:
                since = ended["ts"]
            elif holder != ev["session"]:
                # the previous holder died: its last sign of life, on its own clock
                last = df[df["session"] == holder]["ts"]
                since = last.iloc[-1] if len(last) else None
            else:
                since = None  # it took up its own lease again: no gap
            if since is not None:
                waited, window = ev.get("data.waited_s"), ev.get("data.window_s")
                if waited is None or pd.isna(waited):  # events of older versions: the takeover says
                    took = df[(df["kind"] == "handover.completed") & (_col(df, "data.to") == ev["session"])]
                    if len(took):
                        waited, window = took.iloc[0].get("data.waited_s"), took.iloc[0].get("data.window_s")
                duration = _judged((ev["ts"] - since).total_seconds(), waited, window)
                rows.append({"start": ev["ts"] - pd.Timedelta(seconds=duration), "end": ev["ts"],
                             "lease": ev.get("data.lease"), "duration_s": duration,
                             "before": holder, "after": ev["session"]})
        previous = ev


#: how ``readable`` names the columns it shows (the tables keep their names for code)
READABLE_NAMES = {"start": "start (UTC)", "end": "end (UTC)", "ts": "at (UTC)", "started": "started (UTC)",
                  "finished": "finished (UTC)", "duration_s": "duration (s)", "gap_s": "gap (s)",
                  "end_reason": "ended", "final_role": "became", "highest_token": "token"}


def _seconds_for_people(value: Any) -> Any:
    """0.4, 3.2, 47, 2367: a tenth of a second under a minute, whole seconds above."""
    if value is None or pd.isna(value):
        return None
    return round(float(value), 1) if abs(float(value)) < 60 else int(round(float(value)))


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (from ``sessions``, ``jobs``, ``handovers`` or ``gaps``) for people: times to
    the second in UTC without the offset, durations rounded, short column names, so it fits
    a notebook's width. A copy for showing; compute with the table itself."""
    out = table.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = out[column].dt.tz_convert("UTC").dt.strftime("%Y-%m-%d %H:%M:%S")
        elif column in ("start", "end", "ts", "started", "finished"):  # object: None where unknown
            out[column] = out[column].map(lambda t: None if t is None or pd.isna(t)
                                          else pd.Timestamp(t).tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S"))
        elif column.endswith("_s"):
            out[column] = out[column].map(_seconds_for_people).astype(object)
    return out.rename(columns=READABLE_NAMES)
