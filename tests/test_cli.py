"""The ``sessionkit`` command, run as users run it: a real process."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sessionkit", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_help_lists_the_demo():
    res = run("--help")
    assert res.returncode == 0 and "demo" in res.stdout


def test_demo_help():
    res = run("demo", "--help")
    assert res.returncode == 0 and "--store" in res.stdout


@pytest.mark.slow
def test_demo_tells_the_whole_story(tmp_path):
    # a 12-hour runtime in 15 s: A hands over to B (planned), B is killed, C takes over
    res = run("demo", "--store", str(tmp_path / "s"), "--items", "400", "--item-seconds", "0.05",
              "--scale", "2880", timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    for line in ("colab A: phase active -> warning", "colab A: phase warning -> handover",
                 "local B is primary now, token 2 (planned handover)", "local B is killed (SIGKILL)",
                 "vm C is primary now, token 3 (takeover after the lease expired)", "items: 400/400 done",
                 "job: completed", "All checks hold."):
        assert line in out, line
    for name in ("timeline", "progress", "throughput"):
        assert (tmp_path / "s" / "plots" / f"{name}.png").stat().st_size > 5000


def test_demo_refuses_a_folder_that_holds_a_store(tmp_path):
    import sessionkit

    sessionkit.open_store(tmp_path / "s").put("x", b"1")
    res = run("demo", "--store", str(tmp_path / "s"))
    assert res.returncode == 2 and "already holds a store" in res.stderr


def test_bad_arguments_give_one_line_error_without_traceback(tmp_path):
    res = run("demo", "--store", str(tmp_path / "s"), "--items", "0")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().count("\n") == 0 and "items" in res.stderr


def test_unknown_command_fails():
    res = run("frobnicate")
    assert res.returncode != 0 and "invalid choice" in res.stderr
