"""What the ready-made notebooks call, so their cells stay thin (the logic lives here).

``start_primary`` and ``start_backup`` open a session with the notebook's parameters
and show its views; ``demo_items`` is the built-in workload a user replaces with
their own. ``TIME_SCALE`` above 1 runs a scaled clock (720: 12 hours in a minute):
the runtime's limit and its phase thresholds run on that clock, while ``LEASE_TTL``
is always real seconds (how long a backup waits for a dead primary).

An empty ``STORE`` means the default for where the notebook runs: in Colab a Drive
folder in the signed-in account's My Drive (``gdrive://sessionkit/<JOB>``), which a
backup on another account can open once the folder is shared with it; elsewhere the
local folder ``sessionkit-state``, which only this machine sees.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Optional, Union

from .validate import check_seconds, seconds_setting
from .clock import Clock, ScaledClock, SystemClock, clock_rate
from .handover import Backup, Primary
from .runtimes import Runtime
from .errors import Conflict, CorruptRecord, StoreError
from .lease import read_lease
from .sessions import read_session
from .status import LiveView, PrimarySeen, live_view, primary_seen
from .store import ABSENT, Store, open_store
from .registry import Registry
from .config import Config, load as load_config
from .env import headless, in_colab, in_notebook

__all__ = ["LogPace", "StoreShare", "clock_for", "default_store", "demo_items", "demo_work", "log_every",
           "release_runtime", "run", "share_info", "show_again", "start_backup", "start_primary", "use_credentials"]

log = logging.getLogger("sessionkit.notebook")
LOCAL_DEFAULT = "sessionkit-state"


def default_store(job: str) -> str:
    """The store an empty STORE means: a Drive folder in Colab, a local folder elsewhere."""
    return f"gdrive://sessionkit/{job}" if in_colab() else LOCAL_DEFAULT


@dataclass(frozen=True)
class StoreShare:
    """What another runtime needs to open this store (a snapshot for ``StoreBanner``)."""

    url: str
    link: Optional[str]
    shareable: bool  # another machine can use it
    note: str


def share_info(store: Store) -> StoreShare:
    """How to hand ``store`` to a backup on another runtime, in words a user can follow."""
    link = getattr(store, "link", None)
    if link:
        return StoreShare(store.url, link, True,
                          "On another account's runtime: share this folder with that account as Editor "
                          "(Drive's Share button), then set STORE to the value above in the backup "
                          "notebook. The folder link works as STORE too.")
    if store.url.startswith("memory://"):
        return StoreShare(store.url, None, False, "a memory store lives in this process only")
    return StoreShare(store.url, None, False,
                      "this store is a folder on this machine: only runtimes on this machine see it. "
                      "For a backup elsewhere use a gdrive:// store (docs/gdrive.md).")


def _resolve(store: Union[Store, str, None], job: str) -> Store:
    if isinstance(store, Store):
        return store
    if store is None or (isinstance(store, str) and not store.strip()):
        store = default_store(job)
    return open_store(store)


def _real_seconds(name: str, seconds: float, time_scale: float) -> float:
    """A duration the user gave in real seconds, on a clock running ``time_scale`` times fast."""
    return check_seconds(name, seconds, "real seconds") * float(time_scale)


def clock_for(time_scale: float, store: Optional[Store] = None) -> Clock:
    """The real clock for 1.0, else one running ``time_scale`` times faster. With a store,
    every runtime using it at this scale shares one epoch (kept at ``clock/epoch-<scale>``),
    so their scaled clocks agree on the time and history lines up."""
    if not isinstance(time_scale, (int, float)) or not time_scale > 0:
        raise ValueError(f"TIME_SCALE must be a number > 0 (1.0 is real time), got {time_scale!r}")
    if time_scale == 1:
        return SystemClock()
    if store is None:
        return ScaledClock(time_scale)
    key = f"clock/epoch-{time_scale:g}"
    record = store.get(key)
    if record is None:
        try:
            store.put(key, json.dumps({"epoch": SystemClock().now().isoformat(), "scale": time_scale}).encode(),
                      expect=ABSENT)
        except Conflict:
            pass  # another runtime wrote it first: use theirs
        record = store.get(key)
    epoch = datetime.fromisoformat(json.loads(record.data)["epoch"])
    return ScaledClock(time_scale, epoch=epoch)


def _show(views: list[Any]) -> None:
    for view in views:
        view.show()


def _configured(config: Union[None, str, Config], store: Union[Store, str, None], runtime: Union[str, Runtime],
                lease_ttl: float) -> tuple[Union[Store, str, None], Union[str, Runtime], float, dict[str, Any]]:
    """The notebook's values with a sessionkit.ini's laid over them: its runtime, phase
    thresholds and lease ttl replace the notebook's; its store is used when STORE is empty;
    its webhook is started (once per kernel)."""
    if config is None:
        return store, runtime, lease_ttl, {}
    loaded = config if isinstance(config, Config) else load_config(config)
    loaded.webhook()
    if store is None or (isinstance(store, str) and not store.strip()):
        store = loaded.store
    phases = {"warning_at": loaded.warning_at, "handover_at": loaded.handover_at}
    return store, loaded.runtime, loaded.lease_ttl, phases


def start_primary(store: Union[Store, str, None], job: str, *, runtime: Union[str, Runtime] = "colab-free",
                  time_scale: float = 1.0, lease_ttl: float = 60.0, label: Optional[str] = None,
                  show: bool = True, config: Union[None, str, Config] = None, credentials: Optional[str] = None,
                  **job_kwargs: Any) -> Primary:
    """Open the primary session, take the lease (waiting while another primary holds it),
    and show the store (what to give a backup), Countdown, SessionBanner and HandoverStatus
    (JobProgress appears when the job runs). ``lease_ttl`` is real seconds at any scale.
    ``config``: a sessionkit.ini (path or ``config.load``'s result), see ``_configured``."""
    from .widgets.session import Countdown, HandoverStatus, SessionBanner, StoreBanner

    clock_check = clock_for(time_scale)  # validates TIME_SCALE before anything is opened
    use_credentials(credentials)
    store, runtime, lease_ttl, phases = _configured(config, store, runtime, lease_ttl)
    ttl = _real_seconds("LEASE_TTL", lease_ttl, time_scale)
    store = _resolve(store, job)
    earlier = _earlier_primary(store, job)
    if earlier is not None:
        return earlier
    _say_who_holds(store)
    clock = clock_for(time_scale, store) if time_scale != 1 else clock_check
    primary = Primary(store, job, runtime=runtime, clock=clock, ttl=ttl, label=label, **phases, **job_kwargs)
    _KERNEL_PRIMARIES.put(store.url, primary)
    banner = StoreBanner(share_info(store))
    primary.views += [Countdown(primary.session), SessionBanner(primary.session), HandoverStatus(primary)]
    if show:
        _show([banner] + primary.views)
    return primary


#: The primary this kernel started for each store: running the start cell again (or Run
#: All) must never wait on the lease this kernel itself holds.
_KERNEL_PRIMARIES: Registry[str, Primary] = Registry("notebook.kernel_primaries")


def _earlier_primary(store: Store, job: Optional[str]) -> Optional[Primary]:
    """This kernel's primary for ``store``, reused when it still holds the lease for ``job``
    (None: any job; its views are shown again); one for another job is closed (its lease
    released) first."""
    earlier = _KERNEL_PRIMARIES.get(store.url)
    if earlier is None:
        return None
    holding = earlier.lease.token is not None and earlier.lease.held and earlier.session.status == "active"
    if holding and job in (None, earlier.job.id):
        print(f"this kernel's primary for job {earlier.job.id!r} still holds the lease (token {earlier.lease.token}): "
              f"using it again (its runtime, TIME_SCALE and LEASE_TTL stay as first set; restart the "
              f"kernel to change them)")
        earlier.refresh_views(force=True)
        _show(earlier.views)
        return earlier
    if holding:
        print(f"closing this kernel's primary for job {earlier.job.id!r} (releasing its lease, token "
              f"{earlier.lease.token}) to start job {job!r}")
        earlier.close()
    _KERNEL_PRIMARIES.pop(store.url)
    return None


def _say_who_holds(store: Store, lease_name: str = "primary") -> None:
    """Before waiting for the lease, say whose it is and what ends the wait."""
    try:
        record = read_lease(store, lease_name)
    except (CorruptRecord, StoreError) as exc:
        log.info("could not read lease %r before acquiring it: %s", lease_name, exc)
        return
    if record is None or record.holder is None:
        return
    holder = read_session(store, record.holder)
    if holder is not None and not holder.active:
        return  # its runtime ended: the lease is taken over once it has lain still for its ttl
    print(f"another primary holds the lease: {(holder.label if holder else '') or 'a runtime'} "
          f"({record.holder[:8]}, token {record.token}) on "
          f"{(holder.host if holder else None) or 'another machine'}. Waiting until it hands "
          f"over, ends, or stops renewing for {record.ttl:g} s (interrupt to stop waiting)", flush=True)


def start_backup(store: Union[Store, str, None], *, job: Optional[str] = None,
                 runtime: Union[str, Runtime] = "colab-free",
                 time_scale: float = 1.0, lease_ttl: float = 60.0, priority: int = 1, approval: str = "auto",
                 label: Optional[str] = None, show: bool = True, timeout: Optional[float] = None,
                 config: Union[None, str, Config] = None, credentials: Optional[str] = None) -> Optional[Primary]:
    """Watch the primary and take over when it hands over or dies; returns the new Primary
    (showing its views), or None if ``timeout`` passed or the job finished meanwhile.
    ``store`` must be the primary's (in Colab there is no default: the backup must be told).

    Headless (``env.headless()``: a Kaggle "Save & Run All"), no widget is shown: what the
    views would show is printed as log lines every ``log_every()`` real seconds (and when
    it changes), and the watch ends, saying so, once this runtime's own session is down to
    its handover threshold, too late to take a job over."""
    from .widgets import WATCH_PACE_S
    from .widgets.session import Countdown, HandoverStatus, PrimaryWatch, SessionBanner

    clock_check = clock_for(time_scale)
    use_credentials(credentials)
    quiet = headless()
    show = show and not quiet
    store, runtime, lease_ttl, phases = _configured(config, store, runtime, lease_ttl)
    ttl = _real_seconds("LEASE_TTL", lease_ttl, time_scale)
    if job is not None and (not isinstance(job, str) or not job):
        raise ValueError(f"JOB must be the primary's job name, got {job!r}")
    if (store is None or (isinstance(store, str) and not store.strip())) and in_colab():
        raise ValueError("set STORE to the value the primary notebook printed ('for the backup: STORE = "
                         "...'), or to the Drive folder's link: a backup must watch the primary's store")
    store = _resolve(store, job or "")
    earlier = _earlier_primary(store, job)  # this kernel took over before: it is the primary
    if earlier is not None:
        return earlier
    clock = clock_for(time_scale, store) if time_scale != 1 else clock_check
    backup = Backup(store, label, priority=priority, approval=approval, runtime=runtime, clock=clock, ttl=ttl,
                    job=job, **phases)
    status = HandoverStatus(backup)
    watching = PrimaryWatch(_primary_seen(backup, job), rate=clock_rate(clock))
    if show:
        status.show()
        watching.show()
    last: list[Any] = [None, time.monotonic()]
    watch_every = WATCH_PACE_S[bool(getattr(store, "remote", False))]  # real seconds (2 local, 10 remote)
    pace = LogPace() if quiet else None
    own_end = None
    if quiet and backup.session.remaining is not None:
        own_end = max(0.0, backup.session.remaining - backup.session.handover_at)
        timeout = own_end if timeout is None else min(timeout, own_end)
    if pace is not None:
        pace.say(f"backup (headless, a line every {pace.every:g} s): watching {store.url} for job "
                 f"{job or '(any)'}" + (f"; stops watching when this runtime has "
                                        f"{_span(backup.session.handover_at)} left" if own_end is not None else ""))

    def refresh(b: Backup) -> None:  # from this (the cell's) thread, only when it changes
        state = b.handover_view
        changed = (state.status, state.detail) != last[0]
        if changed:
            last[0] = (state.status, state.detail)
            status.update(state)
        if pace is not None:
            pace.tick(lambda: _watch_line(state, _primary_seen(b, job)), changed=changed)
        if changed or time.monotonic() - last[1] >= watch_every:  # the store's pace, not at every look
            last[1] = time.monotonic()
            watching.update(_primary_seen(b, job))

    try:
        primary = backup.watch(timeout=timeout, on_step=refresh)
    except ValueError:  # the store's primary runs another job: checked before taking anything
        backup.close()
        raise
    if primary is None:
        if backup.status == "done":
            print("the primary finished the job: nothing to take over")
        elif own_end is not None and (backup.session.remaining or 0) <= backup.session.handover_at + 1e-6:
            print(f"this runtime's session has {_span(backup.session.remaining or 0)} left, too little to take "
                  f"the job over: stopped watching (the primary, or another backup, carries on)")
        backup.close()
        return None
    _KERNEL_PRIMARIES.put(store.url, primary)
    seen = _primary_seen(primary, job)
    if seen.own_too_short:
        print(f"WARNING: {PrimaryWatch(seen, rate=watching.rate, notebook=False).warning()}")
    took = f"took over job {primary.job.id!r} at {primary.job.done} done: this runtime is the primary now"
    if pace is not None:
        pace.say(took)
        return primary  # headless: log lines only, no views (run() prints the job's state)
    watching.update(took)
    primary.views += [status, Countdown(primary.session), SessionBanner(primary.session)]
    if show:
        _show(primary.views[1:])
    primary.refresh_views(force=True)
    return primary




def _primary_seen(watcher: Union[Backup, Primary], job: Optional[str]) -> PrimarySeen:
    """The watched primary's time left and progress, against the watcher's own time left."""
    try:
        live = live_view(watcher.store, "primary", job, watcher.clock)
    except (CorruptRecord, StoreError) as exc:
        log.info("could not read the primary's progress for the view: %s", exc)
        live = LiveView(None, None, None)
    return primary_seen(live, watcher.session.remaining)


def show_again(store: Union[Store, str, None], job: str) -> None:
    """The notebooks' last cell: the primary's live views again, read from the store (the
    views only: returning the snapshots would print them as the cell's value). Headless,
    there is no page to show them on: one line says so."""
    if headless():
        print("headless run: no views to show again (the log lines above are this run's record; open the "
              "notebook in a browser and run this cell there to watch live)")
        return
    from .widgets import show

    show(_resolve(store, job), job=job)


def release_runtime(primary: Primary) -> str:
    """Give the Colab runtime back once the job has completed (RELEASE_RUNTIME), so an idle
    runtime stops using quota (colabtools#1923). Returns what was done, for the notebook."""
    if primary.job.status != "completed":
        return f"runtime kept: job {primary.job.id} is {primary.job.status}, not completed"
    if not in_colab():
        return "not in Colab: nothing to release"
    from .notify import flush_all

    if not flush_all(timeout=30):
        log.warning("some notifications were not sent within 30 s; releasing the runtime anyway")
    primary.close()
    from google.colab import runtime as colab_runtime  # type: ignore[import-not-found]

    try:
        colab_runtime.unassign()
    except Exception as exc:  # RuntimeManagementError outside a managed runtime (colabtools runtime.py)
        return (f"runtime NOT released: google.colab.runtime.unassign() failed ({type(exc).__name__}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'no message'}); the job has "
                f"completed, so end it yourself with Runtime → Disconnect and delete runtime")
    return "runtime released (google.colab.runtime.unassign)"


def use_credentials(credentials: Optional[str]) -> None:
    """The notebooks' CREDENTIALS: when set, Drive's saved user credentials for this
    kernel (SESSIONKIT_GDRIVE_CREDENTIALS: a path, the JSON text, ``colab-secret:NAME`` or
    ``kaggle-secret:NAME``). The value is never printed."""
    if credentials is None or credentials == "":
        return
    if not isinstance(credentials, str):
        raise ValueError(f"CREDENTIALS must be a string (a file, colab-secret:NAME or kaggle-secret:NAME), "
                         f"got a {type(credentials).__name__}")
    os.environ["SESSIONKIT_GDRIVE_CREDENTIALS"] = credentials


LOG_EVERY = 60.0  # real seconds between a headless run's log lines


def log_every() -> float:
    """Real seconds between a headless run's log lines: SESSIONKIT_LOG_EVERY, else LOG_EVERY."""
    return seconds_setting("SESSIONKIT_LOG_EVERY", LOG_EVERY, "real seconds between a headless run's log lines")


class LogPace:
    """Log lines at a steady pace in real seconds: one every ``every``, and one when what
    is said changes (a headless run's only view; each line starts with the UTC time)."""

    def __init__(self, every: Optional[float] = None) -> None:
        self.every = log_every() if every is None else every
        self._last = float("-inf")

    def tick(self, line: Callable[[], str], changed: bool = False) -> None:
        if changed or time.monotonic() - self._last >= self.every:
            self.say(line())

    def say(self, line: str) -> None:
        self._last = time.monotonic()
        print(f"{datetime.now(timezone.utc):%H:%M:%S} {line}", flush=True)


def _watch_line(state: Any, seen: PrimarySeen) -> str:
    """A headless backup's log line: what it does, and the primary as it last saw it."""
    if seen.job is None:
        primary = "no primary job seen yet"
    else:
        total = "" if seen.total is None else f"/{seen.total}"
        left = "" if seen.remaining_s is None else f", {_span(seen.remaining_s)} left there"
        primary = f"the primary ({seen.label or 'unnamed'}) is {seen.status} at {seen.done}{total}{left}"
    own = "" if seen.own_remaining_s is None else f"; {_span(seen.own_remaining_s)} left here"
    return f"backup {state.status} ({state.detail}): {primary}{own}"


def _job_line(primary: Primary) -> str:
    job, session = primary.job, primary.session
    left = "" if session.remaining is None else f", {_span(session.remaining)} left here"
    total = "" if job.total is None else f"/{job.total}"
    return f"job {job.id}: {job.status} {job.done}{total}, phase {session.phase}{left}"


def _span(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def demo_items(items: int) -> range:
    """The built-in workload's items: 0 .. ITEMS-1."""
    return range(int(items))


def demo_work(item_seconds: float) -> Callable[[Any], None]:
    """The built-in workload: each item takes ``item_seconds`` of real time."""
    def work(item: Any) -> None:
        time.sleep(item_seconds)
    return work


def run(primary: Primary, items: Iterable[Any], work: Callable[[Any], None], **track: Any) -> Primary:
    """``for item in primary.track(items): work(item)``, with a widget in notebooks. An
    interrupt (the stop button, Ctrl-C) pauses the job at the item in progress and says so
    in a line, not a traceback: running the cell again resumes.

    Headless (``env.headless()``), the job's state is printed as a log line every
    ``log_every()`` real seconds instead of a widget, and the job stops cleanly (paused at
    its last checkpoint, the lease released so a backup takes it at once) when this
    runtime's session is down to a third of its handover threshold with no handover made."""
    quiet = headless()
    track.setdefault("display", in_notebook() and not quiet)
    loop = primary.track(items, **track)
    pace = LogPace() if quiet else None
    session = primary.session
    try:
        for item in loop:
            work(item)
            if pace is None:
                continue
            pace.tick(lambda: _job_line(primary))
            if session.remaining is not None and session.remaining <= session.handover_at / 3:
                primary.job.record_outcome(None)  # paused: the run stops, it did not fail
                loop.close()  # the final checkpoint
                pace.say(_job_line(primary))
                pace = None
                print(f"this runtime's session ends in {_span(session.remaining)}: stopped job "
                      f"{primary.job.id!r} at {primary.job.done} done and released the lease, so a backup "
                      f"takes it over at once; run the notebook again to resume", flush=True)
                primary.close()
                break
        if pace is not None:
            pace.say(_job_line(primary))
    except KeyboardInterrupt as exc:
        primary.job.record_outcome(exc)  # paused, as a Ctrl-C that reached the cell would have
        loop.close()  # the final checkpoint and views now (the traceback kept the loop open)
        print(f"interrupted: job {primary.job.id!r} is {primary.job.status} with {primary.job.done} done; "
              f"run the cell again to resume (this kernel keeps the lease meanwhile)")
    return primary
