"""The Store contract, run against every backend in ``conftest.STORE_BACKENDS``."""

from __future__ import annotations

import threading

import pytest

import sessionkit
from sessionkit import Conflict
from sessionkit.errors import InvalidKey, StoreError
from sessionkit.store import ABSENT, Record

BAD_KEYS = [
    "", "/abs", "a//b", "a/", "../x", "a/../b", "a/./b", ".", "..", "a\\b", "nul\x00", "tab\there",
    "x" * 1025, ".sessionkit/preconditions",  # the store's own (an object store's first-open check)
]
ODD_KEYS = [
    "a.skv", "a.skv/b", "100%", "%tmp-1", "x%lock", "with space", "ünïcödé/ключ/鍵",
    "emoji/😀", "a:b*c?d", "UPPER/lower", ".hidden/.file", "trailing.",
]


def test_get_missing_is_none(store):
    assert store.get("nothing/here") is None


def test_put_then_get_round_trips(store):
    version = store.put("jobs/a/manifest", b"hello")
    assert isinstance(version, str) and version
    assert store.get("jobs/a/manifest") == Record(b"hello", version)


def test_empty_data(store):
    v = store.put("empty", b"")
    assert store.get("empty") == Record(b"", v)


def test_bytes_like_data_is_accepted(store):
    store.put("ba", bytearray(b"xy"))
    store.put("mv", memoryview(b"zw"))
    assert store.get("ba").data == b"xy" and store.get("mv").data == b"zw"


def test_non_bytes_data_is_a_type_error_naming_the_key(store):
    with pytest.raises(TypeError, match="'k'.*bytes"):
        store.put("k", "text")  # type: ignore[arg-type]
    assert store.get("k") is None


def test_unconditional_put_overwrites_with_a_new_version(store):
    v1 = store.put("k", b"1")
    v2 = store.put("k", b"2")
    assert v1 != v2
    assert store.get("k") == Record(b"2", v2)


def test_absent_creates_only_once(store):
    v = store.put("k", b"first", expect=ABSENT)
    with pytest.raises(Conflict) as info:
        store.put("k", b"second", expect=ABSENT)
    assert info.value.key == "k" and info.value.expected is ABSENT and info.value.actual == v
    assert store.get("k").data == b"first"


def test_compare_and_swap(store):
    v1 = store.put("k", b"1")
    v2 = store.put("k", b"2", expect=v1)
    with pytest.raises(Conflict) as info:
        store.put("k", b"3", expect=v1)
    err = info.value
    assert (err.key, err.expected, err.actual) == ("k", v1, v2)
    assert "'k'" in str(err) and v1 in str(err) and v2 in str(err)
    assert isinstance(err, StoreError) and isinstance(err, sessionkit.SessionkitError)
    assert store.get("k") == Record(b"2", v2)


def test_compare_and_swap_on_missing_key_conflicts(store):
    with pytest.raises(Conflict) as info:
        store.put("k", b"x", expect="1.deadbeef")
    assert info.value.actual is None
    assert store.get("k") is None


def test_expect_must_be_none_absent_or_a_version(store):
    with pytest.raises(TypeError, match="expect"):
        store.put("k", b"x", expect=3)  # type: ignore[arg-type]


def test_delete(store):
    assert store.delete("k") is False
    v = store.put("k", b"x")
    assert store.delete("k") is True
    assert store.get("k") is None
    assert store.delete("k") is False
    assert v


def test_conditional_delete(store):
    v1 = store.put("k", b"1")
    v2 = store.put("k", b"2")
    with pytest.raises(Conflict):
        store.delete("k", expect=v1)
    assert store.get("k").version == v2
    with pytest.raises(Conflict):
        store.delete("k", expect=ABSENT)
    assert store.delete("k", expect=v2) is True
    assert store.delete("k", expect=ABSENT) is False
    with pytest.raises(Conflict):
        store.delete("k", expect=v2)


def test_versions_never_repeat_even_after_delete(store):
    seen = set()
    for _ in range(5):
        seen.add(store.put("k", b"same"))
        seen.add(store.put("k", b"same"))
        store.delete("k")
    assert len(seen) == 10


def test_cas_against_a_deleted_and_recreated_key_conflicts(store):
    old = store.put("k", b"x")
    store.delete("k")
    store.put("k", b"x")
    with pytest.raises(Conflict):
        store.put("k", b"y", expect=old)


def test_list_is_sorted_and_filtered_by_prefix(store):
    keys = ["b", "a/2", "a/1", "ab", "a/sub/deep", "c/x"]
    for k in keys:
        store.put(k, b"")
    assert store.list() == sorted(keys)
    assert store.list("a/") == ["a/1", "a/2", "a/sub/deep"]
    assert store.list("a") == ["a/1", "a/2", "a/sub/deep", "ab"]
    assert store.list("a/s") == ["a/sub/deep"]
    assert store.list("zzz") == []
    assert store.list("nope/") == []
    store.delete("a/1")
    assert store.list("a/") == ["a/2", "a/sub/deep"]


def test_a_key_can_be_both_a_record_and_a_prefix(store):
    store.put("a", b"parent")
    store.put("a/b", b"child")
    assert store.get("a").data == b"parent"
    assert store.get("a/b").data == b"child"
    assert store.list() == ["a", "a/b"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_raise_value_error_naming_the_key(store, key):
    for call in (lambda: store.get(key), lambda: store.put(key, b"x"), lambda: store.delete(key)):
        with pytest.raises(InvalidKey) as info:
            call()
        assert isinstance(info.value, ValueError)
        assert repr(key[:40]) in str(info.value) or "..." in str(info.value)
    assert store.list() == []


def test_non_string_key(store):
    with pytest.raises(InvalidKey):
        store.get(3)  # type: ignore[arg-type]


def test_bad_prefix(store):
    with pytest.raises(InvalidKey):
        store.list("../")


@pytest.mark.parametrize("key", ODD_KEYS)
def test_odd_but_valid_keys_round_trip_and_list(store, key):
    v = store.put(key, key.encode())
    assert store.get(key) == Record(key.encode(), v)
    assert store.list() == [key]
    assert store.delete(key) is True


def test_many_odd_keys_side_by_side(store):
    for k in ODD_KEYS:
        store.put(k, k.encode())
    assert store.list() == sorted(ODD_KEYS)
    for k in ODD_KEYS:
        assert store.get(k).data == k.encode()


def test_large_value(store):
    data = bytes(range(256)) * (10 * 1024 * 1024 // 256)  # 10 MiB
    v = store.put("big/blob", data)
    got = store.get("big/blob")
    assert got.version == v and got.data == data


def test_threads_compare_and_swap_without_losing_updates(store):
    from support.workers import increment

    def work():
        for _ in range(40):
            increment(store, "counter")

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    import json

    assert json.loads(store.get("counter").data)["value"] == 240


# -- large records: put_file / get_file -------------------------------------------------

@pytest.mark.parametrize("size", [0, 1000, 2 * 8 * 1024 * 1024 + 12345])
def test_put_file_and_get_file_round_trip_in_chunks(store, tmp_path, size):
    """Above CHUNK_BYTES the backends send several parts (Drive: a resumable session; GCS:
    a resumable upload; S3: a multipart upload); the record reads back whole with get and
    get_file, and an unconditional put_file replaces it."""
    import os

    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(size))
    version = store.put_file("blobs/big", source)
    assert isinstance(version, str) and version
    assert store.get("blobs/big") == Record(source.read_bytes(), version)
    target = tmp_path / "out" / "copy.bin"
    target.parent.mkdir()
    assert store.get_file("blobs/big", target) == version
    assert target.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in target.parent.iterdir()) == ["copy.bin"]  # no partial file left
    source.write_bytes(b"replaced")
    newer = store.put_file("blobs/big", source)
    assert newer != version and store.get("blobs/big") == Record(b"replaced", newer)
    assert store.list("blobs/") == ["blobs/big"]


def test_get_file_of_a_missing_or_deleted_key_leaves_the_file_alone(store, tmp_path):
    target = tmp_path / "keep.bin"
    target.write_bytes(b"mine")
    assert store.get_file("nothing", target) is None
    store.put("gone", b"x")
    store.delete("gone")
    assert store.get_file("gone", target) is None
    assert target.read_bytes() == b"mine"
