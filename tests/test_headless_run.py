"""A headless run's job loop (notebook.run under Kaggle's "Save & Run All"): log lines at a
steady pace instead of a widget, and a clean stop before its own session ends. In this
process, on a local store, with Kaggle's batch variable set and a 12 h Kaggle session on a
clock 40000x fast (its last 5 minutes come after about a second)."""

from __future__ import annotations

import re

import pytest

from sessionkit import notebook
from sessionkit.lease import read_lease
from sessionkit.store import open_store

LINE = re.compile(r"^\d\d:\d\d:\d\d job headless: running \d+/10000000, phase \w+, \d+:\d\d:\d\d left here$")


def test_a_headless_job_logs_its_state_and_stops_before_its_session_ends(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    monkeypatch.setenv("SESSIONKIT_LOG_EVERY", "0.2")
    url = str(tmp_path / "store")
    primary = notebook.start_primary(url, "headless", runtime="kaggle", time_scale=40000.0, lease_ttl=5.0,
                                     show=False)
    notebook.run(primary, notebook.demo_items(10 ** 7), notebook.demo_work(0.001))
    said = capsys.readouterr().out.splitlines()
    assert len([line for line in said if LINE.match(line)]) >= 3, said[:5]
    last = said[-1]
    assert last.startswith("this runtime's session ends in 0:0") and "stopped job 'headless' at" in last
    assert "released the lease" in last
    assert primary.job.status == "paused" and 0 < primary.job.done < 10 ** 7
    assert read_lease(open_store(url), "primary").holder is None, "the lease is free for a backup at once"


def test_a_bad_log_pace_names_the_variable(monkeypatch):
    monkeypatch.setenv("SESSIONKIT_LOG_EVERY", "0")
    with pytest.raises(ValueError, match="SESSIONKIT_LOG_EVERY must be a number of seconds > 0"):
        notebook.LogPace()
