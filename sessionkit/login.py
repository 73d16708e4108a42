"""``sessionkit login``: sign in to Google Drive once, on a machine with a browser, and save
the credentials so a notebook elsewhere (Colab, Kaggle, a VM) can use them.

It runs Google's installed-app sign-in (google-auth-oauthlib's ``InstalledAppFlow``: a
local web server on 127.0.0.1 receives the answer) with the user's own OAuth client, for
the Drive scope, and saves the result as ``authorized_user`` JSON with mode 600. No OAuth
client ships with sessionkit: Google ties a client to the Cloud project that created it,
and a client shared by every user would be one project's quota and consent screen for
all of them (docs/gdrive.md says how to create one's own).

The saved file holds a refresh token that gives access to the whole Drive of the account:
it is written with mode 600 and never printed; what is printed is where it is and how to
hand it to Colab or Kaggle as a secret.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from .errors import CommandError
from .store.gdrive_auth import DRIVE_SCOPE

__all__ = ["DEFAULT_SAVE", "LOGIN_HINT", "LoginResult", "how_to_use", "login", "save_credentials"]

DEFAULT_SAVE = Path("~/.config/sessionkit/gdrive-credentials.json")
SECRET_NAME = "sessionkit-drive"
LOGIN_HINT = ('sessionkit login needs google-auth-oauthlib (Colab ships it): '
              'pip install "sessionkit-runtime[login]"')
NO_CLIENT = ("sessionkit login needs your own OAuth client: give --client-secrets FILE (or set "
             "SESSIONKIT_OAUTH_CLIENT_SECRETS), the JSON Google Cloud console lets you download for a "
             "'Desktop app' OAuth client. sessionkit ships no shared client; docs/gdrive.md walks through "
             "creating one")


@dataclass(frozen=True)
class LoginResult:
    path: Path  # where the credentials were saved (mode 600)


def _client_secrets(path: Optional[str]) -> Path:
    path = path or os.environ.get("SESSIONKIT_OAUTH_CLIENT_SECRETS")
    if not path:
        raise CommandError(NO_CLIENT)
    file = Path(path).expanduser()
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CommandError(f"cannot read the OAuth client file {file}: {exc.strerror or exc}") from None
    except ValueError:
        raise CommandError(f"the OAuth client file {file} is not JSON: download it again from Google Cloud "
                           f"console (APIs & Services → Credentials → your Desktop app client → Download "
                           f"JSON)") from None
    if not isinstance(info, dict) or "installed" not in info:
        kind = next(iter(info), "?") if isinstance(info, dict) and info else "?"
        raise CommandError(f"{file} is not a 'Desktop app' OAuth client (its kind is {kind!r}): create one of "
                           f"type 'Desktop app' and download its JSON (docs/gdrive.md)")
    return file


def _flow_class() -> Any:
    try:
        from google_auth_oauthlib.flow import InstalledAppFlow
    except ImportError:
        raise CommandError(LOGIN_HINT) from None
    return InstalledAppFlow


def save_credentials(credentials_json: str, path: Path) -> Path:
    """Write ``credentials_json`` to ``path`` readable by its owner only (mode 600, folder
    700 when made here), replacing what was there."""
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT: set it
        os.write(fd, credentials_json.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def login(client_secrets: Optional[str], save: Optional[str], *, open_browser: bool = True,
          port: int = 0, run_flow: Optional[Callable[[Any], Any]] = None) -> LoginResult:
    """Sign in with the browser and save the credentials; see the module docstring.
    ``run_flow`` runs the flow and returns the credentials (default: its local server)."""
    file = _client_secrets(client_secrets)
    flow = _flow_class().from_client_secrets_file(str(file), scopes=[DRIVE_SCOPE])
    if run_flow is None:
        def run_flow(f: Any) -> Any:
            # prompt=consent: Google returns a refresh token again on a second sign-in
            return f.run_local_server(host="127.0.0.1", port=port, open_browser=open_browser, prompt="consent")
    creds = run_flow(flow)
    if not getattr(creds, "refresh_token", None):
        raise CommandError("Google's answer held no refresh token, so the sign-in would not last: run "
                           "sessionkit login again (it asks for consent each time)")
    info = json.loads(creds.to_json())
    info["type"] = "authorized_user"
    return LoginResult(save_credentials(json.dumps(info), Path(save) if save else DEFAULT_SAVE))


def how_to_use(path: Path) -> str:
    """What to do with the saved file, for the terminal (never its content)."""
    return "\n".join([
        f"saved Google Drive credentials to {path} (mode 600: only you can read it)",
        "",
        "Use them:",
        f"  here:   export SESSIONKIT_GDRIVE_CREDENTIALS={path}",
        f"  Colab:  Secrets (the key icon on the left) → Add new secret: name {SECRET_NAME}, value: the",
        "          whole text of that file; switch on 'Notebook access'; then in the notebook",
        f"          CREDENTIALS = \"colab-secret:{SECRET_NAME}\"",
        f"  Kaggle: Add-ons → Secrets → Add a new secret: label {SECRET_NAME}, value: the whole text of",
        "          that file; tick it for this notebook; then in the notebook",
        f"          CREDENTIALS = \"kaggle-secret:{SECRET_NAME}\"",
        "",
        "The file gives access to this account's whole Drive: keep it out of notebooks, repositories and",
        "chats; revoke it at https://myaccount.google.com/permissions if it leaks.",
    ])
