"""Local folder store: the embedded default. A plain path or ``file://`` URL.

Each key is one file; a put writes a temporary file in the same folder, flushes
and fsyncs it, renames it over the old file and fsyncs the folder, so a reader
sees the old record or the new one, never a torn one, and the record survives a
crash or power loss once ``put`` returns. Writes to one key are serialised by an
``flock`` on a lock file beside it, which makes compare-and-swap correct across
the processes of one machine. File layout and record format: ``docs/format.md``.

Not for coordination across machines: a folder shared over NFS or a mounted
Google Drive (``/content/drive``) does not give these guarantees to other
machines. A mounted Drive in particular writes to the VM's disk first and syncs
later, so opening one warns once.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import time
import warnings
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator, Optional
from urllib.parse import quote, unquote

from ..errors import CorruptRecord, InvalidKey, SessionkitWarning, StoreError, StoreFull, StoreMissing, StoreReadOnly
from .base import (CHUNK_BYTES, Expect, Record, Store, check_data, check_expect, check_key, check_prefix,
                   match_expect, replace_file)

try:
    import fcntl
except ImportError:  # Windows: no flock; reported clearly when a store is opened
    fcntl = None  # type: ignore[assignment]

__all__ = ["LocalStore", "open_local", "flush_mounted_drive", "MOUNTED_DRIVE_ROOT"]

SUFFIX = ".skv"
_TMP_MARK = "%tmp-"  # '%' + non-hex never comes out of quote(), so no key can clash
_LOCK_MARK = "%lock"
_MAGIC = b"SKV1"
_SAFE = "-_.~!$&'()+,;=@ "  # kept as-is in file names; everything else is %-encoded
_MAX_NAME = 200  # bytes of an encoded segment; leaves room for suffixes under 255
TEMP_MAX_AGE = 3600.0  # seconds after which a crashed writer's temp file is removed
MOUNTED_DRIVE_ROOT = Path("/content/drive")
log = logging.getLogger("sessionkit.store")
UNREADABLE = "unreadable"  # the version reported for a damaged or foreign record file

_warned_roots: set[str] = set()


def encode_segment(key: str, segment: str) -> str:
    """File-system name of one key segment (reversible with ``unquote``).

    Non-ASCII and unsafe characters are %-encoded, so names are portable ASCII.
    A name ending in the record suffix gets its last letter encoded, so a folder
    name can never equal a record's file name.
    """
    name = quote(segment, safe=_SAFE)
    if name.endswith(SUFFIX):
        name = name[:-1] + "%76"  # 'v'
    if len(name) > _MAX_NAME:
        raise InvalidKey(key, f"segment {segment[:30]!r}... is too long for a local folder store "
                              f"({len(name)} bytes after encoding, at most {_MAX_NAME})")
    return name


def _fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some file systems (e.g. certain network mounts) cannot fsync a folder;
        # the rename is still atomic there, only its durability is up to them.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _encode_record(version: str, data: bytes) -> bytes:
    header = b"%s %s %d %08x\n" % (_MAGIC, version.encode("ascii"), len(data), zlib.crc32(data))
    return header + data


class LocalStore(Store):
    """A store in a folder of this machine (created when missing)."""

    def __init__(self, root: "str | os.PathLike[str]") -> None:
        if fcntl is None:
            raise StoreError(
                f"the local folder store at {root} needs POSIX file locks (Linux, macOS, "
                f"Colab); this platform has none. Use memory:// for experiments."
            )
        self.root = Path(root).expanduser().absolute()
        self.url = self.root.as_uri()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise StoreError(f"{self.root} is a file, not a folder: give a folder path for the store") from None
        except OSError as exc:
            raise self._failed(None, "create the store folder", exc) from exc
        if not self.root.is_dir():
            raise StoreError(f"{self.root} is not a folder: give a folder path for the store")
        self._swept: set[Path] = set()  # folders whose old temp files a write of this object removed
        self.on_mounted_drive = self.root == MOUNTED_DRIVE_ROOT or MOUNTED_DRIVE_ROOT in self.root.parents
        if self.on_mounted_drive and str(self.root) not in _warned_roots:
            _warned_roots.add(str(self.root))
            warnings.warn(
                f"the store {self.root} is on a mounted Google Drive: its writes reach Drive "
                f"only later (drive.flush_and_unmount() forces them), so a checkpoint there is "
                f"not durable when written and other runtimes may see it late or never. Fine "
                f"for one runtime; for handover across runtimes use a gdrive:// store.",
                SessionkitWarning,
                stacklevel=3,
            )

    # -- errors ----------------------------------------------------------------

    def _failed(self, key: Optional[str], doing: str, exc: OSError) -> StoreError:
        """An OSError as a StoreError naming the store, the key, the cause and the remedy."""
        where = f"{key!r} in {self.url}" if key else self.url
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return StoreFull(
                f"cannot {doing} {where}: the disk (or quota) holding {self.root} is full. Free "
                f"space there, or open the store on a disk with room, and run again: nothing "
                f"already saved was changed, and a job resumes from its last checkpoint.", key=key)
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            cause = "is on a read-only file system" if exc.errno == errno.EROFS else \
                f"cannot be written by this user ({exc.strerror})"
            return StoreReadOnly(
                f"cannot {doing} {where}: {exc.filename or self.root} {cause}. Use a store in a "
                f"folder this runtime can write, or fix the mount or permissions; nothing already "
                f"saved was changed.", key=key)
        if not self.root.is_dir():
            return StoreMissing(
                f"cannot {doing} {where}: the store folder {self.root} is gone (removed while "
                f"in use?). Put it back, or open the store again to start an empty one.", key=key)
        return StoreError(f"cannot {doing} {where}: {exc.strerror} ({exc.filename})", key=key)

    # -- paths -----------------------------------------------------------------

    def _path(self, key: str) -> Path:
        segments = check_key(key).split("/")
        names = [encode_segment(key, s) for s in segments]
        names[-1] += SUFFIX
        return self.root.joinpath(*names)

    def path_of(self, key: str) -> Path:
        """The file that holds ``key`` (for messages and tools; do not write it directly)."""
        return self._path(key)

    # -- reading ---------------------------------------------------------------

    def get(self, key: str) -> Optional[Record]:
        path = self._path(key)
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        except IsADirectoryError:
            raise CorruptRecord(key, str(path), "it is a folder, not a record file") from None
        except OSError as exc:
            raise self._failed(key, "read", exc) from exc
        return self._decode(key, path, raw)

    def _decode(self, key: str, path: Path, raw: bytes) -> Record:
        end = raw.find(b"\n", 0, 256)
        if end < 0:
            raise CorruptRecord(key, str(path), "no sessionkit record header", UNREADABLE)
        parts = raw[:end].split(b" ")
        if len(parts) != 4 or parts[0] != _MAGIC:
            raise CorruptRecord(key, str(path), "not a sessionkit record (bad header)", UNREADABLE)
        try:
            version = parts[1].decode("ascii")
            length = int(parts[2])
            crc = int(parts[3], 16)
        except ValueError:
            raise CorruptRecord(key, str(path), "malformed record header", UNREADABLE) from None
        data = raw[end + 1:]
        if len(data) != length:
            raise CorruptRecord(key, str(path), f"truncated: {len(data)} of {length} bytes", version)
        if zlib.crc32(data) != crc:
            raise CorruptRecord(key, str(path), "checksum mismatch (damaged file)", version)
        return Record(data, version)

    def _current_version(self, key: str, path: Path) -> Optional[str]:
        try:
            with open(path, "rb") as fh:
                head = fh.readline(256)
        except FileNotFoundError:
            return None
        parts = head.rstrip(b"\n").split(b" ")
        if len(parts) != 4 or parts[0] != _MAGIC:
            return UNREADABLE  # a plain put may replace it; a conditional one conflicts
        return parts[1].decode("ascii", "replace")

    # -- writing ---------------------------------------------------------------

    def _ensure_dir(self, folder: Path) -> None:
        if folder.is_dir():
            return
        if not self.root.is_dir():  # never recreate a store removed while in use: say so
            raise FileNotFoundError(errno.ENOENT, "the store folder is gone", str(self.root))
        created = []
        probe = folder
        while not probe.exists() and probe != self.root:
            created.append(probe)
            probe = probe.parent
        folder.mkdir(parents=True, exist_ok=True)
        for made in created:  # make each new folder's entry durable in its parent
            _fsync_dir(made.parent)

    def _locked(self, path: Path) -> "_KeyLock":
        return _KeyLock(path.with_name(path.name + _LOCK_MARK))

    def put(self, key: str, data: bytes, *, expect: Expect = None) -> str:
        path = self._path(key)
        data = check_data(key, data)
        check_expect(key, expect)
        try:
            return self._put(key, path, data, expect)
        except OSError as exc:
            raise self._failed(key, "write", exc) from exc

    def _put(self, key: str, path: Path, data: "bytes | Callable[[Any, str], None]", expect: Expect) -> str:
        """Write a record; ``data`` is its bytes, or a function writing the header and bytes
        of the given version to a file (``put_file``)."""
        try:
            self._ensure_dir(path.parent)
        except (NotADirectoryError, FileExistsError) as exc:
            raise StoreError(f"cannot write {key!r}: a file stands where its folder "
                             f"{path.parent} should be", key=key) from exc
        with self._locked(path):
            current = self._current_version(key, path)
            match_expect(key, expect, current)
            version = _next_version(current)
            tmp = path.with_name(f"{path.name}{_TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                with os.fdopen(fd, "wb") as fh:
                    if callable(data):
                        data(fh, version)
                    else:
                        fh.write(_encode_record(version, data))
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            finally:
                _remove_quietly(tmp)  # gone after the rename; what a failed write left otherwise
            _fsync_dir(path.parent)
        self._sweep_once(path.parent)
        return version

    def _sweep_once(self, folder: Path) -> None:
        """After a write: remove the temp files crashed writers left in ``folder``, once per
        folder per store object. Cleanup rides on writes only: reading (``list``, ``get``)
        never changes a store, so a read-only one reads as it is."""
        if folder in self._swept:
            return
        self._swept.add(folder)
        now = time.time()
        try:
            entries = [e for e in os.scandir(folder) if _TMP_MARK in e.name]
        except OSError as exc:
            log.info("could not look for old temp files in %s: %s", folder, exc)
            return
        for entry in entries:
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime > TEMP_MAX_AGE:
                    os.unlink(entry.path)
            except FileNotFoundError:
                continue  # another process swept it first
            except OSError as exc:
                log.info("could not remove the old temp file %s: %s", entry.path, exc)

    def put_file(self, key: str, source: "str | os.PathLike[str]") -> str:
        """Copy the file ``source`` into the record at ``key``, a chunk at a time: one pass
        for its length and checksum (the header comes first), one to copy it."""
        path = self._path(key)
        try:
            length, crc = 0, 0
            with open(source, "rb") as fh:
                while chunk := fh.read(CHUNK_BYTES):
                    length += len(chunk)
                    crc = zlib.crc32(chunk, crc)
        except OSError as exc:
            raise StoreError(f"cannot read {source} to store it at {key!r}: {exc.strerror}", key=key) from exc

        def write(fh: Any, version: str) -> None:
            fh.write(b"%s %s %d %08x\n" % (_MAGIC, version.encode("ascii"), length, crc))
            copied = 0
            with open(source, "rb") as src:
                while chunk := src.read(CHUNK_BYTES):
                    copied += len(chunk)
                    fh.write(chunk)
            if copied != length:
                raise StoreError(f"{source} changed while it was stored at {key!r}; store it again", key=key)
        try:
            return self._put(key, path, write, None)
        except OSError as exc:
            raise self._failed(key, "write", exc) from exc

    def get_file(self, key: str, target: "str | os.PathLike[str]") -> Optional[str]:
        """Copy the record at ``key`` into the file ``target``, a chunk at a time, checking
        its length and checksum before ``target`` is replaced."""
        path = self._path(key)
        try:
            fh = open(path, "rb")
        except (FileNotFoundError, NotADirectoryError):
            return None
        except IsADirectoryError:
            raise CorruptRecord(key, str(path), "it is a folder, not a record file") from None
        except OSError as exc:
            raise self._failed(key, "read", exc) from exc
        with fh:
            parts = fh.readline(256).rstrip(b"\n").split(b" ")
            if len(parts) != 4 or parts[0] != _MAGIC:
                raise CorruptRecord(key, str(path), "not a sessionkit record (bad header)", UNREADABLE)
            try:
                version, length, crc = parts[1].decode("ascii"), int(parts[2]), int(parts[3], 16)
            except ValueError:
                raise CorruptRecord(key, str(path), "malformed record header", UNREADABLE) from None
            copied, seen = 0, 0
            with replace_file(target) as out:
                while chunk := fh.read(CHUNK_BYTES):
                    copied += len(chunk)
                    seen = zlib.crc32(chunk, seen)
                    out.write(chunk)
                if copied != length:
                    raise CorruptRecord(key, str(path), f"truncated: {copied} of {length} bytes", version)
                if seen != crc:
                    raise CorruptRecord(key, str(path), "checksum mismatch (damaged file)", version)
        return version

    def delete(self, key: str, *, expect: Expect = None) -> bool:
        path = self._path(key)
        check_expect(key, expect)
        if not path.parent.is_dir():
            match_expect(key, expect, None)
            return False
        try:
            with self._locked(path):
                current = self._current_version(key, path)
                match_expect(key, expect, current)
                if current is None:
                    return False
                os.unlink(path)
                _fsync_dir(path.parent)
                return True
        except OSError as exc:
            raise self._failed(key, "delete", exc) from exc

    # -- listing ---------------------------------------------------------------

    def list(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        start_key = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root
        if start_key:
            start = self.root.joinpath(*(encode_segment(prefix, s) for s in start_key.split("/")))
        try:
            found = [k for k in self._walk(start, start_key) if k.startswith(prefix)]
        except OSError as exc:
            raise self._failed(prefix or None, "list", exc) from exc
        return sorted(found)

    def _walk(self, folder: Path, key_prefix: str) -> Iterator[str]:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            name = entry.name
            if _TMP_MARK in name:
                continue  # a writer's temp file (in flight, or left by a crash: writes sweep those)
            if entry.is_dir(follow_symlinks=False):
                segment = _decode_name(key_prefix, name)
                if segment is not None:
                    yield from self._walk(Path(entry.path), _join(key_prefix, segment))
            elif name.endswith(SUFFIX):
                segment = _decode_name(key_prefix, name[: -len(SUFFIX)])
                if segment is not None:
                    yield _join(key_prefix, segment)

    def sweep(self, max_age: float = TEMP_MAX_AGE) -> int:
        """Remove temp files older than ``max_age`` seconds everywhere; return how many."""
        removed = 0
        cutoff = time.time() - max_age
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                if _TMP_MARK in name:
                    path = os.path.join(folder, name)
                    try:
                        if os.stat(path).st_mtime < cutoff:
                            os.unlink(path)
                            removed += 1
                    except FileNotFoundError:
                        continue
        return removed


class _KeyLock:
    """An exclusive ``flock`` on a key's lock file, held for one read-check-write.

    The lock file exists only while someone holds or waits for it: the holder removes it
    before letting go, so a store keeps no file per key it ever wrote (a checkpoint's
    segments and blobs would leave one each). A waiter that then gets the lock on the
    removed file sees that the path no longer names it and tries again on a new one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> "_KeyLock":
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if self._still_named(fd):
                    self.fd = fd
                    return self
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # its holder removed it while this one waited: lock the new file

    def _still_named(self, fd: int) -> bool:
        try:
            named = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (named.st_ino, named.st_dev) == (mine.st_ino, mine.st_dev)

    def __exit__(self, *exc: object) -> None:
        try:
            os.unlink(self.path)  # while still held: nobody can lock this file meanwhile
        except OSError as err:  # the write itself is done: a lock file left over is harmless
            log.info("could not remove lock file %s: %s", self.path, err)
        finally:
            os.close(self.fd)  # closing releases the flock


def _decode_name(key_prefix: str, name: str) -> Optional[str]:
    """The key segment a file-system name stands for, or None for names that are not ours
    (a foreign file, or one that decodes to something no key can contain)."""
    segment = unquote(name)
    try:
        check_key(_join(key_prefix, segment))
        if "/" in segment or encode_segment(segment, segment) != name:
            return None
    except InvalidKey:
        return None
    return segment


def _join(prefix: str, segment: str) -> str:
    return f"{prefix}/{segment}" if prefix else segment


def _next_version(current: Optional[str]) -> str:
    """``<sequence>.<random>``: the sequence helps people read; the random part makes
    versions unique even when a key is deleted and written again."""
    seq = 0
    if current:
        head = current.split(".", 1)[0]
        seq = int(head) if head.isdigit() else 0
    return f"{seq + 1}.{secrets.token_hex(8)}"


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return


def flush_mounted_drive(timeout_ms: int = 24 * 60 * 60 * 1000) -> None:
    """Push a mounted Google Drive's pending writes to Drive now, and unmount it.

    In Colab, files written under ``/content/drive`` reach Drive only later; this is
    Colab's ``drive.flush_and_unmount()``, the only way to force them out. Mount again
    (``drive.mount('/content/drive')``) to go on using it. Outside Colab there is no
    mounted Drive to flush: a clear error says so.
    """
    try:
        from google.colab import drive
    except ImportError:
        raise StoreError("flush_mounted_drive works in Colab only (google.colab is not available "
                         "here); a gdrive:// store needs no flushing") from None
    drive.flush_and_unmount(timeout_ms=timeout_ms)


def open_local(url: str) -> LocalStore:
    """Open a plain path or a ``file://`` URL as a local folder store."""
    if url.startswith("file://"):
        rest = url[len("file://"):]
        if rest and not rest.startswith("/"):
            raise ValueError(f"{url!r}: only local file URLs are supported, e.g. file:///data/store")
        return LocalStore(unquote(rest) or "/")
    return LocalStore(url)
