"""Ingest logic: keywords, resuming a partial run, changed files."""

from __future__ import annotations

import os
import sqlite3

import pytest

from sessionkit.ingest import Ingest, describe, prompt_keywords

from support.notebooks import make_images


def test_prompt_keywords():
    assert prompt_keywords("masterpiece, (a red fox:1.2), [[detailed]], <lora:x:0.5>, Masterpiece") == \
        ["masterpiece", "a red fox", "detailed"]
    assert prompt_keywords("") == []


def test_describe_records_errors_instead_of_raising(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    row = describe("bad.png", str(tmp_path))
    assert row["error"] and row["size"] == 18 and len(row["sha256"]) == 64 and row["width"] is None


def test_a_partial_run_resumes_and_a_changed_file_is_catalogued_again(tmp_path):
    source = tmp_path / "images"
    make_images(source)
    store, catalog = str(tmp_path / "store"), str(tmp_path / "c.sqlite")
    first = Ingest(store, str(source), "*.png|*.jpg|*.jpeg", catalog, job_id="i")
    files = first.scan()
    first.process(files[:2], display=False)  # cut off after two files (not committed)
    first.close()
    again = Ingest(store, str(source), "*.png|*.jpg|*.jpeg", catalog, job_id="i")
    assert again.process(again.scan(), display=False) == 3  # only the files not done yet
    assert len(again.preview()) == 5  # the two staged before the cut are still there
    assert again.commit() == {"catalogued": 4, "errors": 1}
    os.utime(source / "fox.png", (1, 1))  # the file changed (new mtime)
    assert again.process(again.scan(), display=False) == 1
    again.commit()
    rows = sqlite3.connect(catalog).execute("SELECT count(*), count(DISTINCT path) FROM images").fetchone()
    assert rows == (4, 4)


def test_without_pillow_the_ingest_says_which_extra_to_install(tmp_path, monkeypatch):
    import sys

    from sessionkit.ingest import Ingest

    monkeypatch.setitem(sys.modules, "PIL", None)  # what an interpreter without Pillow does
    with pytest.raises(ImportError, match=r"sessionkit-runtime\[ingest\]"):
        Ingest(str(tmp_path / "store"), str(tmp_path), "*.png", str(tmp_path / "c.db"))
    assert not (tmp_path / "store").exists(), "nothing was stored"


def test_workers_describe_files_on_threads_into_the_same_catalogue_and_resume(tmp_path):
    source = tmp_path / "images"
    make_images(source)
    pattern = "*.png|*.jpg|*.jpeg"
    one = Ingest(str(tmp_path / "one"), str(source), pattern, str(tmp_path / "one.sqlite"), job_id="i")
    assert one.run(display=False) == {"files": 5, "processed": 5, "catalogued": 4, "errors": 1}
    store, catalog = str(tmp_path / "store"), str(tmp_path / "c.sqlite")
    first = Ingest(store, str(source), pattern, catalog, job_id="i", workers=4)
    first.process(first.scan()[:2], display=False)  # cut off after two files
    first.close()
    again = Ingest(store, str(source), pattern, catalog, job_id="i", workers=4)
    assert again.process(again.scan(), display=False) == 3
    assert again.commit() == {"catalogued": 4, "errors": 1}
    query = "SELECT path, size, sha256, format, width, height, prompt, keywords FROM images ORDER BY path"
    assert sqlite3.connect(catalog).execute(query).fetchall() == \
        sqlite3.connect(str(tmp_path / "one.sqlite")).execute(query).fetchall()


def test_workers_is_checked(tmp_path):
    with pytest.raises(ValueError, match="workers must be an int >= 1"):
        Ingest(str(tmp_path / "s"), str(tmp_path), "*.png", str(tmp_path / "c.db"), workers=0)
