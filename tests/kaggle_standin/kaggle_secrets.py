"""A stand-in for Kaggle's ``kaggle_secrets`` module, for tests only.

It stands in for the module Kaggle's notebook image ships (Kaggle/docker-python,
``patches/kaggle_secrets.py``), which talks to Kaggle's UserSecrets service with a
session token only a Kaggle session has: CI cannot reach it. The tests put this folder
on a kernel's (or the test process's) path. Same class and exception names as the real
one; secrets come from the JSON file named by ``SESSIONKIT_KAGGLE_STANDIN_SECRETS``
(``{LABEL: value}``), the secrets attached to this notebook.

As the real one: no ``KAGGLE_USER_SECRETS_TOKEN`` in the environment (not a Kaggle
session) raises ``CredentialError`` when the client is made; an empty label raises
``ValidationError``. A label that is not attached raises ``BackendError``: the real client
raises that for any unsuccessful answer from the service, and what the service answers
for an unattached label is not public, so this is the closest honest model.
"""

from __future__ import annotations

import json
import os


class CredentialError(Exception):
    pass


class BackendError(Exception):
    pass


class ValidationError(Exception):
    pass


class UserSecretsClient:
    def __init__(self):
        self.jwt_token = os.getenv("KAGGLE_USER_SECRETS_TOKEN")
        if self.jwt_token is None:
            raise CredentialError("A JWT Token is required to use the UserSecretsClient, but none found in "
                                  "environment variable KAGGLE_USER_SECRETS_TOKEN")

    def get_secret(self, label) -> str:
        if label is None or len(label) == 0:
            raise ValidationError("Label must be non-empty.")
        with open(os.environ["SESSIONKIT_KAGGLE_STANDIN_SECRETS"], encoding="utf-8") as f:
            attached = json.load(f)
        if label not in attached:
            raise BackendError("Unexpected response from the service. Response: {'wasSuccessful': False}.")
        return attached[label]
