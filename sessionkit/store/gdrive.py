"""``gdrive://``: a store in a Google Drive folder, through the Drive API (v2).

Unlike a mounted Drive (``/content/drive``), which writes to the VM's disk and
syncs later, every ``put`` here is on Drive when it returns, and a
compare-and-swap is real: content updates and deletes carry ``If-Match: <etag>``
and Drive answers 412 when the file changed, which becomes ``Conflict``. Versions
are etags.

- ``gdrive://<folder path under My Drive>`` (created when missing) or
  ``gdrive://id/<folderId>`` (e.g. a folder shared with you).
- Each key is one file in that folder, titled with the key (``jobs/x/manifest``
  is a file of that title, not nested folders). File ids are cached.
- Auth (extra ``sessionkit[gdrive]``): in Colab, Colab's own credentials after
  ``google.colab.auth.authenticate_user()``, through PyDrive2; elsewhere saved OAuth
  credentials (``credentials_file=`` or ``SESSIONKIT_GDRIVE_CREDENTIALS``) through
  PyDrive2, or a service-account JSON (``service_account=`` or
  ``SESSIONKIT_GDRIVE_SERVICE_ACCOUNT``) through google-auth. Credentials never reach the store, events,
  logs or error messages.
- Rate limits (403 ``userRateLimitExceeded``/``rateLimitExceeded``, 429), 5xx,
  timeouts and dropped connections are retried with truncated exponential backoff
  and jitter, ``retries`` times, then a ``StoreError`` names the key and status.
  ``stats`` counts requests, retries and errors.
- ``expect=ABSENT`` cannot be atomic on Drive (it has no create-if-absent): the
  store creates the file, then lists files of that title; if there are several,
  the earliest ``createdDate`` (then the smallest id) wins, the others are
  deleted and their writers get ``Conflict``. Guaranteed: once every concurrent
  creator has returned, exactly one file remains and exactly one creator succeeded.
  Not guaranteed: a reader between the two steps may briefly see a loser's file.

``endpoint=`` (or ``SESSIONKIT_GDRIVE_ENDPOINT``) points the client elsewhere than
Google, for an emulator; the tests use one, because no real Drive is reachable
from CI. docs/gdrive.md explains the setup.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import socket
import ssl
import threading
import time
from typing import Any, Callable, Optional

from ..errors import Conflict, StoreError
from .base import ABSENT, Expect, Record, Store, check_data, check_expect, check_key, check_prefix

__all__ = ["GDriveStore", "open_gdrive"]

log = logging.getLogger("sessionkit.gdrive")
FOLDER_MIME = "application/vnd.google-apps.folder"
FIELDS = "id,title,etag,createdDate,md5Checksum"
RATE_REASONS = ("userRateLimitExceeded", "rateLimitExceeded")
EXTRA_HINT = 'the gdrive:// store needs PyDrive2: pip install "sessionkit[gdrive]"'


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


class GDriveStore(Store):
    """A store in one Drive folder. See the module docstring for what is guaranteed."""

    def __init__(self, folder: Optional[str] = None, *, folder_id: Optional[str] = None,
                 service_account: Optional[str] = None, credentials_file: Optional[str] = None,
                 endpoint: Optional[str] = None, http: Any = None, retries: int = 6, backoff: float = 0.5,
                 max_backoff: float = 32.0, timeout: float = 60.0) -> None:
        if (folder is None) == (folder_id is None):
            raise ValueError("give a folder path under My Drive or a folder_id (gdrive://<path> or "
                             "gdrive://id/<folderId>)")
        self.retries, self.backoff, self.max_backoff, self.timeout = retries, backoff, max_backoff, timeout
        self.endpoint = endpoint or os.environ.get("SESSIONKIT_GDRIVE_ENDPOINT") or None
        self.stats: dict[str, Any] = {"requests": 0, "retries": 0, "by_method": {}, "errors": {}}
        self._lock = threading.Lock()
        self._local = threading.local()  # httplib2 connections are not thread-safe
        self._http_factory = http
        self._auth = self._authorize(service_account, credentials_file)
        self._ids: dict[str, str] = {}
        self.folder_id = folder_id or self._resolve_folder(folder or "")
        self.url = f"gdrive://id/{self.folder_id}" if folder_id else f"gdrive://{folder}"

    # -- auth and transport ----------------------------------------------------

    def _authorize(self, service_account: Optional[str], credentials_file: Optional[str]) -> Any:
        try:
            from pydrive2.auth import GoogleAuth
        except ImportError as exc:
            raise StoreError(EXTRA_HINT) from exc
        service_account = service_account or os.environ.get("SESSIONKIT_GDRIVE_SERVICE_ACCOUNT")
        credentials_file = credentials_file or os.environ.get("SESSIONKIT_GDRIVE_CREDENTIALS")
        try:
            if service_account:
                # google-auth signs the service account's JWT with `cryptography`. PyDrive2's
                # ServiceAuth goes through oauth2client, which signs with pyOpenSSL's
                # crypto.sign: gone from pyOpenSSL 25 on (docs/decisions.md).
                from google.oauth2 import service_account as google_sa

                return google_sa.Credentials.from_service_account_file(
                    service_account, scopes=["https://www.googleapis.com/auth/drive"])
            if credentials_file:
                gauth = GoogleAuth()
                gauth.LoadCredentialsFile(credentials_file)
                if gauth.credentials is None:
                    raise StoreError(f"no saved Google credentials in {credentials_file}")
                return gauth
            if _in_colab():
                from google.colab import auth as colab_auth
                from oauth2client.client import GoogleCredentials

                colab_auth.authenticate_user()
                gauth = GoogleAuth()
                gauth.credentials = GoogleCredentials.get_application_default()
                return gauth
        except StoreError:
            raise
        except Exception as exc:  # auth libraries raise many types; never echo their secrets
            raise StoreError(f"Google Drive sign-in failed ({type(exc).__name__}); check the "
                             f"credentials file or run google.colab.auth.authenticate_user()") from None
        raise StoreError("no Google credentials: in Colab run google.colab.auth.authenticate_user(); "
                         "elsewhere give service_account= (or SESSIONKIT_GDRIVE_SERVICE_ACCOUNT) or "
                         "credentials_file= (or SESSIONKIT_GDRIVE_CREDENTIALS); see docs/gdrive.md")

    def _service(self) -> Any:
        service = getattr(self._local, "service", None)
        if service is None:
            import httplib2
            from googleapiclient.discovery import build

            http = self._http_factory() if callable(self._http_factory) else httplib2.Http(timeout=self.timeout)
            if hasattr(self._auth, "credentials"):  # PyDrive2 (oauth2client credentials)
                http = self._auth.credentials.authorize(http)
            else:  # google-auth credentials
                import google_auth_httplib2

                http = google_auth_httplib2.AuthorizedHttp(self._auth, http=http)
            options = {"api_endpoint": self.endpoint.rstrip("/") + "/drive/v2/"} if self.endpoint else None
            service = build("drive", "v2", http=http, client_options=options, static_discovery=True,
                            cache_discovery=False)
            self._local.service = service
        return service

    def _call(self, what: str, key: str, make: Callable[[Any], Any], if_match: Optional[str] = None) -> Any:
        """Run one request with retries. Returns the parsed answer (or bytes for media)."""
        from googleapiclient.errors import HttpError

        attempt = 0
        while True:
            request = make(self._service())
            if if_match is not None:
                request.headers["If-Match"] = if_match
            with self._lock:
                self.stats["requests"] += 1
                self.stats["by_method"][what] = self.stats["by_method"].get(what, 0) + 1
            self._local.retried = attempt > 0
            try:
                return request.execute()
            except HttpError as exc:
                status = int(exc.resp.status)
                reason = _reason(exc)
                self._count_error(str(status))
                retryable = (status == 403 and reason in RATE_REASONS) or status in (408, 429) or status >= 500
                if not retryable:
                    raise
                problem = f"HTTP {status} {reason}".strip()
            except (socket.timeout, TimeoutError, ConnectionError, ssl.SSLError, OSError) as exc:
                self._count_error(type(exc).__name__)
                problem = type(exc).__name__
                self._local.service = None  # a dropped connection: start a fresh one
            except Exception as exc:  # httplib2 raises its own errors for broken answers
                if type(exc).__module__.split(".")[0] != "httplib2":
                    raise
                self._count_error(type(exc).__name__)
                problem = type(exc).__name__
                self._local.service = None
            attempt += 1
            if attempt >= self.retries:
                raise StoreError(f"Google Drive: {what} {key!r} failed after {attempt} tries ({problem}); "
                                 f"nothing was changed unless a try reached Drive", key=key)
            with self._lock:
                self.stats["retries"] += 1
            pause = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
            time.sleep(pause / 2 + random.random() * pause / 2)

    def _count_error(self, name: str) -> None:
        with self._lock:
            self.stats["errors"][name] = self.stats["errors"].get(name, 0) + 1

    # -- folders and ids ---------------------------------------------------------

    def _find(self, title: str, parent: str, mime: Optional[str] = None) -> list[dict[str, Any]]:
        q = f"title = '{_quote(title)}' and '{_quote(parent)}' in parents and trashed = false"
        if mime:
            q += f" and mimeType = '{mime}'"
        items: list[dict[str, Any]] = []
        token = None
        while True:
            page = self._call("list", title, lambda s: s.files().list(q=q, maxResults=1000, pageToken=token,
                                                                     fields=f"nextPageToken,items({FIELDS})"))
            items += page.get("items", [])
            token = page.get("nextPageToken")
            if not token:
                return sorted(items, key=lambda f: (f["createdDate"], f["id"]))

    def _resolve_folder(self, path: str) -> str:
        parent = "root"
        for name in [p for p in path.strip("/").split("/") if p]:
            found = self._find(name, parent, FOLDER_MIME)
            if found:
                parent = found[0]["id"]
                continue
            created = self._call("mkdir", name, lambda s: s.files().insert(
                body={"title": name, "mimeType": FOLDER_MIME, "parents": [{"id": parent}]}, fields=FIELDS))
            again = self._find(name, parent, FOLDER_MIME)  # two runtimes may create it at once
            parent = again[0]["id"] if again else created["id"]
        return parent

    def _lookup(self, key: str) -> Optional[dict[str, Any]]:
        found = self._find(key, self.folder_id)
        if not found:
            self._ids.pop(key, None)
            return None
        self._ids[key] = found[0]["id"]
        return found[0]

    def _meta(self, key: str) -> Optional[dict[str, Any]]:
        """Current metadata of ``key`` (id from the cache when known)."""
        from googleapiclient.errors import HttpError

        file_id = self._ids.get(key)
        if file_id is None:
            return self._lookup(key)
        try:
            return self._call("get", key, lambda s: s.files().get(fileId=file_id, fields=FIELDS))
        except HttpError as exc:
            if int(exc.resp.status) == 404:
                return self._lookup(key)  # deleted, maybe written again under a new id
            raise self._error("read", key, exc) from None

    def _error(self, what: str, key: str, exc: Any) -> StoreError:
        return StoreError(f"Google Drive: cannot {what} {key!r} (HTTP {exc.resp.status} {_reason(exc)})",
                          key=key)

    # -- the contract --------------------------------------------------------------

    def get(self, key: str) -> Optional[Record]:
        from googleapiclient.errors import HttpError

        check_key(key)
        for _ in range(5):
            meta = self._meta(key)
            if meta is None:
                return None
            try:
                data = self._call("download", key, lambda s: s.files().get_media(fileId=meta["id"]))
            except HttpError as exc:
                if int(exc.resp.status) == 404:
                    self._ids.pop(key, None)
                    continue
                raise self._error("read", key, exc) from None
            if hashlib.md5(data).hexdigest() == meta.get("md5Checksum"):
                return Record(data, meta["etag"])
            self._ids.pop(key, None)  # it changed between the two requests: read again
        raise StoreError(f"Google Drive: {key!r} keeps changing while being read; try again", key=key)

    def put(self, key: str, data: bytes, *, expect: Expect = None) -> str:
        from googleapiclient.errors import HttpError

        check_key(key)
        data = check_data(key, data)
        check_expect(key, expect)
        if expect is ABSENT:
            return self._create(key, data, exclusive=True)
        if expect is None:
            file_id = self._ids.get(key)  # a cached id needs no lookup; a stale one answers 404
            if file_id is None:
                meta = self._meta(key)
                if meta is None:
                    return self._create(key, data, exclusive=False)
                file_id = meta["id"]
        else:
            file_id = self._ids.get(key) or (self._meta(key) or {}).get("id")
            if file_id is None:
                raise Conflict(key, expect, None)
        try:
            answer = self._call("update", key, lambda s: s.files().update(
                fileId=file_id, media_body=_media(data), fields=FIELDS),
                if_match=expect if isinstance(expect, str) else None)
        except HttpError as exc:
            status = int(exc.resp.status)
            if status not in (404, 412):
                raise self._error("write", key, exc) from None
            if expect is None:  # deleted meanwhile (or the cached id is stale): write it anew
                self._ids.pop(key, None)
                return self.put(key, data)
            current = self._meta(key)
            if current is not None and getattr(self._local, "retried", False) \
                    and current.get("md5Checksum") == hashlib.md5(data).hexdigest():
                return current["etag"]  # a retried update whose first try had landed
            raise Conflict(key, expect, current["etag"] if current else None) from None
        return answer["etag"]

    def _create(self, key: str, data: bytes, exclusive: bool) -> str:
        answer = self._call("insert", key, lambda s: s.files().insert(
            body={"title": key, "parents": [{"id": self.folder_id}]}, media_body=_media(data), fields=FIELDS))
        same = self._find(key, self.folder_id)  # a retried insert, or another writer, may have made more
        winner = same[0] if same else answer
        for other in same:
            if other["id"] != winner["id"] and (other["id"] == answer["id"] or winner["id"] == answer["id"]):
                self._delete_id(key, other["id"], None)  # ours lost, or a duplicate of ours/theirs
        self._ids[key] = winner["id"]
        if winner["id"] == answer["id"]:
            return answer["etag"]
        if exclusive:
            raise Conflict(key, ABSENT, winner["etag"])
        return self.put(key, data)  # an unconditional write: ours goes on top of the winner

    def _delete_id(self, key: str, file_id: str, if_match: Optional[str]) -> bool:
        from googleapiclient.errors import HttpError

        try:
            self._call("delete", key, lambda s: s.files().delete(fileId=file_id), if_match=if_match)
            return True
        except HttpError as exc:
            if int(exc.resp.status) == 404:
                return False
            if int(exc.resp.status) == 412:
                raise
            raise self._error("delete", key, exc) from None

    def delete(self, key: str, *, expect: Expect = None) -> bool:
        from googleapiclient.errors import HttpError

        check_key(key)
        check_expect(key, expect)
        if expect is None and key in self._ids:  # a cached id needs no lookup first
            if self._delete_id(key, self._ids[key], None):
                self._ids.pop(key, None)
                return True
            self._ids.pop(key, None)  # stale: look the key up below
        meta = self._meta(key)
        if meta is None:
            if expect is not None and expect is not ABSENT:
                raise Conflict(key, expect, None)
            return False
        if expect is ABSENT:
            raise Conflict(key, expect, meta["etag"])
        try:
            removed = self._delete_id(key, meta["id"], expect if isinstance(expect, str) else None)
        except HttpError:
            current = self._meta(key)
            raise Conflict(key, expect, current["etag"] if current else None) from None
        self._ids.pop(key, None)
        return removed

    def list(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        q = f"'{_quote(self.folder_id)}' in parents and trashed = false"
        titles: set[str] = set()
        token = None
        while True:
            page = self._call("list", prefix or "*", lambda s: s.files().list(
                q=q, maxResults=1000, pageToken=token, fields=f"nextPageToken,items({FIELDS})"))
            for item in page.get("items", []):
                if item["title"].startswith(prefix):
                    titles.add(item["title"])
                    self._ids.setdefault(item["title"], item["id"])
            token = page.get("nextPageToken")
            if not token:
                return sorted(titles)


def _media(data: bytes) -> Any:
    from googleapiclient.http import MediaInMemoryUpload

    return MediaInMemoryUpload(data, mimetype="application/octet-stream", resumable=False)


def _reason(exc: Any) -> str:
    try:
        body = json.loads(exc.content)
        return body["error"]["errors"][0]["reason"]
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


def _in_colab() -> bool:
    import sys

    return "google.colab" in sys.modules or bool(os.environ.get("COLAB_RELEASE_TAG")) and \
        not os.environ.get("KAGGLE_KERNEL_RUN_TYPE")


def open_gdrive(url: str) -> GDriveStore:
    """``gdrive://<folder path under My Drive>`` or ``gdrive://id/<folderId>``."""
    rest = url[len("gdrive://"):]
    if not rest.strip("/"):
        raise ValueError(f"{url!r} names no folder: use gdrive://<folder path under My Drive> or "
                         f"gdrive://id/<folderId>")
    if rest.startswith("id/"):
        return GDriveStore(folder_id=rest[3:].strip("/"))
    return GDriveStore(rest)
