"""Stand-in for ``google.colab.auth`` (see the package docstring)."""

from __future__ import annotations

import json
import os
import tempfile
import time


def authenticate_user(clear_output: bool = True, project_id=None) -> None:
    """Make google.auth.default() return the stand-in user's credentials.

    Real Colab writes ``authorized_user`` credentials, whose refresh always goes to
    Google's token endpoint (google-auth ignores any other token_uri there). The
    ``external_account_authorized_user`` kind carries its own token URL, so the refresh
    reaches the Drive emulator; to the code under test both are user credentials.
    """
    behaviour = os.environ.get("SESSIONKIT_COLAB_STANDIN_AUTH", "")
    if behaviour == "no-browser":
        while True:  # the real one polls the kernel's stdin for the page's answer, without a limit
            time.sleep(0.025)
    if behaviour == "message-error":
        from google.colab._message import MessageError

        raise MessageError("credential propagation was unsuccessful")
    if behaviour == "refused":
        from google.colab import errors

        raise errors.AuthorizationError("Failed to fetch user credentials")
    with open(os.environ["SESSIONKIT_COLAB_STANDIN_USER"], encoding="utf-8") as f:
        user = json.load(f)
    adc = {"type": "external_account_authorized_user",
           "audience": "//iam.googleapis.com/locations/global/workforcePools/standin/providers/colab",
           "refresh_token": user["refresh_token"], "token_url": user["token_uri"],
           "token_info_url": user["token_uri"] + "/info", "client_id": user["client_id"],
           "client_secret": user["client_secret"]}
    fd, path = tempfile.mkstemp(prefix="standin-adc-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(adc, f)
    os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = path
