"""The starter files in templates/ work as shipped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sessionkit import config

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def test_resumable_job_template_runs_and_resumes(tmp_path):
    args = [sys.executable, str(TEMPLATES / "resumable_job.py"), "--store", str(tmp_path / "s"),
            "--out", str(tmp_path / "results.jsonl")]
    first = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "completed, 50 items done, 50 results" in first.stdout
    second = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert "50 results" in second.stdout, "running it twice does nothing twice"


def test_config_template_loads(tmp_path):
    cfg = config.load(TEMPLATES / "sessionkit.ini")
    assert cfg.store == "sessionkit-state" and cfg.runtime.name == "colab-free"
    assert (cfg.warning_at, cfg.handover_at, cfg.lease_ttl) == (3600, 900, 60)
    assert cfg.webhook_url is None and cfg.webhook() is None


def test_config_errors_name_the_file_and_value(tmp_path):
    bad = tmp_path / "bad.ini"
    bad.write_text("[runtime]\npreset = colab-ultra\n")
    with pytest.raises(ValueError, match="bad.ini.*colab-ultra"):
        config.load(bad)
    bad.write_text("[lease]\nttl = soon\n")
    with pytest.raises(ValueError, match="ttl = 'soon'"):
        config.load(bad)
    with pytest.raises(ValueError, match="no configuration file"):
        config.load(tmp_path / "missing.ini")


def test_config_custom_runtime_and_webhook(tmp_path):
    ini = tmp_path / "s.ini"
    ini.write_text("[runtime]\npreset = kaggle\nmax_runtime = 3600\n[webhook]\nurl = https://ntfy.sh/t\nformat = ntfy\n")
    cfg = config.load(ini)
    assert cfg.runtime.max_runtime == 3600 and cfg.webhook_format == "ntfy"


def test_config_drives_primary_and_backup_and_its_webhook_is_started_once(tmp_path):
    """Issue 17: Config was read by nothing (a Backup could not take the phase thresholds),
    and calling webhook() twice subscribed twice, so every notification went out twice."""
    from sessionkit import events
    from sessionkit.clock import FakeClock
    from sessionkit.handover import Backup

    ini = tmp_path / "s.ini"
    ini.write_text(f"[store]\nurl = {tmp_path / 'store'}\n[runtime]\npreset = kaggle\nmax_runtime = 7200\n"
                   "[phases]\nwarning_at = 1800\nhandover_at = 600\n[lease]\nttl = 30\n"
                   "[webhook]\nurl = http://127.0.0.1:9/hook\n")
    cfg = config.load(ini)
    before = len(events._listeners)
    hook = cfg.webhook()
    try:
        assert cfg.webhook() is hook and config.load(ini).webhook() is hook
        assert len(events._listeners) == before + 1, "one subscription, however often it is asked for"
        clock = FakeClock()
        primary = cfg.primary("job", clock=clock)
        assert (primary.session.warning_at, primary.session.handover_at) == (1800, 600)
        assert primary.lease.ttl == 30 and primary.session.runtime.max_runtime == 7200
        assert str(tmp_path / "store") in primary.store.url
        backup = cfg.backup("B", clock=clock)
        assert isinstance(backup, Backup) and backup.session.handover_at == 600 and backup.lease.ttl == 30
        clock.advance(7200 - 600 - 1)
        assert backup.session.phase == "warning"
        clock.advance(2)
        assert backup.session.phase == "handover"
        primary.close()
    finally:
        hook.close()
    assert cfg.webhook() is not hook, "a closed notifier is replaced"
    cfg.webhook().close()


def test_the_notebooks_take_their_settings_from_a_config_file(tmp_path):
    """CONFIG in the primary and backup notebooks: the file's runtime, phases and lease ttl
    replace the notebook's, and its store is used when STORE is empty."""
    from sessionkit import notebook

    ini = tmp_path / "s.ini"
    ini.write_text(f"[store]\nurl = {tmp_path / 'store'}\n[runtime]\npreset = kaggle\nmax_runtime = 7200\n"
                   "[phases]\nwarning_at = 1800\nhandover_at = 600\n[lease]\nttl = 30\n")
    primary = notebook.start_primary("", "job", runtime="colab-free", lease_ttl=60, show=False, config=str(ini))
    try:
        assert str(tmp_path / "store") in primary.store.url
        assert primary.session.runtime.max_runtime == 7200 and primary.lease.ttl == 30
        assert (primary.session.warning_at, primary.session.handover_at) == (1800, 600)
    finally:
        primary.close()
    backup = notebook.start_backup(str(tmp_path / "store"), job="job", show=False, timeout=0.01,
                                   config=config.load(ini))
    try:  # the primary released its lease with the job pending: the backup took it over
        assert backup is not None and backup.lease.token == 2
        assert backup.session.runtime.max_runtime == 7200 and backup.session.handover_at == 600
        assert backup.lease.ttl == 30
    finally:
        backup.close()
    with pytest.raises(ValueError, match="bad.ini"):
        notebook.start_primary("", "job", show=False, config=str(tmp_path / "bad.ini"))
