"""Every error sessionkit raises, under one root: ``SessionkitError``.

Each message names the key, path or value that is wrong and says what to do,
because the person reading it is usually in a notebook with no debugger.
"""

from __future__ import annotations

from typing import Optional


class SessionkitError(Exception):
    """Root of all sessionkit errors: ``except SessionkitError`` catches ours only."""


class SessionkitWarning(UserWarning):
    """Warnings about setups that work but are not safe (e.g. a mounted Drive)."""


class InvalidKey(SessionkitError, ValueError):
    """A store key that is not a clean relative ``/``-separated name."""

    def __init__(self, key: object, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(
            f"invalid store key {key!r}: {reason}. Keys are relative names such as "
            f"'jobs/train/manifest': non-empty segments separated by '/', "
            f"without '.', '..', backslashes or NUL."
        )


class StoreError(SessionkitError):
    """A store could not do what was asked (I/O failure, corrupt record, ...)."""

    def __init__(self, message: str, *, key: Optional[str] = None) -> None:
        self.key = key
        super().__init__(message)


class StoreFull(StoreError):
    """The disk (or quota) that holds a store is full: free space and run again."""


class StoreReadOnly(StoreError):
    """A store cannot be written here: a read-only mount, or no permission."""


class StoreMissing(StoreError):
    """A store's folder is gone (removed while in use)."""


class StoreTimeout(StoreError):
    """A store did not answer within the time its caller could wait. The request may
    still land later: callers that write treat the outcome as unknown."""


class SignInError(StoreError):
    """Google sign-in for a ``gdrive://`` store failed or gave no usable credentials
    (a missing secret, a sign-in that timed out or was refused); the message says what
    to do. It never holds a secret."""


class Conflict(StoreError):
    """A conditional write or delete found another version than it expected.

    ``expected`` is the version the caller passed (or ``ABSENT``); ``actual`` is
    the version found (``None`` when the key does not exist).
    """

    def __init__(self, key: str, expected: object, actual: Optional[str]) -> None:
        self.expected = expected
        self.actual = actual
        found = "no record" if actual is None else f"version {actual!r}"
        want = f"version {expected!r}" if isinstance(expected, str) else "no record (create only)"
        super().__init__(
            f"conflict on {key!r}: expected {want}, found {found}. Another writer got "
            f"there first: read the key again and retry, or stop if you lost a lease.",
            key=key,
        )


class CorruptRecord(StoreError):
    """A stored record could not be decoded (truncated, foreign or damaged file)."""

    def __init__(self, key: str, where: str, reason: str, version: Optional[str] = None) -> None:
        self.where = where
        self.reason = reason
        self.version = version  # the damaged record's version, when its header says
        super().__init__(
            f"record {key!r} at {where} is unreadable: {reason}. Nothing was changed; "
            f"move the file away (or write the key again) to recover.",
            key=key,
        )


class LeaseLost(SessionkitError):
    """This writer may no longer act under its lease: stop. Why, in ``reason``: "superseded"
    (a newer token exists: ``newer``, and ``newer_holder`` when known), "released" (this
    holder gave it up itself) or "deadline" (it could not renew in time; ``cause`` is the
    last renewal's error). ``token`` is this writer's own token."""

    def __init__(self, name: str, token: Optional[int], newer: Optional[int], what: str = "",
                 cause: Optional[str] = None, *, released: bool = False,
                 newer_holder: Optional[str] = None) -> None:
        self.name = name
        self.token = token
        self.newer = newer
        self.cause = cause
        self.newer_holder = newer_holder
        doing = f" ({what})" if what else ""
        mine = f"token {token}" if token is not None else "no token"
        superseded = newer is not None and (token is None or newer > token)
        by = f" (held by {newer_holder})" if newer_holder else ""
        if released:
            self.reason = "released"
            after = (f" Since then token {newer}{by} was issued to another holder."
                     if superseded else "")
            why = (f"this writer ({mine}) released the lease itself and holds it no longer.{after} "
                   f"Acquire the lease again before writing.")
        elif superseded:
            self.reason = "superseded"
            why = (f"this writer holds {mine}, the store has token {newer}{by}: another runtime "
                   f"took over and is primary now. This one must stop writing.")
        else:
            self.reason = "deadline"
            failed = f" The last renewal failed: {cause}" if cause else ""
            why = (f"this writer ({mine}) could not renew in time, so it stopped "
                   f"acting as holder by itself; no newer holder is known.{failed} Check that the "
                   f"store answers (network, rate limits, disk space), then run again: the lease "
                   f"is taken up anew.")
        super().__init__(f"lease {name!r} lost{doing}: {why}")

    def but_superseded(self, newer: int, newer_holder: Optional[str]) -> "LeaseLost":
        """The same loss, now that a newer token (and its holder) is known."""
        return LeaseLost(self.name, self.token, newer, "", self.cause, released=self.reason == "released",
                         newer_holder=newer_holder)


class Superseded(SessionkitError):
    """Another run of a job has written it since this ``Job`` object last did, and this one
    was only recording how its own, earlier run ended: it writes nothing over the newer run."""


class LeaseTimeout(SessionkitError, TimeoutError):
    """``acquire(timeout=...)`` gave up: someone else holds the lease."""


class NotFound(SessionkitError, KeyError):
    """Something asked for by name is not in the store (a job, a blob, an approval request).
    A ``KeyError`` (hence a ``LookupError``) too, so ``except KeyError`` and ``except
    LookupError`` both catch it."""

    def __str__(self) -> str:  # KeyError's own str() shows the message in quotes
        return str(self.args[0]) if self.args else ""


class InvalidTransition(SessionkitError, ValueError):
    """A status change a life cycle does not allow (a job's status, a session's role)."""

    def __init__(self, what: str, current: str, wanted: str, allowed: tuple[str, ...] = ()) -> None:
        self.what, self.current, self.wanted = what, current, wanted
        can = ", ".join(sorted(allowed)) or "nothing (final)"
        super().__init__(f"{what} cannot go from {current!r} to {wanted!r}; "
                         f"from {current!r} it can go to: {can}")


class JobCancelled(SessionkitError):
    """The job was cancelled; a cancelled job does not run again."""


class DuplicateKey(SessionkitError, ValueError):
    """Two items of one run have the same key: the second would be skipped as done."""

    def __init__(self, job: str, key: str, item: object) -> None:
        self.key = key
        super().__init__(f"job {job!r}: key {key!r} (item {item!r}) appears twice in the items; "
                         f"keys must be unique, or the second would count as done without running. "
                         f"Make key() tell them apart, or drop duplicates before track().")


class SegmentMissing(CorruptRecord):
    """A done segment a manifest names is not in the store: the manifest read is stale
    (another writer merged and removed it) or the store lost it."""


class BlobError(SessionkitError):
    """No generation of a saved blob could be loaded."""


class CommandError(SessionkitError):
    """A problem the command line reports in one line (exit code 2)."""
