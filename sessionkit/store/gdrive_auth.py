"""Signing in to Google Drive for the ``gdrive://`` store: which credentials, from where.

All paths end in google-auth credentials (oauth2client, which PyDrive2 uses, is
deprecated), sent through ``google_auth_httplib2``, which refreshes an expired
access token and retries once when Drive answers 401. In order:

1. ``credentials=``: google-auth credentials, or a PyDrive2 ``GoogleAuth`` you
   already signed in with (its refresh token is reused; nothing is saved);
2. ``service_account=`` or ``SESSIONKIT_GDRIVE_SERVICE_ACCOUNT``: a service
   account's JSON key. Service accounts own no storage, so the store must be in a
   shared drive (checked when the store opens);
3. ``credentials_file=`` or ``SESSIONKIT_GDRIVE_CREDENTIALS``: saved user
   credentials, as google-auth writes them (``authorized_user`` JSON, also what
   ``gcloud auth application-default login`` and ``sessionkit login`` save) or as
   PyDrive2's ``SaveCredentialsFile`` writes them. Each of these (and a string given
   as ``credentials=``) may be a path, the JSON text itself, or ``colab-secret:NAME``
   / ``kaggle-secret:NAME``: the runtime's secret store (``runtime_secrets``);
4. in Colab: ``google.colab.auth.authenticate_user()``, then the application
   default credentials it sets up (the signed-in user). It waits for the browser with
   no time limit (colabtools ``google/colab/auth.py``: ``blocking_request(...,
   timeout_sec=None)``), so sessionkit gives up after SESSIONKIT_COLAB_SIGN_IN_WAIT
   seconds (default 300) and says what to do; its ``MessageError`` (colabtools#5515)
   and every other failure become a ``SignInError`` with the remedy; Colab Enterprise,
   where it signs no one in, is told how to sign in instead.

No secret is ever put in an error message, a log line, an event or the store.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from dataclasses import dataclass
from typing import Any, Optional

from ..validate import seconds_setting
from ..env import in_colab
from ..errors import SignInError, StoreError
from .runtime_secrets import parse_secret_ref, read_secret

__all__ = ["DRIVE_SCOPE", "SignIn", "sign_in"]

DRIVE_SCOPE = "https://www.googleapis.com/auth/drive"
EXTRA_HINT = ('the gdrive:// store needs google-api-python-client, google-auth and google-auth-httplib2 '
              '(Colab ships them): pip install "sessionkit-runtime[gdrive]"')


@dataclass(frozen=True)
class SignIn:
    """Credentials and what kind they are (a service account needs a shared drive)."""

    credentials: Any
    service_account: bool
    source: str  # for messages: "service account key", "Colab sign-in", ...


def _require_libraries() -> None:
    try:
        import google.auth  # noqa: F401
        import google_auth_httplib2  # noqa: F401
        import googleapiclient  # noqa: F401
    except ImportError as exc:
        raise StoreError(f"{EXTRA_HINT} ({exc.name} is missing)") from None


def sign_in(*, credentials: Any = None, service_account: Optional[str] = None,
            credentials_file: Optional[str] = None) -> SignIn:
    """Find credentials as the module docstring says; raise ``StoreError`` saying what to do."""
    _require_libraries()
    if isinstance(credentials, str):
        return _from_source(credentials, "credentials=")
    if credentials is not None:
        return _given(credentials)
    service_account = service_account or os.environ.get("SESSIONKIT_GDRIVE_SERVICE_ACCOUNT")
    if service_account:
        return _from_source(service_account, "SESSIONKIT_GDRIVE_SERVICE_ACCOUNT")
    if credentials_file:
        return _from_source(credentials_file, "credentials_file=")
    from_env = os.environ.get("SESSIONKIT_GDRIVE_CREDENTIALS")
    if from_env:
        return _from_source(from_env, "SESSIONKIT_GDRIVE_CREDENTIALS")
    if in_colab():
        return _colab()
    raise SignInError("no Google credentials: in Colab run google.colab.auth.authenticate_user(); "
                      "elsewhere set SESSIONKIT_GDRIVE_CREDENTIALS to saved user credentials (a file, its "
                      "JSON text, or colab-secret:NAME / kaggle-secret:NAME; `sessionkit login` makes "
                      "them), or use a service account with a shared drive; see docs/gdrive.md")


def _given(credentials: Any) -> SignIn:
    inner = getattr(credentials, "credentials", None)  # a PyDrive2 GoogleAuth
    if inner is not None and hasattr(inner, "refresh_token"):
        return SignIn(_user_credentials(_oauth2client_fields(inner), "PyDrive2 GoogleAuth"), False,
                      "PyDrive2 sign-in")
    from google.auth.credentials import Credentials

    if not isinstance(credentials, Credentials):
        raise StoreError(f"credentials= must be google-auth credentials or a signed-in PyDrive2 "
                         f"GoogleAuth, not {type(credentials).__name__}")
    from google.oauth2 import service_account

    return SignIn(credentials, isinstance(credentials, service_account.Credentials), "given credentials")


def _oauth2client_fields(creds: Any) -> dict[str, Any]:
    return {"client_id": creds.client_id, "client_secret": creds.client_secret,
            "refresh_token": creds.refresh_token, "token_uri": creds.token_uri}


def _user_credentials(info: dict[str, Any], where: str) -> Any:
    from google.oauth2.credentials import Credentials

    missing = [k for k in ("client_id", "client_secret", "refresh_token") if not info.get(k)]
    if missing:
        raise SignInError(f"the {where} lack {', '.join(missing)}: sign in again and save them")
    return Credentials(None, refresh_token=info["refresh_token"], client_id=info["client_id"],
                       client_secret=info["client_secret"],
                       token_uri=info.get("token_uri") or "https://oauth2.googleapis.com/token",
                       scopes=[DRIVE_SCOPE])


def _from_source(value: str, parameter: str) -> SignIn:
    """Credentials from what ``parameter`` holds: a runtime secret's name, the JSON text
    itself, or a path to a file holding it."""
    ref = parse_secret_ref(value.strip(), parameter)
    if ref is not None:
        return _from_text(read_secret(ref), f"secret {ref}", f"the secret {ref}")
    if value.lstrip().startswith("{"):
        return _from_text(value, f"JSON text in {parameter}", f"the JSON text given in {parameter}")
    try:
        with open(value, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise SignInError(f"cannot read the credentials file given in {parameter} at {value}: "
                          f"{exc.strerror or exc}; give a path to a file, the JSON text itself, or "
                          f"colab-secret:NAME / kaggle-secret:NAME") from None
    return _from_text(text, f"credentials in {value}", f"the file {value} ({parameter})")


def _from_text(text: str, where: str, what: str) -> SignIn:
    """Credentials from JSON text; an error names ``what`` held it, never the text."""
    try:
        info = json.loads(text)
    except ValueError:
        raise SignInError(f"{what} is not JSON: give the whole file Google or PyDrive2 saved "
                          f"(`sessionkit login` writes one)") from None
    if not isinstance(info, dict):
        raise SignInError(f"{what} is not a credentials object")
    kind = info.get("type")
    if kind == "service_account":
        from google.oauth2 import service_account

        try:
            creds = service_account.Credentials.from_service_account_info(info, scopes=[DRIVE_SCOPE])
        except (ValueError, KeyError) as exc:  # a damaged key; the message never holds the key
            raise SignInError(f"the service account key in {what} is unusable ({type(exc).__name__})") from None
        return SignIn(creds, True, "service account key")
    if kind == "authorized_user" or "_module" in info or "refresh_token" in info:
        return SignIn(_user_credentials(info, where), False, "saved user credentials")
    raise SignInError(f"{what} holds credentials of an unknown kind ({kind!r}); give an authorized_user "
                      f"or service_account JSON, or a file PyDrive2 saved")


SIGN_IN_WAIT = 300.0  # seconds authenticate_user() may wait for the browser before we give up
SIGN_IN_REMEDY = ("or sign in without the browser: on a machine with one run `sessionkit login`, add what it "
                  "saved as a Colab secret and set SESSIONKIT_GDRIVE_CREDENTIALS=colab-secret:NAME "
                  "(docs/gdrive.md)")


class _SignInWaitOver(BaseException):
    """Raised in the main thread when the sign-in wait is over. A BaseException, so that no
    ``except Exception`` on the way (Colab's message loop, the kernel's input request)
    swallows it."""


def sign_in_wait() -> float:
    """How long Colab's sign-in may wait for the browser: SESSIONKIT_COLAB_SIGN_IN_WAIT
    (seconds), else SIGN_IN_WAIT."""
    try:
        return seconds_setting("SESSIONKIT_COLAB_SIGN_IN_WAIT", SIGN_IN_WAIT, "how long Colab's sign-in may wait")
    except ValueError as exc:
        raise SignInError(str(exc)) from None


def _colab() -> SignIn:
    if os.environ.get("VERTEX_PRODUCT") == "COLAB_ENTERPRISE":
        # colabtools google/colab/auth.py: authenticate_user() prints a warning and returns
        # without signing anyone in when VERTEX_PRODUCT is COLAB_ENTERPRISE
        raise SignInError("this is Colab Enterprise, where google.colab.auth.authenticate_user() signs no one "
                          "in: give saved user credentials in SESSIONKIT_GDRIVE_CREDENTIALS (`sessionkit "
                          "login` on a machine with a browser makes them; a path, the JSON text, or a "
                          "Secret Manager value you read yourself), or open a store in a shared drive with "
                          "the runtime's service account (SESSIONKIT_GDRIVE_SERVICE_ACCOUNT); docs/gdrive.md")
    try:
        from google.colab import auth as colab_auth
    except ImportError:
        raise SignInError("this looks like Colab but google.colab cannot be imported; sign in with "
                          "SESSIONKIT_GDRIVE_CREDENTIALS instead") from None
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    wait = sign_in_wait()
    try:
        _bounded(colab_auth.authenticate_user, wait)
    except _SignInWaitOver:
        raise SignInError(f"Colab's sign-in waited {wait:g} s for the browser and got no answer (no Colab "
                          f"page is attached to this runtime, or the sign-in window was left open): open "
                          f"the notebook in Colab and run the cell again, answering the sign-in prompt, "
                          f"{SIGN_IN_REMEDY}") from None
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # MessageError, AuthorizationError, NotImplementedError...: all end here
        raise SignInError(f"Colab's sign-in failed ({type(exc).__name__}: {_first_line(exc)}): run the cell "
                          f"again and allow access to Google Drive when asked (a popup blocker or a "
                          f"closed sign-in window ends it like this), {SIGN_IN_REMEDY}") from None
    try:
        creds, _project = google.auth.default(scopes=[DRIVE_SCOPE])
    except DefaultCredentialsError:
        raise SignInError("Colab sign-in gave no credentials: run google.colab.auth.authenticate_user() "
                          "in a cell and allow access to Google Drive, then open the store again, "
                          f"{SIGN_IN_REMEDY}") from None
    from google.oauth2 import service_account

    return SignIn(creds, isinstance(creds, service_account.Credentials), "Colab sign-in")


def _first_line(exc: BaseException) -> str:
    """An exception's first line, cut short: what Colab said, for the message (a sign-in
    error carries no secret; the line is cut so nothing long is echoed)."""
    text = str(exc).strip().splitlines()
    return (text[0][:200] if text else "no message")


def _bounded(call: Any, seconds: float) -> None:
    """``call()``, given up after ``seconds`` by raising _SignInWaitOver in it.

    Colab's sign-in must run where it expects, in the kernel's main thread (it talks to
    the page through the kernel's stdin channel), so the bound is a real-time timer
    signal (SIGALRM) rather than a helper thread; the handler and timer that were there
    before are put back. Off the main thread (no signals there) the call is unbounded.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        call()
        return

    def over(signum: int, frame: Any) -> None:
        raise _SignInWaitOver()

    previous = signal.signal(signal.SIGALRM, over)
    earlier_timer = (0.0, 0.0)
    try:
        earlier_timer = signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            call()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, previous)
        if earlier_timer[0] > 0:  # someone else's timer was running: let it go on
            signal.setitimer(signal.ITIMER_REAL, *earlier_timer)
