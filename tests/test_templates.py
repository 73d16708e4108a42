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
