"""Ingest: catalogue a folder of images into SQLite, resumably (the ingest notebook's work).

Stages, as job stages: **scan** lists the files under the source folder that match
the pattern; **process** reads each one (size, mtime, SHA-256, width and height
with Pillow, PNG text chunks such as Stable Diffusion's ``parameters``, and the
prompt's keywords) into a staging table of the catalogue; **commit** moves the
staged rows into the catalogue in one SQLite transaction, after a preview.

``workers=N`` reads, hashes and describes N files at a time on threads (``job.map``);
the catalogue's writes stay on the driver's thread, one file at a time, so SQLite sees
one writer. Each file is an item keyed by its path, size and mtime, so a run that is cut off
resumes where it stopped, running it twice adds nothing twice, and a file that
changed is catalogued again (replacing its row). A file that cannot be read as an
image is recorded in ``errors`` and never stops the run.

Needs Pillow: the extra ``sessionkit-runtime[ingest]`` (Colab and Kaggle ship it).
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import os
import re
import sqlite3
from datetime import datetime, timezone
from typing import Any, Optional, Union

from .jobs import Job
from .store import Store, open_store
from .validate import check_count

__all__ = ["Ingest", "describe", "prompt_keywords", "SCHEMA"]

EXTRA_HINT = 'ingesting images needs Pillow (Colab and Kaggle ship it): pip install "sessionkit-runtime[ingest]"'


def _require_pillow() -> None:
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise ImportError(EXTRA_HINT) from None

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    path TEXT PRIMARY KEY, size INTEGER, mtime REAL, sha256 TEXT, format TEXT,
    width INTEGER, height INTEGER, text_chunks TEXT, prompt TEXT, keywords TEXT, ingested_at TEXT);
CREATE TABLE IF NOT EXISTS errors (path TEXT PRIMARY KEY, size INTEGER, sha256 TEXT, error TEXT, at TEXT);
CREATE TABLE IF NOT EXISTS staging (
    path TEXT PRIMARY KEY, size INTEGER, mtime REAL, sha256 TEXT, format TEXT,
    width INTEGER, height INTEGER, text_chunks TEXT, prompt TEXT, keywords TEXT, error TEXT, at TEXT);
"""
COLUMNS = ("path", "size", "mtime", "sha256", "format", "width", "height", "text_chunks", "prompt", "keywords")
_WEIGHT = re.compile(r":\s*-?\d+(\.\d+)?\s*$")


def prompt_keywords(prompt: str) -> list[str]:
    """Keywords of a prompt: comma-separated parts, without attention brackets or weights
    (``(masterpiece:1.2)`` -> ``masterpiece``), lower-cased, each once, in order."""
    out: list[str] = []
    for part in re.split(r"[,\n]", prompt):
        word = re.sub(r"[()\[\]{}]", "", part).strip()
        word = _WEIGHT.sub("", word).strip().lower()
        if word and word not in out and not word.startswith("<lora:"):
            out.append(word)
    return out


def _prompt_of(chunks: dict[str, str]) -> Optional[str]:
    text = chunks.get("parameters")  # AUTOMATIC1111 / SD web UI
    if text:
        return re.split(r"\n(?:Negative prompt:|Steps:)", text, maxsplit=1)[0].strip()
    return chunks.get("prompt") if chunks.get("prompt") and not chunks["prompt"].lstrip().startswith("{") \
        else None


def describe(path: str, root: str) -> dict[str, Any]:
    """One catalogue row for the file at ``path`` (relative to ``root`` in the row).
    A file Pillow cannot read gets ``error`` set instead of image fields."""
    from PIL import Image, UnidentifiedImageError

    full = os.path.join(root, path)
    stat = os.stat(full)
    with open(full, "rb") as fh:
        data = fh.read()
    row: dict[str, Any] = {"path": path, "size": stat.st_size, "mtime": stat.st_mtime,
                           "sha256": hashlib.sha256(data).hexdigest(), "format": None, "width": None,
                           "height": None, "text_chunks": None, "prompt": None, "keywords": None, "error": None}
    try:
        import io

        with Image.open(io.BytesIO(data)) as im:
            im.verify()  # reads the whole file: catches truncated and damaged images
        with Image.open(io.BytesIO(data)) as im:
            row.update(format=im.format, width=im.width, height=im.height)
            chunks = {str(k): str(v) for k, v in (getattr(im, "text", None) or {}).items()}
        prompt = _prompt_of(chunks)
        row.update(text_chunks=json.dumps(chunks) if chunks else None, prompt=prompt,
                   keywords=json.dumps(prompt_keywords(prompt)) if prompt else None)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
    return row


class Ingest:
    """An ingest of ``source_dir`` files matching ``pattern`` (``*.png|*.jpg``) into ``catalog``.

    ``job_id=None`` restores the active or most recent ingest job in the store.
    ``workers``: files read and described at once, on threads (None: one at a time, in
    the loop's own thread)."""

    def __init__(self, store: Union[Store, str], source_dir: str, pattern: str, catalog: str,
                 job_id: Optional[str] = None, *, workers: Optional[int] = None, **job_kwargs: Any) -> None:
        if workers is not None:
            check_count("workers", workers, what="files read and described at once, on threads; or None")
        self.workers = workers
        _require_pillow()  # before anything is stored: a run without it would record every file as an error
        self.store = open_store(store)
        if not os.path.isdir(source_dir):
            raise ValueError(f"SOURCE_DIR {source_dir!r} is not a folder")
        patterns = [p.strip() for p in pattern.split("|") if p.strip()]
        if not patterns:
            raise ValueError(f"PATTERN {pattern!r} has no pattern; e.g. '*.png|*.jpg|*.jpeg'")
        self.source_dir, self.patterns, self.catalog = os.path.abspath(source_dir), patterns, catalog
        if job_id is None:
            latest = Job.latest(self.store, **job_kwargs)
            job_id = latest.id if latest is not None else f"ingest-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
        params = {"source_dir": self.source_dir, "pattern": pattern, "catalog": os.path.abspath(catalog)}
        self.job = Job(self.store, job_id, params=params, **job_kwargs)
        self.db = sqlite3.connect(catalog)
        self.db.executescript(SCHEMA)

    def scan(self) -> list[str]:
        """Files under the source folder matching the pattern, as sorted relative paths."""
        self.job.stage("scan")
        found = []
        for folder, _dirs, files in os.walk(self.source_dir):
            for name in files:
                if any(fnmatch.fnmatch(name.lower(), p.lower()) for p in self.patterns):
                    found.append(os.path.relpath(os.path.join(folder, name), self.source_dir))
        return sorted(found)

    @staticmethod
    def _key(root: str) -> Any:
        def key(path: str) -> str:
            stat = os.stat(os.path.join(root, path))
            return f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
        return key

    def process(self, files: list[str], display: Any = True) -> int:
        """Describe each file not done yet into the staging table; returns how many."""
        self.job.stage("process")
        count = 0
        key = self._key(self.source_dir)
        if self.workers is None:
            rows = ((path, describe(path, self.source_dir))
                    for path in self.job.track(files, key=key, display=display))
        else:
            rows = self.job.map(functools.partial(describe, root=self.source_dir), files, key=key,
                                workers=self.workers, display=display)
        with self.job:
            for _path, row in rows:
                self.job.add_bytes(row["size"])
                self.db.execute(
                    "INSERT OR REPLACE INTO staging VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (*(row[c] for c in COLUMNS), row["error"], datetime.now(timezone.utc).isoformat()))
                self.db.commit()  # durable before the job counts the file as done
                count += 1
        return count

    def preview(self) -> "Any":
        """What a commit would write: the staged rows, as a DataFrame."""
        import pandas as pd

        return pd.read_sql_query("SELECT path, format, width, height, size, prompt, keywords, error "
                                 "FROM staging ORDER BY path", self.db)

    def commit(self) -> dict[str, int]:
        """Move the staged rows into the catalogue in one transaction; returns counts."""
        self.job.stage("commit")
        now = datetime.now(timezone.utc).isoformat()
        with self.db:  # one transaction: all of it lands, or none
            cols = ", ".join(COLUMNS)
            added = self.db.execute(f"INSERT OR REPLACE INTO images ({cols}, ingested_at) "
                                    f"SELECT {cols}, ? FROM staging WHERE error IS NULL", (now,)).rowcount
            failed = self.db.execute("INSERT OR REPLACE INTO errors SELECT path, size, sha256, error, ? "
                                     "FROM staging WHERE error IS NOT NULL", (now,)).rowcount
            self.db.execute("DELETE FROM errors WHERE path IN (SELECT path FROM staging WHERE error IS NULL)")
            self.db.execute("DELETE FROM staging")
        self.job.state["committed"] = self.job.state.get("committed", 0) + added
        self.job.checkpoint()
        return {"catalogued": added, "errors": failed}

    def run(self, display: Any = True) -> dict[str, int]:
        """scan, process, commit (no preview)."""
        files = self.scan()
        processed = self.process(files, display=display)
        result = self.commit()
        return {"files": len(files), "processed": processed, **result}

    def close(self) -> None:
        self.db.close()
