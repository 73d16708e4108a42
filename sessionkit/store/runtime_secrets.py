"""Reading one value from a notebook runtime's own secret store: Colab's or Kaggle's.

``colab-secret:NAME`` reads ``google.colab.userdata.get(NAME)`` (Colab's "Secrets" in the
sidebar, with "Notebook access" switched on for this notebook); ``kaggle-secret:NAME``
reads ``kaggle_secrets.UserSecretsClient().get_secret(NAME)`` (Kaggle's "Add-ons →
Secrets", attached to this notebook). The value is returned to the caller and nothing
else: never printed, logged, put in an error message or written anywhere.

The exceptions handled are the real modules' (confirmed from their source):
colabtools ``google/colab/userdata.py`` raises ``SecretNotFoundError`` (no such secret),
``NotebookAccessError`` (the notebook was not granted access), ``TimeoutException`` (no
Colab UI answered within 10 s, e.g. an exported run) and ``ValueError`` (a bad name);
Kaggle's ``patches/kaggle_secrets.py`` (Kaggle/docker-python) raises ``CredentialError``
(no secrets token in this session, or the service answered 401/403), ``BackendError``
(any unsuccessful answer: which one a missing or unattached label gets is not documented,
so both read as "missing or not attached"), ``ValidationError`` (an empty label) and
``ConnectionError`` (the notebook's internet is off).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..errors import SignInError

__all__ = ["SecretRef", "parse_secret_ref", "read_secret"]

PREFIXES = {"colab-secret:": "colab", "kaggle-secret:": "kaggle"}


@dataclass(frozen=True)
class SecretRef:
    """A named secret in a runtime's secret store (``colab-secret:NAME``)."""

    runtime: str  # "colab" or "kaggle"
    name: str

    def __str__(self) -> str:
        return f"{self.runtime}-secret:{self.name}"


def parse_secret_ref(value: str, parameter: str) -> Optional[SecretRef]:
    """The secret ``value`` names, or None when it names none (a path or JSON text)."""
    for prefix, runtime in PREFIXES.items():
        if value.startswith(prefix):
            name = value[len(prefix):].strip()
            if not name or any(c.isspace() for c in name):
                raise SignInError(f"{parameter}={prefix}NAME needs the secret's name after the colon, "
                                  f"without spaces (got {value!r})")
            return SecretRef(runtime, name)
    return None


def read_secret(ref: SecretRef) -> str:
    """The secret's text; ``SignInError`` saying what to do when it cannot be read."""
    text = _colab(ref.name) if ref.runtime == "colab" else _kaggle(ref.name)
    if not text or not text.strip():
        raise SignInError(f"the secret {ref} is empty: paste the whole credentials JSON "
                          f"(what `sessionkit login` saved) as its value")
    return text


def _colab(name: str) -> str:
    try:
        from google.colab import userdata  # type: ignore[import-not-found]
    except ImportError:
        raise SignInError(f"colab-secret:{name} works only in a Colab notebook (google.colab.userdata "
                          f"cannot be imported here); elsewhere give the credentials file or its JSON text "
                          f"in SESSIONKIT_GDRIVE_CREDENTIALS") from None
    missing = getattr(userdata, "SecretNotFoundError", ())
    no_access = getattr(userdata, "NotebookAccessError", ())
    timeout = getattr(userdata, "TimeoutException", ())
    try:
        return userdata.get(name)
    except missing:
        raise SignInError(f"Colab has no secret named {name!r}: open Secrets (the key icon in Colab's left "
                          f"sidebar), add {name!r} with the credentials JSON as its value, switch on "
                          f"'Notebook access', and run the cell again") from None
    except no_access:
        raise SignInError(f"this notebook may not read the Colab secret {name!r}: in Secrets (the key icon "
                          f"in the left sidebar) switch on 'Notebook access' for it, or answer 'Grant "
                          f"access' when Colab asks, then run the cell again") from None
    except timeout:
        raise SignInError(f"Colab did not hand over the secret {name!r} within its 10 s: secrets are served "
                          f"only while the notebook is open in Colab's page; open it there and run the cell "
                          f"again") from None
    except ValueError:
        raise SignInError(f"{name!r} is not a valid Colab secret name (no spaces)") from None


def _kaggle(name: str) -> str:
    try:
        import kaggle_secrets  # type: ignore[import-not-found]
    except ImportError:
        raise SignInError(f"kaggle-secret:{name} works only in a Kaggle notebook (kaggle_secrets cannot be "
                          f"imported here); elsewhere give the credentials file or its JSON text in "
                          f"SESSIONKIT_GDRIVE_CREDENTIALS") from None
    attach = (f"in the notebook editor open Add-ons → Secrets, add {name!r} with the credentials JSON as "
              f"its value and tick it for this notebook, then run again (a saved version needs it ticked "
              f"before 'Save & Run All')")
    not_attached = tuple(getattr(kaggle_secrets, n) for n in ("CredentialError", "BackendError")
                         if isinstance(getattr(kaggle_secrets, n, None), type))
    invalid = getattr(kaggle_secrets, "ValidationError", ())
    try:
        return kaggle_secrets.UserSecretsClient().get_secret(name)
    except not_attached as exc:
        raise SignInError(f"Kaggle gave no secret {name!r} ({type(exc).__name__}: missing, or not attached "
                          f"to this notebook): {attach}") from None
    except invalid:
        raise SignInError(f"{name!r} is not a valid Kaggle secret label") from None
    except ConnectionError:
        raise SignInError(f"Kaggle's secret service could not be reached for {name!r}: switch the "
                          f"notebook's Internet on (Settings → Internet) and run again") from None
