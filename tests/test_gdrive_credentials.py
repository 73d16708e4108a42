"""Where a gdrive:// store's credentials come from: a path, the JSON text itself, Colab's
and Kaggle's secret stores; and Colab's sign-in when it goes wrong (no browser, an error
from the page, Colab Enterprise), and giving the runtime back outside a managed runtime.

Everything goes through the real google-auth and googleapiclient stack to the Drive
emulator. google.colab and kaggle_secrets are the stand-ins in tests/colab_standin and
tests/kaggle_standin (their docstrings say what they stand for), imported into this
process as Colab's and Kaggle's kernels import the real ones, and removed afterwards.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest

from sessionkit.errors import SignInError

pytest.importorskip("googleapiclient")
TESTS = Path(__file__).resolve().parent


@pytest.fixture
def saved(emulator, monkeypatch):
    """A user's saved credentials (the JSON text) and nothing in the environment."""
    monkeypatch.delenv("SESSIONKIT_GDRIVE_CREDENTIALS", raising=False)
    return emulator.user_credentials_file(f"cred-{uuid.uuid4().hex[:6]}@example.com").read_text()


def _unload(prefix: str) -> None:
    for name in [n for n in sys.modules if n == prefix or n.startswith(prefix + ".")]:
        del sys.modules[name]


@pytest.fixture
def colab(monkeypatch, tmp_path):
    """This process as a Colab kernel: the stand-in google.colab importable (and imported,
    as Colab's kernels have it) with a secrets file the test fills in."""
    monkeypatch.syspath_prepend(str(TESTS / "colab_standin"))
    secrets = tmp_path / "colab-secrets.json"
    secrets.write_text("{}")
    monkeypatch.setenv("SESSIONKIT_COLAB_STANDIN_SECRETS", str(secrets))
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    import google.colab  # noqa: F401

    yield secrets
    _unload("google.colab")


@pytest.fixture
def kaggle(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(TESTS / "kaggle_standin"))
    secrets = tmp_path / "kaggle-secrets.json"
    secrets.write_text("{}")
    monkeypatch.setenv("SESSIONKIT_KAGGLE_STANDIN_SECRETS", str(secrets))
    monkeypatch.setenv("KAGGLE_USER_SECRETS_TOKEN", "standin-session-token")
    yield secrets
    _unload("kaggle_secrets")


def open_new(**kw):
    from sessionkit.store.gdrive import GDriveStore

    return GDriveStore(f"cred-tests/{uuid.uuid4().hex[:8]}", backoff=0.01, **kw)


def works(store) -> None:
    store.put("k", b"v")
    assert store.get("k").data == b"v"


def secret_free(text: str, saved: str) -> None:
    for field in ("refresh_token", "client_secret"):
        assert json.loads(saved)[field] not in text, f"the {field} appears in a message"


def test_the_json_text_itself_in_the_variable_or_the_argument(saved, monkeypatch):
    works(open_new(credentials_file=saved))
    monkeypatch.setenv("SESSIONKIT_GDRIVE_CREDENTIALS", "  " + saved)
    works(open_new())


def test_damaged_json_text_is_refused_without_echoing_it(saved):
    damaged = saved[:-5]
    with pytest.raises(SignInError, match="JSON text given in credentials_file= is not JSON") as info:
        open_new(credentials_file=damaged)
    secret_free(str(info.value), saved)


def test_a_path_that_is_not_there_says_what_may_be_given(saved, tmp_path):
    with pytest.raises(SignInError, match="a path to a file, the JSON text itself, or colab-secret:NAME"):
        open_new(credentials_file=str(tmp_path / "nowhere.json"))


def test_colab_secret_by_argument_and_by_variable(saved, colab, monkeypatch):
    colab.write_text(json.dumps({"DRIVE": {"value": saved, "access": True}}))
    works(open_new(credentials="colab-secret:DRIVE"))
    monkeypatch.setenv("SESSIONKIT_GDRIVE_CREDENTIALS", "colab-secret:DRIVE")
    works(open_new())


def test_colab_secret_missing_or_not_granted_says_what_to_do(saved, colab):
    colab.write_text(json.dumps({"DRIVE": {"value": saved, "access": False}}))
    with pytest.raises(SignInError, match="Colab has no secret named 'OTHER'.*'Notebook access'"):
        open_new(credentials="colab-secret:OTHER")
    with pytest.raises(SignInError, match="may not read the Colab secret 'DRIVE'.*'Notebook access'") as info:
        open_new(credentials="colab-secret:DRIVE")
    secret_free(str(info.value), saved)


def test_colab_secret_with_no_page_to_ask(saved, colab, monkeypatch):
    monkeypatch.delenv("SESSIONKIT_COLAB_STANDIN_SECRETS")
    with pytest.raises(SignInError, match="only while the notebook is open in Colab's page"):
        open_new(credentials="colab-secret:DRIVE")


def test_a_secret_name_is_required(saved):
    with pytest.raises(SignInError, match="needs the secret's name"):
        open_new(credentials="kaggle-secret: ")


def test_colab_secret_outside_colab(saved):
    with pytest.raises(SignInError, match="works only in a Colab notebook"):
        open_new(credentials="colab-secret:DRIVE")


def test_kaggle_secret_by_argument_and_by_variable(saved, kaggle, monkeypatch):
    kaggle.write_text(json.dumps({"DRIVE": saved}))
    works(open_new(credentials="kaggle-secret:DRIVE"))
    monkeypatch.setenv("SESSIONKIT_GDRIVE_CREDENTIALS", "kaggle-secret:DRIVE")
    works(open_new())


def test_kaggle_secret_not_attached_or_no_session(saved, kaggle, monkeypatch):
    kaggle.write_text(json.dumps({"DRIVE": saved}))
    with pytest.raises(SignInError, match="Kaggle gave no secret 'OTHER'.*Add-ons → Secrets"):
        open_new(credentials="kaggle-secret:OTHER")
    monkeypatch.delenv("KAGGLE_USER_SECRETS_TOKEN")
    with pytest.raises(SignInError, match="CredentialError") as info:
        open_new(credentials="kaggle-secret:DRIVE")
    secret_free(str(info.value), saved)


def test_an_empty_secret_is_refused(saved, kaggle):
    kaggle.write_text(json.dumps({"DRIVE": "  "}))
    with pytest.raises(SignInError, match="is empty: paste the whole credentials JSON"):
        open_new(credentials="kaggle-secret:DRIVE")


# Colab's sign-in (authenticate_user) going wrong


@pytest.fixture
def colab_user(emulator, colab, monkeypatch, tmp_path):
    monkeypatch.delenv("SESSIONKIT_GDRIVE_CREDENTIALS", raising=False)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)  # the stand-in sets it
    monkeypatch.setenv("SESSIONKIT_COLAB_STANDIN_USER",
                       str(emulator.user_credentials_file(f"colab-{uuid.uuid4().hex[:6]}@example.com")))
    return monkeypatch


def test_colab_sign_in_works_through_authenticate_user(colab_user):
    works(open_new())


def test_no_browser_gives_up_after_the_bounded_wait(colab_user):
    colab_user.setenv("SESSIONKIT_COLAB_STANDIN_AUTH", "no-browser")
    colab_user.setenv("SESSIONKIT_COLAB_SIGN_IN_WAIT", "0.5")
    with pytest.raises(SignInError, match="waited 0.5 s for the browser.*open the notebook in Colab.*"
                                          "sessionkit login"):
        open_new()
    works(open_new(credentials_file=json.dumps(_standin_user())))  # nothing left behind: a next open works


def _standin_user() -> dict:
    import os

    with open(os.environ["SESSIONKIT_COLAB_STANDIN_USER"], encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.parametrize("behaviour, name", [("message-error", "MessageError"), ("refused", "AuthorizationError")])
def test_every_sign_in_failure_is_one_error_with_the_remedy(colab_user, behaviour, name):
    colab_user.setenv("SESSIONKIT_COLAB_STANDIN_AUTH", behaviour)
    with pytest.raises(SignInError, match=f"Colab's sign-in failed \\({name}: .*allow access to Google Drive"):
        open_new()


def test_colab_enterprise_is_told_how_to_sign_in(colab_user):
    colab_user.setenv("VERTEX_PRODUCT", "COLAB_ENTERPRISE")
    with pytest.raises(SignInError, match="Colab Enterprise.*SESSIONKIT_GDRIVE_CREDENTIALS"):
        open_new()


def test_a_bad_sign_in_wait_names_the_variable(colab_user):
    colab_user.setenv("SESSIONKIT_COLAB_SIGN_IN_WAIT", "soon")
    with pytest.raises(SignInError, match="SESSIONKIT_COLAB_SIGN_IN_WAIT must be a number of seconds > 0 .how long Colab.s sign-in may wait., got .soon."):
        open_new()


def test_release_runtime_outside_a_managed_runtime_is_one_line(colab, tmp_path, monkeypatch):
    from sessionkit import notebook

    monkeypatch.delenv("SESSIONKIT_COLAB_STANDIN_UNASSIGNED", raising=False)
    primary = notebook.start_primary(str(tmp_path / "store"), "rel", runtime="local", show=False)
    notebook.run(primary, notebook.demo_items(3), notebook.demo_work(0), display=False)
    said = notebook.release_runtime(primary)
    assert said.startswith("runtime NOT released: google.colab.runtime.unassign() failed "
                           "(RuntimeManagementError: Unable to find the runtime management service.)")
    assert "\n" not in said and "Disconnect and delete runtime" in said
