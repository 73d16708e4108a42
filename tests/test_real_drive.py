"""Conformance against real Google Drive: skipped unless SESSIONKIT_REAL_DRIVE_CREDENTIALS
names saved user credentials (docs/gdrive.md says how). The whole store contract runs on
real Drive through the ``gdrive-real`` backend in conftest; these add the lease, fencing,
a leased job and the create race, as the emulator runs them."""

from __future__ import annotations

import threading

import pytest

from sessionkit import Conflict
from sessionkit.store import ABSENT

from conftest import real_drive_store
from support.stores import lease_and_fencing


@pytest.fixture
def real(tmp_path):
    return real_drive_store(tmp_path)


def test_lease_fencing_and_a_leased_job_on_real_drive(real):
    lease_and_fencing(real)  # the emulator test's body, on real Drive


def test_racing_creates_on_real_drive_have_one_winner(real):
    from sessionkit.store.gdrive import GDriveStore

    views = [real] + [GDriveStore(folder_id=real.folder_id, credentials_file=None, endpoint=real.endpoint,
                                  http=real._http_factory, credentials=real._auth.credentials) for _ in range(3)]
    results: list[bool] = []

    def create(store):
        try:
            store.put("lock", b"x", expect=ABSENT)
            results.append(True)
        except Conflict:
            results.append(False)

    threads = [threading.Thread(target=create, args=(v,)) for v in views]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]


def test_doctor_on_real_drive_prints_its_table(real, capsys):
    """The first run on real Drive answers what the emulator cannot: the table is printed
    (also when the test passes) so whoever runs it can report the verdicts."""
    from sessionkit.doctor import doctor

    report = doctor(real)
    with capsys.disabled():
        print("\n" + report.table())
    assert report.ok, report.table()
    assert report.leftover == () and real.list("doctor/") == []
