"""Handover between real processes on a local folder store."""

from __future__ import annotations

import json
import signal

import pytest

import sessionkit
from sessionkit.jobs import list_jobs

from support.processes import expect_line, read_log, start, wait_for

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("skew", [0, 3600, -3600], ids=["same-wall-clock", "primary+1h", "primary-1h"])
def test_backup_finishes_the_job_of_a_sigkilled_primary(tmp_path, skew):
    """With wall clocks an hour apart (primary ahead or behind) the takeover waits exactly one
    ttl: expiry is judged on the backup's own monotonic clock, never by comparing wall clocks
    (which would take over at once, or an hour late). How fast it is, is measured in make bench."""
    url, log, ttl = str(tmp_path / "s"), tmp_path / "items.log", 2.0
    primary = start("handover_primary", url, log, 80, 0.03, ttl, 1, 0, skew)
    expect_line(primary, "holding")
    backup = start("handover_backup", url, log, 80, 0.03, ttl, 1, -skew)
    expect_line(backup, "watching")
    wait_for(lambda: log.exists() and len(log.read_text().splitlines()) >= 10, "the primary is mid-job", proc=primary)
    primary.send_signal(signal.SIGKILL)
    primary.wait()
    took = float(expect_line(backup, "holding")[2])
    out, err = backup.communicate(timeout=60)
    assert json.loads(out.splitlines()[-1]) == {"status": "completed", "done": 80}, err
    completed = [json.loads(line)["data"] for k in sessionkit.open_store(url).list("events/")
                 for line in sessionkit.open_store(url).get(k).data.splitlines()
                 if json.loads(line)["kind"] == "handover.completed"]
    assert [c["how"] for c in completed] == ["expired"]
    assert completed[0]["waited_s"] >= ttl, "the backup waited a whole ttl on its own clock"
    rows = read_log(log)
    assert {i for i, *_ in rows} == set(range(80))
    assert all(t == 2 for i, t, a, b in rows if a > took), "only the new holder works after takeover"
    assert [j.token for j in list_jobs(url) if j.id == "work"] == [2], "the last checkpoint is the backup's"


def test_planned_handover_on_a_scaled_clock(tmp_path):
    # A 20-minute runtime at 120x lasts 10 s; its handover phase (15 min left) comes after 2.5 s.
    url, log, ttl, scale = str(tmp_path / "s"), tmp_path / "items.log", 60.0, 120.0
    backup = start("handover_backup", url, log, 200, 0.02, ttl, scale)
    expect_line(backup, "watching")
    primary = start("handover_primary", url, log, 200, 0.02, ttl, scale, 1200)
    expect_line(primary, "holding")
    out, err = primary.communicate(timeout=60)
    result = json.loads(out.splitlines()[-1])
    assert result["handed_over"] and result["status"] == "paused", err
    out, err = backup.communicate(timeout=60)
    assert json.loads(out.splitlines()[-1]) == {"status": "completed", "done": 200}, err
    rows = read_log(log)
    assert sorted(i for i, *_ in rows) == list(range(200)), "every item exactly once"
    last_primary = max(b for i, t, a, b in rows if t == 1)
    first_backup = min(a for i, t, a, b in rows if t == 2)
    assert first_backup > last_primary, "never two at once (the gap's size is measured in make bench)"
    kinds = [json.loads(line)["kind"] for k in sessionkit.open_store(url).list("events/")
             for line in sessionkit.open_store(url).get(k).data.splitlines()]
    assert {"handover.requested", "handover.ready", "handover.completed"} <= set(kinds)
