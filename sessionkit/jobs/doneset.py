"""Which items of a job are done: in memory, and as immutable segments in the store.

Items are identified either by position (the default: done positions are kept
as sorted ``[start, end)`` ranges, so a million items done in order take a few
bytes) or by string keys. Each checkpoint writes one new segment holding only
the items done since the last one; segments are then merged tier by tier (the
newest two whenever the older is at most twice the newer, like a binary
counter), so a job keeps O(log n) segments and each item is rewritten O(log n)
times: checkpoint cost follows the new items, not all items done.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from bisect import bisect_right
from dataclasses import dataclass
from typing import Iterable, Optional

from ..errors import CorruptRecord, SegmentMissing, StoreError
from ..store import ABSENT, Store

__all__ = ["Ranges", "Segment", "SegmentList", "SegmentMissing", "POSITION", "KEY"]

log = logging.getLogger("sessionkit.jobs")

POSITION = "position"
KEY = "key"


class Ranges:
    """A set of non-negative ints as sorted, disjoint, non-touching ``[start, end)`` ranges."""

    __slots__ = ("spans",)

    def __init__(self, spans: Iterable[Iterable[int]] = ()) -> None:
        self.spans: list[list[int]] = []
        for span in sorted(list(s) for s in spans):
            self._append(*span)

    def _append(self, start: int, end: int) -> None:
        if end <= start:
            return
        if self.spans and start <= self.spans[-1][1]:
            self.spans[-1][1] = max(self.spans[-1][1], end)
        else:
            self.spans.append([start, end])

    def update(self, other: "Ranges") -> None:
        merged = Ranges()
        for span in sorted(self.spans + other.spans):
            merged._append(*span)
        self.spans = merged.spans

    def __contains__(self, n: int) -> bool:
        i = bisect_right(self.spans, [n, float("inf")]) - 1
        return i >= 0 and self.spans[i][0] <= n < self.spans[i][1]

    def __len__(self) -> int:
        return sum(end - start for start, end in self.spans)

    def gaps(self) -> Iterable[tuple[int, Optional[int]]]:
        """The spans not in the set, from 0 on; the last one is open (end None)."""
        pos = 0
        for start, end in self.spans:
            if start > pos:
                yield pos, start
            pos = max(pos, end)
        yield pos, None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ranges) and self.spans == other.spans

    def __repr__(self) -> str:
        return f"Ranges({self.spans})"


@dataclass
class Segment:
    """One done segment as the manifest names it."""

    name: str
    count: int

    def to_json(self) -> list:
        return [self.name, self.count]


KEYS_HEADER = b"sessionkit-done-keys 1 "  # then the count, a newline, and the keys
_ESCAPED = re.compile(r"\\(.)", re.S)


def _escape(k: str) -> str:
    return k.replace("\\", "\\\\").replace("\n", "\\n")


def _unescape(k: str) -> str:
    return _ESCAPED.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), k)


def _encode(mode: str, ranges: Optional[Ranges], keys: Optional[list[str]]) -> bytes:
    if mode == POSITION:
        return json.dumps({"v": 1, "ranges": ranges.spans if ranges else []}, separators=(",", ":")).encode()
    # Keys: one per line (backslash and newline escaped). Splitting lines is several times
    # faster than parsing JSON, and resuming a job with a million keys must take < 1 s.
    keys = keys or []
    text = "\n".join(keys)
    if "\\" in text or any("\n" in k for k in keys):
        text = "\n".join(_escape(k) for k in keys)
    return KEYS_HEADER + str(len(keys)).encode() + b"\n" + text.encode()


def _decode_keys(data: bytes) -> list[str]:
    count, _, rest = data[len(KEYS_HEADER):].partition(b"\n")
    if int(count) == 0:
        return []
    body = rest.decode()
    keys = body.split("\n")
    if len(keys) != int(count):
        raise ValueError(f"{len(keys)} keys where the header says {int(count)}")
    if "\\" in body:
        keys = [_unescape(k) if "\\" in k else k for k in keys]
    return keys


class SegmentList:
    """The segments of one job's done-set under ``jobs/<id>/done/``."""

    MERGE_RATIO = 2

    def __init__(self, store: Store, prefix: str, mode: str, segments: Iterable[Segment] = ()) -> None:
        self.store = store
        self.prefix = prefix  # "jobs/<id>/done/"
        self.mode = mode
        self.segments = list(segments)
        self.bytes_written = 0  # bytes and items written by this process (for benchmarks)
        self.items_written = 0

    def key(self, name: str) -> str:
        return self.prefix + name

    def read(self, segment: Segment) -> tuple[Ranges, list[str]]:
        """The items in one segment; a missing or damaged one is a ``CorruptRecord``."""
        key = self.key(segment.name)
        record = self.store.get(key)
        if record is None:
            raise SegmentMissing(key, self.store.url, "the manifest names a done segment that is missing")
        try:
            if self.mode == KEY:
                if not record.data.startswith(KEYS_HEADER):
                    raise ValueError("no done-keys header")
                return Ranges(), _decode_keys(record.data)
            return Ranges(json.loads(record.data)["ranges"]), []
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptRecord(key, self.store.url, f"not a done segment ({exc})",
                                record.version) from None

    def load_what_remains(self) -> tuple[Ranges, set[str], list[tuple[Segment, CorruptRecord]]]:
        """Everything done that can be read, and the segments that cannot (damaged or
        missing): their items count as not done, and they leave the list."""
        ranges, keys, lost = Ranges(), set(), []
        for segment in list(self.segments):
            try:
                r, k = self.read(segment)
            except CorruptRecord as exc:
                lost.append((segment, exc))
                self.segments.remove(segment)
                continue
            ranges.update(r)
            keys.update(k)
        return ranges, keys, lost

    def load(self) -> tuple[Ranges, set[str]]:
        """Everything done, read from all segments."""
        ranges, keys = Ranges(), set()
        for segment in self.segments:
            r, k = self.read(segment)
            ranges.update(r)
            keys.update(k)
        return ranges, keys

    def _write(self, ranges: Optional[Ranges], keys: Optional[list[str]], count: int) -> Segment:
        name = f"{secrets.token_hex(8)}.json"
        data = _encode(self.mode, ranges, keys)
        self.store.put(self.key(name), data, expect=ABSENT)
        self.bytes_written += len(data)
        self.items_written += count
        return Segment(name, count)

    def append(self, ranges: Optional[Ranges], keys: Optional[list[str]], count: int) -> list[Segment]:
        """Write the items done since the last checkpoint as a new segment, then merge
        tiers. Returns every segment this call wrote (the checkpoint lists the ones no
        generation names as garbage: see ``Checkpointer._garbage_after``)."""
        if count <= 0:
            return []
        written = [self._write(ranges, keys, count)]
        self.segments.append(written[0])
        while len(self.segments) >= 2 and self.segments[-2].count <= self.MERGE_RATIO * self.segments[-1].count:
            older, newer = self.segments[-2], self.segments[-1]
            r1, k1 = self.read(older)
            r2, k2 = self.read(newer)
            r1.update(r2)
            merged_keys = list(dict.fromkeys(k1 + k2)) if self.mode == KEY else None
            merged = self._write(r1, merged_keys, older.count + newer.count)
            written.append(merged)
            self.segments[-2:] = [merged]
        return written

    def delete(self, segments: Iterable[Segment]) -> None:
        """Remove segments no manifest names any more (garbage: a failure is only logged)."""
        for segment in segments:
            try:
                self.store.delete(self.key(segment.name))
            except StoreError as exc:
                log.info("could not remove done segment %s: %s", self.key(segment.name), exc)
