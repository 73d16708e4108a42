"""``sessionkit login``, run as a user runs it: a real process, google-auth-oauthlib's real
InstalledAppFlow with its local server on 127.0.0.1, and the Drive emulator as Google's
consent page and token endpoint (it allows at once for the account the "browser" names:
CI has no Google account and no one to click Allow). The browser is this test: it opens
the address the command prints and follows the redirect to the command's local server."""

from __future__ import annotations

import json
import os
import ssl
import stat
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import drive_emulator

TESTS = Path(__file__).resolve().parent


def run(*args: str, env=None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sessionkit", "login", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def client_file(tmp: Path, auth: str, token: str, kind: str = "installed") -> Path:
    path = tmp / "client_secret.json"
    path.write_text(json.dumps({kind: {"client_id": "emulator-client", "client_secret": "emulator-secret",
                                       "auth_uri": auth, "token_uri": token,
                                       "redirect_uris": ["http://localhost"]}}))
    return path


def one_line_error(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip().count("\n") == 0, res.stderr
    return res.stderr


def test_without_a_client_it_says_none_ships_and_how_to_get_one(monkeypatch):
    env = dict(os.environ)
    env.pop("SESSIONKIT_OAUTH_CLIENT_SECRETS", None)
    said = one_line_error(run(env=env))
    assert "needs your own OAuth client: give --client-secrets FILE" in said
    assert "sessionkit ships no shared client; docs/gdrive.md" in said


def test_a_web_client_or_a_damaged_file_is_refused(tmp_path):
    web = client_file(tmp_path, "https://x/auth", "https://x/token", kind="web")
    assert "is not a 'Desktop app' OAuth client (its kind is 'web')" in one_line_error(
        run("--client-secrets", str(web)))
    web.write_text("{not json")
    assert "is not JSON" in one_line_error(run("--client-secrets", str(web)))
    assert "cannot read the OAuth client file" in one_line_error(run("--client-secrets", str(tmp_path / "no")))


def test_without_the_extra_it_names_the_extra(tmp_path):
    """google-auth-oauthlib absent: a folder first on the path whose google_auth_oauthlib
    fails to import stands in for an environment that lacks it."""
    blocked = tmp_path / "blocked"
    (blocked / "google_auth_oauthlib").mkdir(parents=True)
    (blocked / "google_auth_oauthlib" / "__init__.py").write_text(
        "raise ImportError('not installed (test stand-in)', name='google_auth_oauthlib')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocked), os.environ.get("PYTHONPATH", "")]))
    client = client_file(tmp_path, "https://x/auth", "https://x/token")
    said = one_line_error(run("--client-secrets", str(client), env=env))
    assert 'needs google-auth-oauthlib (Colab ships it): pip install "sessionkit-runtime[login]"' in said


def test_help_names_the_options():
    res = run("--help")
    assert res.returncode == 0
    for option in ("--client-secrets", "--save", "--no-browser"):
        assert option in res.stdout


def test_sign_in_saves_mode_600_credentials_that_open_a_drive_store(tmp_path):
    pytest.importorskip("google_auth_oauthlib")
    pytest.importorskip("googleapiclient")
    emulator = drive_emulator()
    email = f"login-{uuid.uuid4().hex[:6]}@example.com"
    client = client_file(tmp_path, emulator.endpoint + "/auth", emulator.token_uri)
    saved = tmp_path / "conf" / "gdrive.json"
    env = dict(os.environ, PYTHONUNBUFFERED="1", REQUESTS_CA_BUNDLE=str(emulator.cert))
    env.pop("SESSIONKIT_GDRIVE_CREDENTIALS", None)
    proc = subprocess.Popen([sys.executable, "-m", "sessionkit", "login", "--client-secrets", str(client),
                             "--save", str(saved), "--no-browser"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        address = None
        for line in proc.stdout:
            if emulator.endpoint + "/auth?" in line:
                address = line[line.index(emulator.endpoint):].strip()
                break
        assert address, "the command printed no sign-in address"
        context = ssl.create_default_context(cafile=str(emulator.cert))
        with urllib.request.urlopen(f"{address}&login_hint={email}", context=context, timeout=30) as page:
            assert page.status == 200  # the command's local server: "The authentication flow has completed"
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    info = json.loads(saved.read_text())
    assert info["type"] == "authorized_user" and info["refresh_token"].startswith(f"refresh-{email}")
    assert info["refresh_token"] not in out + err and info["client_secret"] not in out + err
    assert f"saved Google Drive credentials to {saved} (mode 600" in out
    assert 'CREDENTIALS = "colab-secret:sessionkit-drive"' in out
    assert 'CREDENTIALS = "kaggle-secret:sessionkit-drive"' in out

    from sessionkit.store.gdrive import GDriveStore

    name = uuid.uuid4().hex[:8]
    store = GDriveStore(f"login-tests/{name}", credentials_file=str(saved), backoff=0.01)
    store.put("k", b"v")
    assert store.get("k").data == b"v"
    owners = {f["owners"][0]["emailAddress"] for f in emulator.by_title(name)}
    assert owners == {email}, "the store was made in the Drive of the account that signed in"


def test_saving_again_replaces_the_file_and_keeps_mode_600(tmp_path):
    from sessionkit.login import save_credentials

    path = tmp_path / "creds.json"
    path.write_text("old")
    os.chmod(path, 0o644)
    save_credentials('{"refresh_token": "new"}', path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == '{"refresh_token": "new"}'
