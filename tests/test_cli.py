"""The ``sessionkit`` command, run as users run it: a real process."""

from __future__ import annotations

import subprocess
import sys


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sessionkit", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_help_lists_the_demo():
    res = run("--help")
    assert res.returncode == 0 and "demo" in res.stdout


def test_demo_help():
    res = run("demo", "--help")
    assert res.returncode == 0 and "--store" in res.stdout


def test_demo_runs_on_a_local_folder_and_checks_hold(tmp_path):
    res = run("demo", "--store", str(tmp_path / "s"), "--workers", "3", "--increments", "40")
    assert res.returncode == 0, res.stderr
    assert "counter = 120 (expected 120): no update lost" in res.stdout
    assert "TORN" not in res.stdout and "All checks hold." in res.stdout
    assert (tmp_path / "s" / "demo" / "counter.skv").is_file()


def test_bad_arguments_give_one_line_error_without_traceback(tmp_path):
    res = run("demo", "--store", str(tmp_path / "s"), "--workers", "0")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().count("\n") == 0 and "workers" in res.stderr


def test_unknown_command_fails():
    res = run("frobnicate")
    assert res.returncode != 0 and "invalid choice" in res.stderr
