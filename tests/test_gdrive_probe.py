"""sessionkit.store.gdrive_probe against the Drive emulator: each unproven behaviour of Drive is
answered, and the answer flips when the emulator is switched to the other behaviour."""

from __future__ import annotations

import uuid

import pytest


pytest.importorskip("googleapiclient")
from sessionkit.store.gdrive import GDriveStore  # noqa: E402
from sessionkit.store.gdrive_probe import (BEHAVIOURS, DELETE_IF_MATCH, DUPLICATE_ID, METADATA_IF_MATCH,  # noqa: E402
                                           PARENT_ETAG, probe_unproven)



def in_folder(drive, folder_id):
    return sorted(f["title"] for f in drive.files.values()
                  if [p["id"] for p in f["parents"]] == [folder_id])


def test_each_unproven_behaviour_is_answered_and_nothing_is_left_behind(drive):
    store = GDriveStore(f"probe/{uuid.uuid4().hex[:8]}", backoff=0.01)
    store.put("k", b"v")
    before = in_folder(drive, store.folder_id)
    verdicts = {name: verdict for name, verdict, _detail in probe_unproven(store)}
    assert list(verdicts) == list(BEHAVIOURS)
    # the emulator without anomalies behaves as the store once bet real Drive does
    assert verdicts == {METADATA_IF_MATCH: "holds", DELETE_IF_MATCH: "holds", PARENT_ETAG: "does not hold",
                        DUPLICATE_ID: "holds"}
    assert in_folder(drive, store.folder_id) == before == ["k", "sessionkit-catalog.json"]
    assert not [f for f in drive.files.values() if f["title"].startswith("doctor")]
    assert store.list() == ["k"] and store.get("k").data == b"v"


@pytest.mark.parametrize("anomaly, behaviour, verdict, detail", [
    ("metadata-if-match-ignored", METADATA_IF_MATCH, "does not hold", "applied"),
    ("delete-if-match-ignored", DELETE_IF_MATCH, "does not hold", "removed"),
    ("parent-etag-on-insert", PARENT_ETAG, "holds", "changed"),
    ("duplicate-id-403", DUPLICATE_ID, "does not hold", "HTTP 403 forbidden"),
    ("duplicate-id-500", DUPLICATE_ID, "does not hold", "HTTP 500 backendError"),
])
def test_the_verdict_flips_with_the_emulator_switch(drive, anomaly, behaviour, verdict, detail):
    store = GDriveStore(f"probe/{uuid.uuid4().hex[:8]}", backoff=0.01)
    drive.set_anomalies(anomaly)
    found = {name: (v, d) for name, v, d in probe_unproven(store)}
    assert found[behaviour][0] == verdict and detail in found[behaviour][1], found
    assert not [f for f in drive.files.values() if f["title"].startswith("doctor")]
