"""A batch of new records under keys whose content never changes (content-addressed chunks).

A save of a large state writes many such records at once: its chunks, keyed by their hash.
On a local folder, GCS or S3 each write costs one request and lands at once, so a batch
is just those writes (``DirectRecords``). On Drive each new key costs a change of the one
catalog file, and four threads changing it at once keep colliding; there a batch uploads
its files first and catalogues them together (``gdrive_batch``).

What every batch promises:

- ``put`` and ``put_file`` may be called from several threads at once.
- A key already holding a record keeps what it holds (its content is the same bytes).
- The records are all readable once ``publish()`` returns; before, they may or may not be.
- ``abandon()`` (after a failure) removes what the batch wrote where it can; what a batch
  killed midway wrote is removed by the store's later writers or its ``sweep``, never
  named by anything.
"""

from __future__ import annotations

import os
from typing import Protocol

__all__ = ["NewRecords", "DirectRecords"]


class NewRecords:
    """The interface (module docstring); ``DirectRecords`` is the plain implementation."""

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def put_file(self, key: str, path: "str | os.PathLike[str]") -> None:
        raise NotImplementedError

    def publish(self) -> None:
        """Make every record put so far readable."""

    def abandon(self) -> None:
        """Give the batch up: remove what it wrote where the store can (it is never published)."""


class _Writes(Protocol):
    """What ``DirectRecords`` needs of a store (any ``Store``)."""

    def put(self, key: str, data: bytes) -> str: ...

    def put_file(self, key: str, path: "str | os.PathLike[str]") -> str: ...


class DirectRecords(NewRecords):
    """Each record written at once with the store's own ``put``/``put_file``. What an
    abandoned or killed batch wrote is readable and named by nothing: the job's sweep
    (``jobs/saves.py``) finds it by listing and removes it."""

    def __init__(self, store: _Writes) -> None:
        self.store = store

    def put(self, key: str, data: bytes) -> None:
        self.store.put(key, data)

    def put_file(self, key: str, path: "str | os.PathLike[str]") -> None:
        self.store.put_file(key, path)
