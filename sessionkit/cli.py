"""The ``sessionkit`` command: watch and steer sessions and jobs from a terminal.

Every subcommand has ``--help``. Exit codes: 0 done, 1 a check failed (demo, doctor) or
nothing matched, 2 an error (one line on stderr, no traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
from urllib.parse import unquote
import re
import sys
import time
from datetime import timedelta
from typing import Any, Optional, Sequence

from . import __version__
from .status import status_data  # the read model cli and demo share
from .errors import CommandError, NotFound, SessionkitError
from .store import Store, open_store

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``24h``, ``7d``."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 30m, 24h or 7d")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def _open(url: str, *, check: bool = True) -> Store:
    """Open an existing store; a missing folder is an error here (the library would create it)."""
    path = unquote(url[len("file://"):]) if url.startswith("file://") else url
    if "://" not in path:
        url = path
        if not os.path.exists(url):
            raise CommandError(f"no store at {url}: the folder does not exist")
        if not os.path.isdir(url):
            raise CommandError(f"{url} is not a store folder")
        if not os.access(url, os.R_OK | os.X_OK):
            raise CommandError(f"cannot read the store folder {url}: permission denied")
    return open_store(url, check=check)


# -- status ---------------------------------------------------------------------

def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "  (none)"
    cells = [[("-" if r.get(c) is None else str(r.get(c)))[:40] for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  " + "  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _fmt_status(data: dict[str, Any]) -> str:
    sessions = [dict(s, id=(s["id"] or "")[:8], remaining=_left(s.get("remaining_s"))) for s in data["sessions"]]
    leases = [dict(l, holder=(l["holder"] or "(free)")[:8]) for l in data["leases"]]
    return "\n".join([
        "sessions:", _table(sessions, ["id", "role", "label", "status", "phase", "remaining", "stalled",
                                       "last_heartbeat"]),
        "leases:", _table(leases, ["name", "holder", "token", "expires_in_s"]),
        "jobs:", _table(data["jobs"], ["id", "status", "done", "total", "stage", "updated"]),
    ] + (["damaged records (left out above; move them away or write the key again):"]
         + [f"  {d['key']}: {d['reason']}" for d in data["damaged"]] if data["damaged"] else []))


def _left(seconds: Optional[float]) -> str:
    from .jobs.progress import format_seconds

    return "no limit" if seconds is None else format_seconds(seconds)


def cmd_status(args: argparse.Namespace) -> int:
    store = _open(args.store)
    while True:
        data = status_data(store)
        if args.json:
            print(json.dumps(data, default=str))
        else:
            if args.watch:
                print("\033[2J\033[H", end="")
            print(_fmt_status(data))
        if not args.watch:
            return 0
        sys.stdout.flush()
        time.sleep(args.interval)


# -- jobs -----------------------------------------------------------------------

def cmd_jobs(args: argparse.Namespace) -> int:
    from . import jobs
    from .jobs.manifest import STATUSES, load

    store = _open(args.store)
    if args.action == "list":
        rows = [vars(j) for j in jobs.list_jobs(store)]
        print(json.dumps(rows, default=str) if args.json else _table(rows, ["id", "status", "done", "total",
                                                                          "stage", "updated"]))
        return 0
    if args.action == "clear":
        statuses = args.status or list(jobs.FINISHED)
        bad = [s for s in statuses if s not in STATUSES]
        if bad:
            raise CommandError(f"unknown status {bad[0]!r}; statuses: {', '.join(STATUSES)}")
        cleared = jobs.clear(store, older_than=args.older_than, statuses=statuses)
        print(f"cleared {len(cleared)} job(s)" + (f": {', '.join(cleared)}" if cleared else ""))
        return 0
    if not args.job:
        raise CommandError(f"jobs {args.action} needs a JOB id (see: sessionkit jobs list {args.store})")
    if args.action == "show":
        loaded = load(store, args.job)
        if loaded is None:
            raise CommandError(f"no job {args.job!r} in {store.url}")
        m = loaded.manifest.to_json()
        m.pop("segments", None)
        print(json.dumps(m, indent=2, default=str))
        return 0
    try:
        control = jobs.request(store, args.job, args.action)
    except NotFound as exc:
        raise CommandError(str(exc)) from None
    print(f"asked job {args.job!r} to {args.action} (request {control.id[:8]}); a running loop "
          f"notices within about a second")
    return 0


# -- history, approve, gc -------------------------------------------------------

def cmd_history(args: argparse.Namespace) -> int:
    from . import history

    store = _open(args.store)
    df = history.load(store)
    if args.csv:
        df.to_csv(args.csv, index=False)
        print(f"wrote {len(df)} events to {args.csv}")
    if args.plot:
        from . import plots

        os.makedirs(args.plot, exist_ok=True)
        for name in ("timeline", "progress", "throughput"):
            path = os.path.join(args.plot, f"{name}.png")
            getattr(plots, name)(df).savefig(path, dpi=110)
            print(f"wrote {path}")
    if not args.csv and not args.plot:
        print(f"{len(df)} events" + (f"; {history.units_note(df)}" if history.units_note(df) else ""))
        for name, table in (("sessions", history.sessions(df)), ("jobs", history.jobs(df)),
                            ("handovers", history.handovers(df)), ("gaps", history.gaps(df))):
            print(f"\n{name}:")
            print(history.readable(table).to_string(index=False) if len(table) else "  (none)")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    from . import handover

    store = _open(args.store)
    try:
        handover.approve(store, args.request, lease_name=args.lease, by="sessionkit approve")
    except NotFound as exc:
        raise CommandError(str(exc)) from None
    print(f"approved {args.request}")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from . import events, jobs
    from .handover.cleanup import remove_stale
    from .sessions import remove_ended

    store = _open(args.store)
    cleared = jobs.clear(store, older_than=args.older_than)
    sessions = remove_ended(store, older_than=args.sessions_older_than)
    handovers = remove_stale(store, older_than=args.sessions_older_than)
    merged = events.compact(store)
    swept = store.sweep() if hasattr(store, "sweep") else 0
    print(f"removed {len(cleared)} finished job(s), {len(sessions)} ended session record(s) and "
          f"{handovers} old handover record(s); merged {merged} event file(s); removed {swept} "
          f"abandoned temp file(s)")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import doctor

    store = _open(args.store, check=False)  # diagnose even a service open_store would refuse
    try:
        report = doctor(store, list_wait=args.list_wait)
    finally:
        store.close()
    print(json.dumps(report.to_json()) if args.json else report.table())
    return 0 if report.ok else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from . import demo

    return 0 if demo.run(args.store, items=args.items, item_seconds=args.item_seconds, scale=args.scale) else 1


def cmd_login(args: argparse.Namespace) -> int:
    from . import login

    result = login.login(args.client_secrets, args.save, open_browser=not args.no_browser)
    print(login.how_to_use(result.path))
    return 0


# -- the parser -----------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sessionkit", description="Keep notebook work alive across "
                                     "runtimes that end. STORE is a folder path or a store URL.")
    parser.add_argument("--version", action="version", version=f"sessionkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("status", help="sessions, leases and jobs in a store",
                       description="Show sessions, leases and jobs. --json prints the fixed shape "
                       "documented in docs/cli.md.")
    p.add_argument("store", metavar="STORE")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--watch", action="store_true", help="refresh until interrupted")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (default 2)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("jobs", help="list, show, cancel, pause, resume or clear jobs",
                       description="Work with jobs. cancel/pause/resume ask a running loop to stop "
                       "or go on; it notices within about a second.")
    p.add_argument("action", choices=["list", "show", "cancel", "pause", "resume", "clear"])
    p.add_argument("store", metavar="STORE")
    p.add_argument("job", metavar="JOB", nargs="?", help="job id (show, cancel, pause, resume)")
    p.add_argument("--json", action="store_true", help="machine-readable output (list)")
    p.add_argument("--older-than", type=parse_duration, default=timedelta(hours=24),
                   help="clear: only jobs not updated for this long (default 24h)")
    p.add_argument("--status", action="append", help="clear: statuses to remove (repeatable; default: "
                   "completed, failed, cancelled)")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("history", help="events as a table, CSV, or PNG plots",
                       description="Summarise the store's history; --csv writes every event, --plot "
                       "writes timeline.png, progress.png and throughput.png.")
    p.add_argument("store", metavar="STORE")
    p.add_argument("--csv", metavar="FILE", help="write every event to this CSV file")
    p.add_argument("--plot", metavar="DIR", help="write the plots as PNG into this folder")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("approve", help="let a waiting backup take over",
                       description="Grant a backup's approval request (its id is in the backup's "
                       "output and in `sessionkit status`).")
    p.add_argument("store", metavar="STORE")
    p.add_argument("request", metavar="REQUEST")
    p.add_argument("--lease", default="primary", help="lease name (default primary)")
    p.set_defaults(func=cmd_approve)

    p = sub.add_parser("gc", help="remove old finished jobs, merge event files, sweep temp files",
                       description="Housekeeping: remove jobs finished longer ago than --older-than, "
                       "merge closed event segments, remove temp files left by crashed writers.")
    p.add_argument("store", metavar="STORE")
    p.add_argument("--older-than", type=parse_duration, default=timedelta(hours=24),
                   help="age of finished jobs to remove (default 24h)")
    p.add_argument("--sessions-older-than", type=parse_duration, default=timedelta(days=30),
                   help="age of ended session records and of old handover answers and approvals to "
                        "remove (default 30d; history keeps them: it is built from events)")
    p.set_defaults(func=cmd_gc)

    p = sub.add_parser("doctor", help="check on the live store what sessionkit relies on, and measure it",
                       description="Check create-only writes, stale compare-and-swap and delete, "
                       "read-after-write, listing lag, round trip and upload speed on the live store (and "
                       "the backend's own checks), writing only under doctor/ and removing it. Exit 1 when "
                       "something the store needs does not hold.")
    p.add_argument("store", metavar="STORE")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--list-wait", type=float, default=30.0, metavar="S",
                   help="seconds to wait for a new key to be listed (default 30)")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("demo", help="the whole story: a planned handover and a takeover, in ~90 s",
                       description="Three runtimes as real processes on a new local folder store: A runs "
                       "a job through a 12-hour Colab runtime on a fast clock and hands it over to B; B is "
                       "killed and C takes over. Prints what happens, writes the history plots, summarises.")
    p.add_argument("--store", metavar="DIR", help="an empty folder for the demo store (default: a new temp folder)")
    p.add_argument("--items", type=int, default=800, help="items in the job (default 800)")
    p.add_argument("--item-seconds", type=float, default=0.1, help="real seconds per item (default 0.1)")
    p.add_argument("--scale", type=float, default=720.0, help="clock speed-up (default 720: 12 h in 60 s)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("login", help="sign in to Google Drive with a browser and save the credentials",
                       description="Run Google's installed-app sign-in (your own OAuth client, the Drive "
                       "scope) on this machine, save the credentials with mode 600, and print how to give "
                       "them to Colab or Kaggle as a secret. Needs google-auth-oauthlib "
                       "(pip install \"sessionkit-runtime[login]\"); see docs/gdrive.md.")
    p.add_argument("--client-secrets", metavar="FILE",
                   help="your Desktop app OAuth client's JSON (default: $SESSIONKIT_OAUTH_CLIENT_SECRETS)")
    p.add_argument("--save", metavar="PATH",
                   help="where to save the credentials (default ~/.config/sessionkit/gdrive-credentials.json)")
    p.add_argument("--no-browser", action="store_true",
                   help="print the sign-in address instead of opening a browser (open it on this machine)")
    p.set_defaults(func=cmd_login)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``sessionkit`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (CommandError, SessionkitError, ValueError, OSError) as exc:
        print(f"sessionkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sessionkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
