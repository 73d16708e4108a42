"""Choosing a store by URL."""

from __future__ import annotations

from pathlib import Path

import pytest

import sessionkit
from sessionkit.store.local import LocalStore
from sessionkit.store.memory import MemoryStore


def test_plain_path_string_and_pathlike_open_a_local_store(tmp_path):
    a = sessionkit.open_store(str(tmp_path / "a"))
    b = sessionkit.open_store(tmp_path / "b")
    assert isinstance(a, LocalStore) and isinstance(b, LocalStore)
    assert a.root == tmp_path / "a"


def test_file_url(tmp_path):
    s = sessionkit.open_store((tmp_path / "with space").as_uri())
    assert isinstance(s, LocalStore) and s.root == tmp_path / "with space"
    s.put("k", b"x")
    assert sessionkit.open_store(str(tmp_path / "with space")).get("k").data == b"x"


def test_remote_file_url_is_refused():
    with pytest.raises(ValueError, match="only local file URLs"):
        sessionkit.open_store("file://server/share")


def test_memory_stores_are_shared_by_name():
    a = sessionkit.open_store("memory://shared-name-test")
    b = sessionkit.open_store("memory://shared-name-test")
    c = sessionkit.open_store("memory://another-name-test")
    a.put("k", b"x")
    assert isinstance(b, MemoryStore) and b.get("k").data == b"x"
    assert c.get("k") is None


def test_memory_needs_a_name():
    with pytest.raises(ValueError, match="memory://NAME"):
        sessionkit.open_store("memory://")


def test_unknown_scheme_lists_the_known_ones():
    with pytest.raises(ValueError) as info:
        sessionkit.open_store("ftp://bucket/x")
    msg = str(info.value)
    assert "'ftp'" in msg and "file://" in msg and "s3://" in msg and "memory://" in msg


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_url(bad):
    with pytest.raises(ValueError, match="empty"):
        sessionkit.open_store(bad)


def test_wrong_type():
    with pytest.raises(TypeError, match="int"):
        sessionkit.open_store(42)  # type: ignore[arg-type]


def test_a_store_passes_through():
    s = MemoryStore()
    assert sessionkit.open_store(s) is s


def test_register_scheme_plugs_in_a_backend():
    opened = []

    def opener(url: str) -> sessionkit.Store:
        opened.append(url)
        return MemoryStore()

    sessionkit.register_scheme("testscheme", opener)
    try:
        assert "testscheme" in sessionkit.known_schemes()
        assert isinstance(sessionkit.open_store("testscheme://x"), MemoryStore)
        assert opened == ["testscheme://x"]
    finally:
        from sessionkit.store import SCHEMES

        SCHEMES.reset()  # the built-in schemes only, as in a fresh process


def test_register_scheme_does_not_replace_a_scheme_unless_told():
    """Issue 17: register_scheme silently replaced an existing scheme (``file`` included)."""
    with pytest.raises(ValueError, match="clobber=True"):
        sessionkit.register_scheme("file", lambda url: MemoryStore())
    assert type(sessionkit.open_store("file:///tmp/sessionkit-clobber-test")).__name__ == "LocalStore"

    def opener(url):
        return MemoryStore()

    sessionkit.register_scheme("testclobber", opener)
    try:
        sessionkit.register_scheme("testclobber", opener)  # the same again: fine
        sessionkit.register_scheme("testclobber", "sessionkit.store.memory:open_memory", clobber=True)
        assert isinstance(sessionkit.open_store("testclobber://x"), MemoryStore)
    finally:
        from sessionkit.store import SCHEMES

        SCHEMES.reset()  # the built-in schemes only, as in a fresh process


def test_register_scheme_validates_the_name():
    with pytest.raises(ValueError, match="scheme"):
        sessionkit.register_scheme("Bad Scheme", lambda url: MemoryStore())
