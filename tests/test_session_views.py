"""Countdown, SessionBanner and HandoverStatus: HTML for notebooks, text elsewhere."""

from __future__ import annotations

import io
import json
import re

import pytest

import sessionkit
from sessionkit import Lease, Session
from sessionkit.clock import FakeClock
from sessionkit.runtimes import Runtime
from sessionkit.handover import Backup, Primary
from sessionkit.store.memory import MemoryStore
from sessionkit.widgets.session import Countdown, HandoverStatus, SessionBanner


def session(**kw):
    return Session(MemoryStore(), "primary", runtime=kw.pop("runtime", "colab-free"), clock=FakeClock(),
                   label="colab A", start=False, **kw)


def test_countdown_html_ticks_in_the_browser_from_the_snapshot():
    s = session()
    s.clock.advance(11.5 * 3600)
    view = Countdown(s, notebook=True)
    page = view.html()
    assert "30:00" in page and "warning" in page
    assert "<script>" in page and "setTimeout(tick" in page
    assert re.search(r"left0 = 1800\.0, elapsed0 = 41400\.0, rate = 1\.0, "
                     r'th = \{"warning": 3600\.0, "handover": 900\.0', page)
    assert "Date.now() - t0" in page  # counts from when the browser drew it: no clock skew


def test_countdown_uses_the_clock_speed():
    from sessionkit.clock import ScaledClock

    s = Session(MemoryStore(), "primary", runtime="colab-free", clock=ScaledClock(720), start=False)
    assert "rate = 720.0" in Countdown(s, notebook=True).html()


def test_countdown_without_limit_has_no_script():
    page = Countdown(session(runtime="local"), notebook=True).html()
    assert "no time limit" in page and "<script>" not in page


def test_text_fallbacks_write_a_line_per_update():
    out = io.StringIO()
    s = session()
    view = Countdown(s, stream=out, notebook=False)
    view.show()
    s.clock.advance(11.9 * 3600)
    view.update(s.snapshot())
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[colab A] primary on colab-free: 12:00:00 left (fresh)")
    assert lines[1].endswith("06:00 left (handover)")


def test_banner_and_handover_status_from_a_primary():
    store, clock = MemoryStore(), FakeClock()
    primary = Primary(store, "job-1", runtime=Runtime(max_runtime=1000), clock=clock, ttl=10, label="A")
    banner = SessionBanner(primary.session, notebook=False, stream=io.StringIO())
    text = banner.text()
    assert "role: primary" in text and "lease: primary token 1" in text and "job: job-1" in text
    assert "<table" in banner.html()
    status = HandoverStatus(primary, notebook=False, stream=io.StringIO())
    assert status.text().startswith("primary (job job-1; lease primary held by")
    backup = Backup(store, "B", clock=clock, ttl=10, runtime="local")
    backup.step()
    assert HandoverStatus(backup, notebook=False).text().startswith("watching: priority 1")


def test_primary_refreshes_views_only_when_phase_or_status_changes():
    store, clock = MemoryStore(), FakeClock()
    s = Session(store, "primary", runtime=Runtime(max_runtime=400), warning_at=300, handover_at=100,
                fresh_for=50, clock=clock, label="A")
    primary = Primary(store, "job", session=s, clock=clock, ttl=10)
    out = io.StringIO()
    primary.views.append(Countdown(primary.session, stream=out, notebook=False))
    for _ in primary.track(range(75), display=False):
        clock.advance(5)
    lines = out.getvalue().splitlines()
    phases = [line.rsplit("(", 1)[1].rstrip(")") for line in lines[:-1]]
    # one line per change (phase, or handover status "handing over"), not one per item
    assert phases == ["fresh", "active", "warning", "handover", "handover"], phases
    assert lines[-1] == "[A] session ended: completed"  # and a final line saying how it ended


def test_every_view_of_a_primary_ends_saying_what_happened():
    """Issue 12 (4): after completing or handing over, the handover line still said 'handing
    over; lease primary held by ... token 1', the banner's phase stayed 'handover', and
    nothing said that no backup answered a handover request."""
    store, clock = MemoryStore(), FakeClock()
    s = Session(store, "primary", runtime=Runtime(max_runtime=400), warning_at=300, handover_at=100,
                clock=clock, label="A")
    primary = Primary(store, "job", session=s, clock=clock, ttl=10)
    out = io.StringIO()
    primary.views += [HandoverStatus(primary, stream=out, notebook=False),
                      SessionBanner(primary.session, stream=out, notebook=False)]
    for i in primary.track(range(75), display=False):
        clock.advance(5)
        if i == 70:
            assert primary.handover_view.status == "handing over"
            assert primary.handover_view.detail == "no backup has answered yet; still working"
    lines = out.getvalue().splitlines()
    assert any(line.startswith("handing over: no backup has answered yet; still working") for line in lines)
    assert lines[-2] == "completed: 75 done (job job)"
    assert "phase: ended" in lines[-1]


def test_a_primary_that_handed_over_names_the_backup():
    store, clock = MemoryStore(), FakeClock()
    primary = Primary(store, "job", runtime=Runtime(max_runtime=1000), clock=clock, ttl=10, label="A")
    backup = Backup(store, "B", clock=clock, ttl=10, runtime="local")
    out = io.StringIO()
    primary.views.append(HandoverStatus(primary, stream=out, notebook=False))
    for _ in primary.track(range(1000), display=False):
        clock.advance(2)
        backup.step()
    assert primary.handed_over
    last = out.getvalue().splitlines()[-1]
    done = primary.job.done
    assert last.startswith(f"handed over: to B ({backup.session.id[:8]}) at {done}/1000"), last
    # issue 26 (6): the handed-over primary's progress ended grey and "paused"
    from sessionkit.widgets.text import describe
    line = describe(primary.job.progress)
    assert line == f"job 'job' handed over to B ({backup.session.id[:8]}) at {done}/1000", line
    assert HandoverStatus.COLOURS["handed over"] not in (HandoverStatus.COLOURS["paused"],
                                                         HandoverStatus.COLOURS["stopped"])
    from sessionkit.widgets.progress import JobProgress
    bar = JobProgress(primary.job.progress)
    assert bar.bar.description == "handed over" and bar.colour not in ("#9e9e9e", "#7f7f7f")


def test_views_read_from_the_store_say_handed_over_not_paused():
    """Issue 26 (6), from another kernel: show_again and a backup read the job from the store,
    where a handed-over job's manifest says only "paused"; the request and its answer say to
    whom, so the view read from the store says what the primary's own view says."""
    from sessionkit.status import live_view
    from sessionkit.widgets.text import describe

    store, clock = MemoryStore(), FakeClock()
    primary = Primary(store, "job", runtime=Runtime(max_runtime=1000), clock=clock, ttl=10, label="A")
    backup = Backup(store, "B", clock=clock, ttl=10, runtime="local")
    for _ in primary.track(range(1000), display=False):
        clock.advance(2)
        backup.step()
    assert primary.handed_over
    seen = live_view(store, clock=clock).progress
    assert seen.status == "paused", "the backup has not taken the job on yet"
    assert describe(seen) == describe(primary.job.progress), describe(seen)
    assert describe(seen).startswith(f"job 'job' handed over to B ({backup.session.id[:8]}) at ")


def test_a_paused_job_that_was_not_handed_over_reads_paused():
    """The other side: a job paused from elsewhere (``sessionkit pause``) was handed to no one."""
    from sessionkit.jobs.control import request
    from sessionkit.status import live_view
    from sessionkit.widgets.text import describe

    store, clock = MemoryStore(), FakeClock()
    primary = Primary(store, "job", runtime="local", clock=clock, ttl=10, label="A", checkpoint_items=1)
    for i in primary.track(range(50), display=False):
        clock.advance(1)
        if i == 5:
            request(store, "job", "pause")
    primary.close()
    assert 5 < primary.job.done < 50
    seen = live_view(store, clock=clock).progress
    assert seen.status == "paused" and seen.handed_to is None
    assert "handed over" not in describe(seen) and "paused" in describe(seen), describe(seen)


def test_a_primary_that_lost_its_lease_says_to_whom():
    store, clock = MemoryStore(), FakeClock()
    primary = Primary(store, "job", runtime="local", clock=clock, ttl=10, label="A")
    out = io.StringIO()
    primary.views.append(HandoverStatus(primary, stream=out, notebook=False))
    it = primary.track(range(100), display=False)
    next(it)
    thief = Lease(store, "primary", holder="thief", ttl=10, clock=clock)
    thief.observe()
    primary.lease.stop_renewing()  # a frozen runtime: its background renewals stop too
    clock.advance(30)  # the primary's loop did not renew meanwhile
    thief.acquire(timeout=0)
    with pytest.raises(sessionkit.LeaseLost):
        for _ in it:
            clock.advance(1)
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("lease lost: to a runtime (thief), token 2: it is primary now"), last


def test_views_re_attach_from_the_store(capsys):
    """A new cell (or the backup's runtime) shows the live countdown, banner and progress."""
    from sessionkit import widgets
    from sessionkit.clock import FakeClock
    from sessionkit.handover import Primary
    from sessionkit.runtimes import Runtime
    from sessionkit.store.memory import MemoryStore

    from sessionkit.livefeed import live_feed

    store = MemoryStore()
    assert widgets.show(live_feed(store), where=store.url).session is None
    assert f"no primary has written to {store.url}" in capsys.readouterr().out
    clock = FakeClock()
    primary = Primary(store, "job", runtime=Runtime(max_runtime=3600, name="hour"), clock=clock, ttl=7200,
                      label="A", checkpoint_items=5)
    it = primary.track(range(40), display=False)
    for _ in range(21):
        next(it)
    clock.advance(600)
    primary.session.beat()  # its last heartbeat: 3000 s left
    clock.advance(100)  # shown 100 s later
    live = widgets.show(live_feed(store, clock=clock, watch=False))
    shown = capsys.readouterr().err
    assert live.progress.done == 20 and live.progress.total == 40 and live.progress.job == "job"
    assert live.session.label == "A" and live.session.remaining_s == pytest.approx(2900)
    assert "[A] primary on hour" in shown and "job 'job' running 20/40" in shown
    it.close()
    primary.close()


def test_show_from_another_thread_watches_the_job_live_until_it_ends(capsys):
    """Issue 26 (4): show_again from a second kernel drew one snapshot that never updated
    ("running 54/90" after the job finished). A primary runs on its own thread (as another
    kernel would), on the real clock; show watches the store until the job completes."""
    import threading

    from sessionkit import widgets
    from sessionkit.livefeed import live_feed

    store = MemoryStore()
    primary = Primary(store, "job", runtime="local", ttl=60, label="A", checkpoint_items=2)
    started = threading.Event()

    def run():
        for item in primary.track(range(40), display=False):
            started.set()
            threading.Event().wait(0.1)  # the item's work: 4 s in all

    worker = threading.Thread(target=run)
    worker.start()
    started.wait(10)
    try:
        live = widgets.show(live_feed(store, until=60))
    finally:
        worker.join(30)
        primary.close()
    captured = capsys.readouterr()
    assert live.progress.status == "completed" and live.progress.done == 40
    assert captured.out.strip().splitlines()[-1] == "job job 40/40: ended: completed"
    counts = {line for line in captured.err.splitlines() if "job 'job' running" in line}
    assert len(counts) >= 2, f"redrawn as the job moved on: {counts}"


def test_show_stops_watching_after_until_and_says_the_job_still_runs(capsys):
    from sessionkit import widgets
    from sessionkit.livefeed import live_feed

    store, clock = MemoryStore(), FakeClock()
    primary = Primary(store, "job", runtime="local", clock=clock, ttl=7200, checkpoint_items=1)
    it = primary.track(range(10), display=False)
    next(it), next(it)
    started = clock.monotonic()
    snapshots = list(live_feed(store, clock=clock, until=30))  # a FakeClock's sleep moves it: 15 polls of 2 s
    assert len(snapshots) == 16 and clock.monotonic() - started == pytest.approx(30)
    widgets.show(iter(snapshots))
    assert capsys.readouterr().out.strip().endswith(": still running: stopped watching")
    it.close()
    primary.close()


def test_the_old_show_with_a_store_still_works_and_says_it_is_deprecated(capsys):
    """Issue 28 (7): views render snapshots only; ``widgets.show(store)`` from old notebooks
    keeps working through the live feed, with a DeprecationWarning naming what to call."""
    from sessionkit import widgets

    store, clock = MemoryStore(), FakeClock()
    primary = Primary(store, "job", runtime="local", clock=clock, ttl=7200, checkpoint_items=1)
    it = primary.track(range(10), display=False)
    next(it), next(it)
    with pytest.warns(DeprecationWarning, match="show_again"):
        live = widgets.show(store, clock=clock, watch=False)
    assert live.progress.done == 1 and "job 'job' running 1/10" in capsys.readouterr().err
    with pytest.warns(DeprecationWarning, match="livefeed.WATCH_PACE_S"):
        assert widgets.WATCH_PACE_S[False] == 2.0
    it.close()
    primary.close()


def test_rates_and_eta_are_in_real_time_on_a_scaled_clock_and_say_the_scale():
    """Issue 12 (6): on a 720x clock a job doing 2 items a second showed '0.00273 it/s' and
    an ETA of hours for a one-minute run."""
    from sessionkit.clock import ScaledClock
    from sessionkit.jobs import Job
    from sessionkit.widgets.text import describe

    clock = ScaledClock(720)
    job = Job(MemoryStore(), "j", clock=clock)
    p = job.progress
    p = type(p)(**{**p.as_dict(), "status": "running", "done": 40, "total": 160,
                   "rate": 2 / 720, "eta": 120 / (2 / 720)})  # 2 items per real second, as measured
    line = describe(p)
    assert "2 it/s" in line and "ETA 01:00" in line, line
    assert "(real time; clock x720)" in line
    assert "clock x" not in describe(Job(MemoryStore(), "k").progress)


def test_a_backup_shows_the_primarys_progress_and_warns_when_its_own_runtime_is_too_short():
    """Issue 12 (5): a backup started together with the primary showed one line of jargon
    while watching, and once it took over it was itself about to expire."""
    from sessionkit.status import live_view, primary_seen
    from sessionkit.widgets.session import PrimaryWatch

    store, clock = MemoryStore(), FakeClock()
    primary = Primary(store, "job", runtime=Runtime(max_runtime=3000, name="short"), clock=clock, ttl=60,
                      label="A", checkpoint_items=10)
    backup = Backup(store, "B", clock=clock, ttl=60, runtime=Runtime(max_runtime=3000, name="short"))
    it = primary.track(range(200), display=False)
    for _ in range(101):
        next(it)
        clock.advance(10)  # 10 s an item: 100 items done in 1000 s, 1000 s more to go
    backup.step()
    seen = primary_seen(live_view(store, clock=clock), backup.session.remaining)
    assert (seen.label, seen.job, seen.done, seen.total) == ("A", "job", 100, 200)
    assert seen.remaining_s == pytest.approx(2000, abs=20) and seen.needs_s == pytest.approx(1000, rel=0.05)
    line = PrimaryWatch(seen, notebook=False).text()
    assert line.startswith("primary A: 33:10 left · job 'job' running 100/200 (50%) · 0.1 it/s · ETA 16:4"), line
    assert "WARNING" not in line  # 2000 s left here, 1000 s needed

    clock.advance(1500)  # the backup began with the primary: 490 s left, 1000 s needed
    seen = primary_seen(live_view(store, clock=clock), backup.session.remaining)
    warning = PrimaryWatch(seen, notebook=False).text().splitlines()[-1]
    assert warning.startswith("WARNING: this runtime has 08:10 left, less than the job needs (16:40)"), warning
    assert "Start a backup later" in warning
    it.close()
    primary.close()
    backup.close()


def test_every_html_view_carries_when_it_was_drawn_and_a_live_one_can_go_stale():
    """Issue 26: after a reload the countdown ran on to "expired" and the banner kept "lease
    held" above "session ended": a view cut off from the kernel must say it is stale."""
    from sessionkit.widgets.session import STALE_WORDS, SessionBanner

    s = session()
    live = Countdown(s, notebook=True).page()
    assert re.search(r'class="sk-view" data-updated="\d{13}"', live)
    assert "data-stale" in live and json.dumps(STALE_WORDS) in live
    assert 'textContent = "stale"' in live, "a stale countdown stops ticking instead of reaching expired"
    s.end("completed")
    for ended in (Countdown(s, notebook=True).page(), SessionBanner(s, notebook=True).page()):
        assert 'data-updated="' in ended and "data-stale" not in ended, "the last word never goes stale"


def test_a_running_primary_redraws_its_page_views_so_the_page_knows_they_are_live(capsys):
    """On a page, a view not redrawn for STALE_AFTER_S is marked stale: a running primary
    redraws its page views every VIEW_KEEPALIVE_S (a text line elsewhere is not repeated)."""
    from IPython.core.interactiveshell import InteractiveShell

    from sessionkit.handover.primary import VIEW_KEEPALIVE_S

    InteractiveShell.instance()  # a real IPython shell: its display publisher prints each drawing
    clock = FakeClock()
    primary = Primary(MemoryStore(), "j", runtime="local", clock=clock, ttl=7200, poll=1.0)
    banner = SessionBanner(primary.session, notebook=True)
    banner.show()
    primary.views.append(banner)
    drawn = []
    try:
        for _ in primary.track(range(13), display=False):
            clock.advance(VIEW_KEEPALIVE_S / 4)  # nothing changes for 3 keepalives
            drawn.append(capsys.readouterr().out.count("IPython.core.display.HTML object"))
    finally:
        primary.close()
        InteractiveShell.clear_instance()
    assert sum(drawn[1:]) >= 2, f"redrawn every VIEW_KEEPALIVE_S though nothing changed: {drawn}"


def test_the_backups_line_says_handed_over_at_n_as_soon_as_the_store_says_so():
    """Issue 26 (5): the backup showed 99/140 after the primary had handed over at 113, and
    its line began "primary primary:" (the notebook's label is "primary")."""
    from sessionkit.status import live_view, primary_seen
    from sessionkit.widgets.session import PrimaryWatch

    store, clock = MemoryStore(), FakeClock()
    primary = Primary(store, "job", runtime="local", clock=clock, ttl=60, label="primary", checkpoint_items=1)
    it = primary.track(range(30), display=False)
    for _ in range(14):
        next(it)
        clock.advance(1)
    line = PrimaryWatch(primary_seen(live_view(store, clock=clock), None), notebook=False).text()
    assert line.startswith("primary: ") and "primary primary" not in line, line
    it.close()  # the loop stops at 13 done: the lease is released, the job paused
    primary.close()
    line = PrimaryWatch(primary_seen(live_view(store, clock=clock), None), notebook=False).text()
    assert line.startswith("primary handed over at 13/30"), line


def test_the_progress_line_keeps_the_bar_wide_and_puts_the_forecast_on_a_quieter_second_line():
    """Issue 26 (7): the line squeezed the bar to 50-70 px and wrapped, the forecast inline."""
    from sessionkit.jobs import Job
    from sessionkit.widgets.progress import JobProgress
    from sessionkit.widgets.text import describe_lines

    job = Job(MemoryStore(), "j", clock=FakeClock())
    p = job.progress
    p = type(p)(**{**p.as_dict(), "status": "running", "done": 40, "total": 160, "rate": 1 / 360,
                   "eta": 120 * 360, "runtime_left": 3600.0, "clock_rate": 720.0})
    main, details = describe_lines(p)
    assert "needs" in details and "needs" not in main, (main, details)
    bar = JobProgress(p)
    assert bar.bar.layout.min_width == "160px" and bar.bar.layout.flex.startswith("0 0")
    assert "white-space:nowrap" in bar.label.value and "<small" in bar.label.value


def test_the_progress_line_and_its_forecast_are_all_in_real_time_on_a_scaled_clock():
    """Issue 26 (7): "ETA 00:47 · needs a handover: needs 9.4 h, runtime has 9.3 h" put a
    real-time ETA beside scaled hours. On a x720 clock a job doing 2 items a real second with
    120 left needs a real minute; its runtime's 9.3 clock hours are 46.5 real seconds."""
    from sessionkit.clock import ScaledClock
    from sessionkit.jobs import Job
    from sessionkit.widgets.text import describe_lines

    job = Job(MemoryStore(), "j", clock=ScaledClock(720))
    p = job.progress
    p = type(p)(**{**p.as_dict(), "status": "running", "done": 40, "total": 160, "rate": 2 / 720,
                   "eta": 120 * 360, "runtime_left": 9.3 * 3600, "clock_rate": 720.0})
    main, details = describe_lines(p)
    assert "2 it/s ETA 01:00" in main and "(real time; clock x720)" in main, main
    assert details == "needs a handover: needs 1 min, runtime has 46 s (real time)", details
    assert not re.search(r"\d h\b", main + details), "no clock hours beside real seconds"


def test_the_backup_watch_line_says_which_clock_each_number_is_on():
    """Issue 26 (7): the backup's line put the primary's scaled time left beside a real ETA."""
    from sessionkit.status import PrimarySeen
    from sessionkit.widgets.session import PrimaryWatch

    seen = PrimarySeen("A", 4 * 3600.0, "j", "running", 99, 140, 2 / 720, 42 * 360.0, None)
    line = PrimaryWatch(seen, rate=720.0, notebook=False).text()
    assert line.startswith("primary A: 4:00:00 left (clock x720) · job 'j' running 99/140 (71%)"), line
    assert line.endswith("2 it/s · ETA 00:21 (real time)"), line


def test_show_again_keeps_watching_a_paused_job_until_a_backup_takes_it_on_and_completes(capsys):
    """Issue 26 (4), seen in the browser: the handed-over primary's show_again looked at the
    store at once, found the job paused with no primary running it (the backup had not yet
    taken it on) and ended "paused: no primary runs it now" while the backup went on to
    complete it. The feed keeps watching; a job nobody takes on ends it after the patience."""
    from sessionkit import widgets
    from sessionkit.livefeed import UNATTENDED_PATIENCE_S, WATCH_PACE_S, live_feed

    store, clock = MemoryStore(), FakeClock()
    primary = Primary(store, "job", runtime="local", clock=clock, ttl=10, label="A", checkpoint_items=1)
    it = primary.track(range(20), display=False)
    for _ in range(8):
        next(it)
    it.close()  # stops at 7 done: its lease released, its session ended
    primary.close()
    feed = live_feed(store, clock=clock)
    assert next(feed).progress.done == 7
    assert next(feed).progress.done == 7  # still watching: a backup may take it on
    backup = Backup(store, "B", clock=clock, ttl=10, runtime="local")
    taken = None
    while taken is None:
        taken = backup.step()
        clock.advance(backup.poll)
    for _ in taken.track(range(20), display=False):
        pass
    live = widgets.show(feed)
    assert live.progress.status == "completed" and live.progress.done == 20
    assert capsys.readouterr().out.strip().splitlines()[-1] == "job job 20/20: ended: completed"
    taken.close()

    store, clock = MemoryStore(), FakeClock()
    primary = Primary(store, "job", runtime="local", clock=clock, ttl=10, label="A", checkpoint_items=1)
    it = primary.track(range(20), display=False)
    next(it), next(it)
    it.close()
    primary.close()
    started = clock.monotonic()
    widgets.show(live_feed(store, clock=clock))  # nobody takes it on
    assert clock.monotonic() - started == pytest.approx(UNATTENDED_PATIENCE_S + WATCH_PACE_S[False], abs=2.1)
    assert capsys.readouterr().out.strip().endswith(("paused: no primary runs it now", "stopped watching"))


def test_a_closed_bar_stays_on_the_page_as_plain_html_needing_no_widget_model():
    """Seen in Notebook 6 with ipywidgets 7.7.1 (Colab's): once the loop ended the kernel
    dropped the widget, ipywidgets 7's ``Widget.__del__`` closed it and the page removed the
    bar, leaving only the printed line. Closing now draws the final state as plain HTML."""
    from IPython.core.interactiveshell import InteractiveShell

    from sessionkit.jobs import Job
    from sessionkit.widgets.progress import JobProgress

    shell = InteractiveShell.instance()
    shown = []
    shell.display_pub.publish = lambda data, metadata=None, **kw: shown.append((data, kw))
    try:
        job = Job(MemoryStore(), "j", clock=FakeClock())
        p = job.progress
        bar = JobProgress(type(p)(**{**p.as_dict(), "status": "running", "done": 3, "total": 4}))
        bar.show()
        bar.update(type(p)(**{**p.as_dict(), "status": "completed", "done": 4, "total": 4}))
        bar.close()
    finally:
        InteractiveShell.clear_instance()
    last, how = shown[-1]
    assert how.get("update") and "application/vnd.jupyter.widget-view+json" not in last, last.keys()
    page = last["text/html"]
    assert "class='sk-bar-fill' style='width:100.0%" in page and "#2ca02c" in page, page
    assert "job &#x27;j&#x27; completed 4/4 100%" in page and last["text/plain"].startswith("job 'j' completed")
