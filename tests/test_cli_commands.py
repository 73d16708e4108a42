"""The sessionkit command end to end on a real local folder store."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sessionkit import handover
from sessionkit.clock import FakeClock
from sessionkit.handover import Backup, Primary
from sessionkit.store.local import LocalStore

from support.scenarios import story


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sessionkit", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "store"
    store, actors = story(LocalStore(path))
    return str(path), actors


def test_status_json_has_the_fixed_shape(recorded):
    path, actors = recorded
    res = run("status", path, "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert set(data) == {"sessions", "leases", "jobs", "damaged"}
    assert all(set(s) == {"id", "role", "label", "status", "phase", "remaining_s", "last_heartbeat", "stalled"}
               for s in data["sessions"])
    assert all(set(l) == {"name", "holder", "token", "expires_in_s"} for l in data["leases"])
    assert all(set(j) == {"id", "status", "done", "total", "stage", "updated"} for j in data["jobs"])
    assert {j["id"]: j["status"] for j in data["jobs"]} == {"ingest": "completed", "broken": "failed"}
    assert data["leases"] == [{"name": "primary", "holder": None, "token": 3, "expires_in_s": None}]


def test_status_text(recorded):
    res = run("status", recorded[0])
    assert res.returncode == 0 and "sessions:" in res.stdout and "ingest" in res.stdout


def test_jobs_commands(recorded, tmp_path):
    path = recorded[0]
    res = run("jobs", "list", path, "--json")
    assert res.returncode == 0 and {r["id"] for r in json.loads(res.stdout)} == {"ingest", "broken"}
    res = run("jobs", "show", path, "broken")
    assert res.returncode == 0 and json.loads(res.stdout)["error"]["message"] == "bad input file"
    res = run("jobs", "pause", path, "ingest")
    assert res.returncode == 0 and "pause" in res.stdout
    res = run("jobs", "cancel", path, "nope")
    assert res.returncode == 2 and "nope" in res.stderr and "Traceback" not in res.stderr
    res = run("jobs", "show", path)
    assert res.returncode == 2 and "needs a JOB" in res.stderr
    res = run("jobs", "clear", path, "--older-than", "0s", "--status", "failed")
    assert res.returncode == 0 and "broken" in res.stdout
    assert "broken" not in run("jobs", "list", path).stdout


def test_history_csv_and_plots(recorded, tmp_path):
    path = recorded[0]
    res = run("history", path, "--csv", str(tmp_path / "events.csv"), "--plot", str(tmp_path / "plots"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "events.csv").read_text().startswith("ts,kind,session,role,label,job,writer,seq")
    for name in ("timeline", "progress", "throughput"):
        assert (tmp_path / "plots" / f"{name}.png").stat().st_size > 5000
    res = run("history", path)
    assert "handovers:" in res.stdout and "gaps:" in res.stdout


def test_approve(tmp_path):
    store, clock = LocalStore(tmp_path / "s"), FakeClock()
    primary = Primary(store, "job", runtime="local", clock=clock, ttl=10)
    backup = Backup(store, "B", approval="required", clock=clock, ttl=10, runtime="local")
    primary.close()
    backup.step()
    request = handover.pending_approvals(store)[0].id
    assert run("approve", str(tmp_path / "s"), "unknown").returncode == 2
    res = run("approve", str(tmp_path / "s"), request)
    assert res.returncode == 0, res.stderr
    assert backup.step() is not None


def test_gc(tmp_path):
    """gc leaves what is live and all of history: what it removes nothing reads again."""
    from sessionkit import history

    path = tmp_path / "store"
    store, actors = story(LocalStore(path))
    before = history.load(str(path))
    ended = store.list("sessions-ended/")
    answers = store.list("handover/primary/ready/")
    assert ended and answers and not store.list("sessions/"), "the story ends every session"
    res = run("gc", str(path), "--older-than", "0s", "--sessions-older-than", "0s")
    assert res.returncode == 0, res.stderr
    assert f"{len(ended)} ended session record(s)" in res.stdout
    assert store.list("sessions-ended/") == [] and store.list("jobs/") == []
    current = json.loads(store.get("handover/primary/request").data)["id"]
    assert all(json.loads(store.get(k).data)["request"] == current for k in store.list("handover/primary/ready/"))
    after = history.load(str(path))
    assert len(after) == len(before) and list(history.handovers(after)["how"]) == list(
        history.handovers(before)["how"])


@pytest.mark.parametrize("args", [["status", "/nonexistent/store"], ["jobs", "list", "/nonexistent/x"],
                                  ["history", "/nonexistent/y"], ["gc", "/nonexistent/z"]])
def test_a_missing_store_is_a_one_line_error(args):
    res = run(*args)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "does not exist" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_missing_store_given_as_a_file_url_is_an_error_and_is_not_created(tmp_path):
    """docs/cli.md says a missing store is an error and a command never creates one;
    `status file:///path/to/newstore` exited 0 and created it."""
    missing = tmp_path / "newstore"
    res = run("status", f"file://{missing}")
    assert res.returncode == 2 and "does not exist" in res.stderr
    assert not missing.exists()
    missing.mkdir()
    assert run("status", f"file://{missing}").returncode == 0


def test_an_unreadable_store_is_a_one_line_error(tmp_path):
    bad = tmp_path / "file"
    bad.write_text("x")
    res = run("status", str(bad))
    assert res.returncode == 2 and "not a store folder" in res.stderr


@pytest.mark.parametrize("command", ["status", "jobs", "history", "approve", "gc", "demo", "login"])
def test_every_subcommand_has_help(command):
    res = run(command, "--help")
    assert res.returncode == 0 and "usage: sessionkit " + command in res.stdout


def test_bad_duration():
    res = run("gc", ".", "--older-than", "soon")
    assert res.returncode == 2 and "duration" in res.stderr


def test_status_jobs_and_history_keep_working_with_a_damaged_lease_session_and_job(tmp_path):
    import sessionkit
    from sessionkit import Job, Lease

    url = str(tmp_path / "s")
    store = sessionkit.open_store(url)
    Lease(store, "primary", holder="a", ttl=30).acquire(timeout=1)
    Lease(store, "other", holder="b", ttl=30).acquire(timeout=1)
    list(Job(store, "good").track(range(3), display=False))
    list(Job(store, "bad").track(range(3), display=False))
    store.path_of("leases/primary").write_bytes(b"garbage")
    store.path_of("jobs/bad/manifest").write_bytes(b"")
    store.path_of("jobs/bad/manifest.prev").write_bytes(b"")
    for args in (["status", url], ["jobs", "list", url], ["history", url]):
        done = subprocess.run([sys.executable, "-m", "sessionkit", *args], capture_output=True, text=True)
        assert done.returncode == 0, (args, done.stderr)
        assert "good" in done.stdout
    data = json.loads(subprocess.run([sys.executable, "-m", "sessionkit", "status", "--json", url],
                                     capture_output=True, text=True, check=True).stdout)
    assert [l["name"] for l in data["leases"]] == ["other"]
    assert {d["key"] for d in data["damaged"]} == {"leases/primary", "jobs/bad/manifest"}


def test_every_command_and_option_docs_cli_md_names_exists_with_the_default_it_states():
    """Issue 17: docs/cli.md and the command disagreed. Each row of its table names a command,
    its options and their defaults; the parser must have each, with that default."""
    import re
    from pathlib import Path

    from sessionkit.cli import build_parser, parse_duration

    text = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text()
    rows = re.findall(r"^\| `sessionkit ([^`]+)` \|", text, re.M)
    assert len(rows) >= 8
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # argparse keeps no public map
    checked = 0
    for row in rows:
        words = row.replace("\\|", "|").split()
        sub = commands[words[0]]
        options = {o: a for a in sub._actions for o in a.option_strings}
        if words[0] == "jobs":
            actions = [a for a in sub._actions if a.dest == "action"][0].choices
            assert set(words[1].split("|")) <= set(actions), row
        for option, default in re.findall(r"\[(--[a-z-]+)(?: ([^\]\s.]+))?", row):
            assert option in options, f"docs/cli.md names {option} for {words[0]}; the parser has none"
            if default and not default.isupper():  # a value, not a metavar such as FILE or S
                want = parse_duration(default) if re.fullmatch(r"[\d.]+[smhd]", default) else default
                assert options[option].default == want, f"{words[0]} {option}: docs say {default}"
            checked += 1
    assert checked >= 10
