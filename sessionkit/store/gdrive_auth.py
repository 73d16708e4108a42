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
   ``gcloud auth application-default login`` saves) or as PyDrive2's
   ``SaveCredentialsFile`` writes them;
4. in Colab: ``google.colab.auth.authenticate_user()``, then the application
   default credentials it sets up (the signed-in user).

No secret is ever put in an error message, a log line, an event or the store.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Optional

from ..env import in_colab
from ..errors import StoreError

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
    if credentials is not None:
        return _given(credentials)
    service_account = service_account or os.environ.get("SESSIONKIT_GDRIVE_SERVICE_ACCOUNT")
    if service_account:
        return _from_file(service_account, "service account key (SESSIONKIT_GDRIVE_SERVICE_ACCOUNT)")
    credentials_file = credentials_file or os.environ.get("SESSIONKIT_GDRIVE_CREDENTIALS")
    if credentials_file:
        return _from_file(credentials_file, "saved credentials (SESSIONKIT_GDRIVE_CREDENTIALS)")
    if in_colab():
        return _colab()
    raise StoreError("no Google credentials: in Colab run google.colab.auth.authenticate_user(); "
                     "elsewhere set SESSIONKIT_GDRIVE_CREDENTIALS to saved user credentials (or pass "
                     "credentials_file=), or use a service account with a shared drive; see docs/gdrive.md")


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
        raise StoreError(f"the {where} lack {', '.join(missing)}: sign in again and save them")
    return Credentials(None, refresh_token=info["refresh_token"], client_id=info["client_id"],
                       client_secret=info["client_secret"],
                       token_uri=info.get("token_uri") or "https://oauth2.googleapis.com/token",
                       scopes=[DRIVE_SCOPE])


def _from_file(path: str, what: str) -> SignIn:
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except OSError as exc:
        raise StoreError(f"cannot read the {what} at {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise StoreError(f"the {what} at {path} is not JSON; give the file Google or PyDrive2 saved") from None
    if not isinstance(info, dict):
        raise StoreError(f"the {what} at {path} is not a credentials object")
    kind = info.get("type")
    if kind == "service_account":
        from google.oauth2 import service_account

        try:
            creds = service_account.Credentials.from_service_account_info(info, scopes=[DRIVE_SCOPE])
        except (ValueError, KeyError) as exc:  # a damaged key; the message never holds the key
            raise StoreError(f"the service account key at {path} is unusable ({type(exc).__name__})") from None
        return SignIn(creds, True, "service account key")
    if kind == "authorized_user" or "_module" in info or "refresh_token" in info:
        return SignIn(_user_credentials(info, f"credentials in {path}"), False, "saved user credentials")
    raise StoreError(f"the {what} at {path} are of an unknown kind ({kind!r}); give an authorized_user "
                     f"or service_account JSON, or a file PyDrive2 saved")


def _colab() -> SignIn:
    try:
        from google.colab import auth as colab_auth
    except ImportError:
        raise StoreError("this looks like Colab but google.colab cannot be imported; sign in with "
                         "SESSIONKIT_GDRIVE_CREDENTIALS instead") from None
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    colab_auth.authenticate_user()
    try:
        creds, _project = google.auth.default(scopes=[DRIVE_SCOPE])
    except DefaultCredentialsError:
        raise StoreError("Colab sign-in gave no credentials: run google.colab.auth.authenticate_user() "
                         "in a cell and allow access to Google Drive, then open the store again") from None
    from google.oauth2 import service_account

    return SignIn(creds, isinstance(creds, service_account.Credentials), "Colab sign-in")
