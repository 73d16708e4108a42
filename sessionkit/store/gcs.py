"""``gs://<bucket>/<prefix>``: a store in Google Cloud Storage (extra ``sessionkit-runtime[gcs]``).

Versions are object generations: ``ifGenerationMatch=0`` creates atomically and
``ifGenerationMatch=<generation>`` updates atomically; GCS is strongly consistent
(see ``objects.py`` for the shared protocol: tombstones, write nonces, retries).
A read is two requests (metadata, then the content of that generation); a write one.
Google limits writes to one object to about one per second: a heartbeat every 30 s
and a checkpoint every few seconds are far below that.

Credentials: ``STORAGE_EMULATOR_HOST`` (an emulator such as fake-gcs-server) means
anonymous ones; in Colab ``google.colab.auth.authenticate_user()`` is called first;
elsewhere Google's application default credentials (``gcloud auth application-default
login`` or ``GOOGLE_APPLICATION_CREDENTIALS``). ``GOOGLE_CLOUD_PROJECT`` names the project.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from ..errors import StoreError
from ..env import in_colab
from .base import CHUNK_BYTES, replace_file
from .objects import Obj, ObjectStore, _PreconditionFailed

__all__ = ["GCSStore", "open_gcs"]

EXTRA_HINT = 'the gs:// store needs google-cloud-storage (Colab ships it): pip install "sessionkit-runtime[gcs]"'
NONCE = "sessionkit-write"
TOMBSTONE = "sessionkit-deleted"


class GCSStore(ObjectStore):
    """A store under ``gs://bucket/prefix``."""

    scheme = "gs"
    create_only_condition = "ifGenerationMatch=0"
    match_condition = "ifGenerationMatch"

    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None, timeout: float = 20.0,
                 **kw: Any) -> None:
        super().__init__(bucket, prefix, **kw)
        try:
            from google.api_core import exceptions as api_exceptions
            from google.cloud import storage
        except ImportError:
            raise StoreError(EXTRA_HINT) from None
        self._api = api_exceptions
        self.timeout = timeout
        if client is None:
            if os.environ.get("STORAGE_EMULATOR_HOST"):
                from google.auth.credentials import AnonymousCredentials

                client = storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", "emulator"),
                                        credentials=AnonymousCredentials())
            else:
                if in_colab():
                    from google.colab import auth as colab_auth  # type: ignore[import-not-found]

                    colab_auth.authenticate_user()
                client = storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT"))
        self._client = client
        self._bucket = client.bucket(bucket)

    def _read(self, name: str) -> Optional[Obj]:
        for _attempt in range(5):
            blob = self._bucket.get_blob(name, retry=None, timeout=self.timeout)
            if blob is None:
                return None
            meta = blob.metadata or {}
            if meta.get(TOMBSTONE) == "1":
                return Obj(b"", str(blob.generation), meta.get(NONCE), True)
            self._count("download")  # the second request of a read
            try:
                data = blob.download_as_bytes(if_generation_match=blob.generation, retry=None, timeout=self.timeout)
            except (self._api.PreconditionFailed, self._api.NotFound):
                continue  # replaced between the two requests: read again
            return Obj(data, str(blob.generation), meta.get(NONCE), False)
        raise StoreError(f"{self.url}: {name!r} keeps changing while being read; try again")

    def _write(self, name: str, data: bytes, *, create_only: bool, match: Optional[str], nonce: str,
               tombstone: bool) -> str:
        blob = self._bucket.blob(name)
        blob.metadata = {NONCE: nonce, **({TOMBSTONE: "1"} if tombstone else {})}
        generation = 0 if create_only else (int(match) if match is not None else None)
        try:
            blob.upload_from_string(data, content_type="application/octet-stream", if_generation_match=generation,
                                    retry=None, timeout=self.timeout)
        except self._api.PreconditionFailed:
            raise _PreconditionFailed(name) from None
        return str(blob.generation)

    def _write_file(self, name: str, path: str, nonce: str) -> str:
        from google.cloud.storage.retry import DEFAULT_RETRY

        # a chunk size makes it a resumable upload, which the library resumes after a failed
        # chunk (DEFAULT_RETRY); the object exists once the last chunk is in
        blob = self._bucket.blob(name, chunk_size=CHUNK_BYTES)
        blob.metadata = {NONCE: nonce}
        blob.upload_from_filename(path, content_type="application/octet-stream", retry=DEFAULT_RETRY,
                                  timeout=self.timeout)
        return str(blob.generation)

    def _read_file(self, name: str, path: str) -> Optional[str]:
        for _attempt in range(5):
            blob = self._bucket.get_blob(name, retry=None, timeout=self.timeout)
            if blob is None or (blob.metadata or {}).get(TOMBSTONE) == "1":
                return None
            self._count("download")
            try:
                with replace_file(path) as fh:  # checked against the object's MD5 by the library
                    blob.download_to_file(fh, if_generation_match=blob.generation, checksum="md5",
                                          retry=None, timeout=self.timeout)
            except (self._api.PreconditionFailed, self._api.NotFound):
                continue  # replaced while being read: read again
            return str(blob.generation)
        raise StoreError(f"{self.url}: {name!r} keeps changing while being read; try again")

    def _names(self, prefix: str) -> list[tuple[str, bool]]:
        return [(b.name, (b.metadata or {}).get(TOMBSTONE) == "1")
                for b in self._client.list_blobs(self._bucket, prefix=prefix, retry=None, timeout=self.timeout)]

    def _retryable(self, exc: BaseException) -> bool:
        import requests

        api = self._api
        return isinstance(exc, (api.TooManyRequests, api.InternalServerError, api.BadGateway,
                                api.ServiceUnavailable, api.GatewayTimeout, requests.ConnectionError,
                                requests.Timeout, ConnectionError, TimeoutError))

    def _valid_version(self, version: str) -> bool:
        return version.isdigit() and int(version) > 0

    def _unissued_version(self) -> str:
        return "1"  # generations are microsecond timestamps: none is 1

    def endpoint(self) -> str:
        # Client.api_endpoint is the connection's base URL; google-cloud-storage before 2.15
        # has it on the connection only
        return str(getattr(self._client, "api_endpoint", None) or self._client._connection.API_BASE_URL)


def open_gcs(url: str) -> GCSStore:
    """``gs://<bucket>/<prefix>``."""
    bucket, _, prefix = url[len("gs://"):].partition("/")
    return GCSStore(bucket, prefix)
