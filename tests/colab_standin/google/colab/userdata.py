"""Stand-in for ``google.colab.userdata`` (see the package docstring): Colab's secrets,
read from the JSON file ``SESSIONKIT_COLAB_STANDIN_SECRETS`` instead of the page."""

from __future__ import annotations

import json
import os

from google.colab import errors


class NotebookAccessError(Exception):
    """The notebook may not read the secret (the real class derives from Exception too)."""

    def __init__(self, key):
        super().__init__(f"Notebook does not have access to secret {key}")


class SecretNotFoundError(errors.Error):
    def __init__(self, key):
        super().__init__(f"Secret {key} does not exist.")


class TimeoutException(errors.Error):
    def __init__(self, key):
        super().__init__(f"Requesting secret {key} timed out. Secrets can only be fetched when running from "
                         f"the Colab UI.")


def get(key):
    if not key or not isinstance(key, str):
        raise ValueError("Please enter a valid secret name")
    path = os.environ.get("SESSIONKIT_COLAB_STANDIN_SECRETS")
    if not path:
        raise TimeoutException(key)  # no page to ask: what an exported run meets
    with open(path, encoding="utf-8") as f:
        secrets = json.load(f)
    if key not in secrets:
        raise SecretNotFoundError(key)
    if not secrets[key].get("access"):
        raise NotebookAccessError(key)
    return secrets[key]["value"]
