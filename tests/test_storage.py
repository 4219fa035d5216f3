"""Tests of the storage service against SQLite (always) and PostgreSQL (when `make test` started one).

Each PostgreSQL test gets its own freshly created database, dropped afterwards.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import MAIN, new_patient
from PIL import Image
from sqlalchemy import event, func, select

import storage
from storage import (
    Conflict,
    NewMeasurement,
    NewPhoto,
    NotFound,
    OptionError,
    StorageError,
    open_store,
)
from storage import db as storage_db
from storage.blobs import BlobStore
from storage.models import AuditEvent, Base, Comparison, Measurement, Patient, Photo, Treatment, Visit

REPO = Path(__file__).resolve().parents[1]
V1, V2 = "1.0.0", "2.0.0"


# ----------------------------------------------------------------------------------------- fixtures


def png(seed: int, w: int = 30, h: int = 20) -> bytes:
    """A small, unique PNG (seeded noise)."""
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def meas(ri: float, version: str = V1, **extra) -> NewMeasurement:
    return NewMeasurement(
        algorithm_version=version, roughness_index=ri, metrics={"roughness_index": ri, "scar.Sq": ri / 2},
        scars=[{"x_mm": 1.0, "y_mm": 2.0, "diameter_mm": 1.5}], px_per_mm=10.0, scale_source="card", **extra,
    )


def count_rows(store, model) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


class QueryCounter:
    def __init__(self, engine):
        self.engine, self.n = engine, 0

    def _count(self, conn, cursor, statement, *args):
        if statement.strip().upper() != "BEGIN":  # transaction control (SQLite), not a query
            self.n += 1

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._count)


# --------------------------------------------------------------------------------------- migrations
def test_migrated_schema_matches_models(store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    head = ScriptDirectory.from_config(storage_db.alembic_config()).get_current_head()
    assert storage_db.current_revision(store.engine) == head == "0005"


def test_downgrade_to_base_and_upgrade_again_round_trips(store):
    from alembic import command
    from sqlalchemy import inspect

    cfg = storage_db.alembic_config(store.engine)
    command.downgrade(cfg, "base")
    assert set(inspect(store.engine).get_table_names()) <= {"alembic_version"}
    command.upgrade(cfg, "head")
    assert {"patients", "visits", "photos", "measurements", "comparisons", "treatments"} <= set(
        inspect(store.engine).get_table_names()
    )


def test_the_database_holds_one_account_per_email_address(store):
    from sqlalchemy.exc import IntegrityError

    from storage import Actor
    from storage.models import Account

    system = Actor.system()
    store.accounts.add(system, "ann", role="practitioner", password=None, clinic="MAIN", email="Ann@Clinic.example")
    before = (count_rows(store, Account), count_rows(store, AuditEvent))
    # another clinic, the address in another case: refused, nothing written
    with pytest.raises(Conflict, match="e-mail address is already given to an account"):
        store.accounts.add(system, "ann2", role="viewer", password=None, clinic="OTHER", email="ann@CLINIC.example")
    with pytest.raises(Conflict, match="user name ann is taken"):  # both taken: the name is named
        store.accounts.add(system, "ann", role="viewer", password=None, clinic="MAIN", email="ann@clinic.example")
    assert (count_rows(store, Account), count_rows(store, AuditEvent)) == before
    # The guarantee is the database's, not a look-up before the insert that two admins at once could both pass.
    with store._sessions() as s, s.begin(), pytest.raises(IntegrityError):
        ann = s.scalar(select(Account).where(Account.username == "ann"))
        s.add(Account(username="racer", clinic_id=ann.clinic_id, role="viewer", email="ANN@clinic.example",
                      email_key="ann@clinic.example", disabled=False, must_change_password=False,
                      failed_attempts=0, created_at=ann.created_at))
        s.flush()
    assert count_rows(store, Account) == before[0]
    store.accounts.add(system, "bob", role="viewer", password=None, clinic="MAIN", email="bob@clinic.example")
    pw = "a password of the test 1"  # (an account without an address needs a password)
    store.accounts.add(system, "no_mail", role="viewer", password=pw, clinic="MAIN")  # many without an address
    store.accounts.add(system, "no_mail2", role="viewer", password=pw, clinic="MAIN", email="  ")
    # One rule for "the same address" when storing and when signing in (Python's case folding, not the database's
    # lower(), which differs between engines): a pair that one rule merges and the other keeps apart would be
    # accepted twice and then lock both holders out of single sign-on.
    store.accounts.add(system, "odos", role="viewer", password=None, clinic="MAIN", email="ΟΔΟΣ@x.example")
    with pytest.raises(Conflict, match="e-mail address"):
        store.accounts.add(system, "odos2", role="viewer", password=None, clinic="OTHER", email="οδοσ@x.example")
    assert store.accounts.sign_in_sso("οδος@X.example", verified=True).name == "odos"
    store.accounts.add(system, "dotted", role="viewer", password=None, clinic="MAIN", email="İnfo@x.example")
    store.accounts.add(system, "plain", role="viewer", password=None, clinic="OTHER", email="info@x.example")
    assert store.accounts.sign_in_sso("INFO@x.example", verified=True).name == "plain"
    assert store.accounts.sign_in_sso("İNFO@x.example", verified=True).name == "dotted"


def test_an_account_refused_for_another_reason_at_the_same_moment_says_so(store, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    from storage import Actor
    from storage.models import Account

    def clash(*args, **kwargs):  # as when another process creates the same new clinic code at this moment
        raise IntegrityError("INSERT INTO clinics ...", {}, Exception("unique constraint on clinics.code"))

    before = count_rows(store, Account)
    monkeypatch.setattr(store.accounts, "_clinic", clash)
    with pytest.raises(Conflict, match="at the same moment.*try again"):
        store.accounts.add(Actor.system(), "newbie", role="viewer", password=None, clinic="NEWCLINIC",
                           email="newbie@clinic.example")
    assert count_rows(store, Account) == before


def test_migrating_an_address_that_two_accounts_already_hold_keeps_both_and_sso_still_refuses_it(backend):
    from alembic import command
    from sqlalchemy import text

    from storage import Actor, SignInFailed
    from storage.models import Account

    data_dir, url = backend
    with open_store(data_dir, url=url) as s:  # at head; take it back to before the rule, as an old database
        command.downgrade(storage_db.alembic_config(s.engine), "0003")
        assert storage_db.current_revision(s.engine) == "0003"
        with s.engine.begin() as conn:
            clinic = conn.execute(text("SELECT id FROM clinics WHERE code = 'MAIN'")).scalar()  # (from 0002)
            for name, email in (("twin_a", "Twin@Clinic.example"), ("twin_b", "twin@clinic.example"),
                                ("solo", "Solo@Clinic.example")):
                conn.execute(text(
                    "INSERT INTO accounts (username, clinic_id, role, email, disabled, must_change_password, "
                    "failed_attempts, created_at) VALUES (:u, :c, 'viewer', :e, false, false, 0, :t)"),
                    {"u": name, "c": clinic, "e": email, "t": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)})
    with open_store(data_dir, url=url) as s:  # opening migrates to head (rows from before 0005: epoch 0)
        assert storage_db.current_revision(s.engine) == "0005"
        with s._sessions() as ses:
            keys = dict(ses.execute(select(Account.username, Account.email_key)).all())
        assert (keys["twin_a"], keys["twin_b"], keys["solo"]) == ("twin@clinic.example", None, "solo@clinic.example")
        with pytest.raises(SignInFailed):  # two accounts hold it: single sign-on signs in neither
            s.accounts.sign_in_sso("twin@clinic.example", verified=True)
        assert s.accounts.sign_in_sso("SOLO@clinic.example", verified=True).name == "solo"
        with pytest.raises(Conflict, match="e-mail address"):
            s.accounts.add(Actor.system(), "twin_c", role="viewer", password=None, clinic="MAIN",
                           email="TWIN@clinic.example")


def test_open_store_twice_is_idempotent(backend):
    data_dir, url = backend
    with open_store(data_dir, url=url) as a:
        pid = new_patient(a, "Ann").id
    with open_store(data_dir, url=url) as b:
        assert b.patient(MAIN, pid).name == "Ann"


def test_sqlite_default_location_pragmas_and_env(tmp_path, monkeypatch):
    monkeypatch.delenv("RELIEF_DATABASE_URL", raising=False)
    monkeypatch.setenv("RELIEF_DATA_DIR", str(tmp_path / "envdata"))
    with open_store() as s:
        assert (tmp_path / "envdata" / "relief.db").is_file()
        assert s.blobs.root == tmp_path / "envdata" / "photos"
        with s.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar().lower() == "wal"


def test_unreachable_database_is_one_clear_error(tmp_path):
    with pytest.raises(StorageError, match="RELIEF_DATABASE_URL"):
        open_store(tmp_path, url="postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")


# --------------------------------------------------------------------------------------------- CRUD
def test_patient_crud_and_search(store):
    a = new_patient(store, "Ana Souza", code="P-001", birth_date="1990-05-17", notes="sensitive skin")
    b = new_patient(store, "bob 100%", code="X_9")
    new_patient(store, "Carla")
    assert a.birth_date == dt.date(1990, 5, 17) and a.created_at.tzinfo is not None
    assert store.patient(MAIN, a.id) == a

    upd = store.update_patient(MAIN, a.id, name="Ana S. Souza", birth_date=None, notes="")
    assert (upd.name, upd.code, upd.birth_date, upd.notes) == ("Ana S. Souza", "P-001", None, "")

    assert [p.name for p in store.list_patients(MAIN, )] == ["Ana S. Souza", "bob 100%", "Carla"]
    assert [p.id for p in store.list_patients(MAIN, "SOUZA")] == [a.id]
    assert [p.id for p in store.list_patients(MAIN, "p-00")] == [a.id]  # by code
    assert [p.id for p in store.list_patients(MAIN, "100%")] == [b.id]  # LIKE wildcards are literal
    assert [p.id for p in store.list_patients(MAIN, "x_")] == [b.id]
    assert store.list_patients(MAIN, "nobody") == []


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda s, pid: new_patient(s, "  "), OptionError),
        (lambda s, pid: new_patient(s, "Dup", code="P-1"), Conflict),
        (lambda s, pid: s.update_patient(MAIN, pid, age=3), OptionError),
        (lambda s, pid: new_patient(s, "X", birth_date="17/05/1990"), OptionError),
        (lambda s, pid: s.add_treatment(MAIN, pid, "2025-01-01", needle_depth_mm=25), OptionError),
        (lambda s, pid: s.patient(MAIN, pid + 999), NotFound),
        (lambda s, pid: s.visits(MAIN, pid + 999), NotFound),
        (lambda s, pid: s.save_visit(MAIN, pid, date="2025-01-01", photos=[NewPhoto(b"", "a.png", "cheek")]), OptionError),
        (lambda s, pid: s.save_visit(MAIN, pid, date="2025-01-01", photos=[NewPhoto(png(1), "a.png", " ")]), OptionError),
        (lambda s, pid: s.save_visit(MAIN, pid, date="2025-01-01", treatment={"depth": 1}), OptionError),
        # a mistyped year: the page's calendar stops at tomorrow, but the check lives in storage, for every caller
        (lambda s, pid: s.save_visit(MAIN, pid, date=dt.date.today() + dt.timedelta(days=2),
                                     photos=[NewPhoto(png(1), "a.png", "cheek")]), OptionError),
        (lambda s, pid: s.save_visit(MAIN, pid, date="0202-05-17", photos=[NewPhoto(png(1), "a.png", "cheek")]),
         OptionError),
        (lambda s, pid: s.save_visit(MAIN, pid, date="2025-01-01", treatment={"date": "2062-01-01"}), OptionError),
        (lambda s, pid: s.add_treatment(MAIN, pid, "2062-01-01"), OptionError),
        (lambda s, pid: new_patient(s, "X", birth_date="2062-05-17"), OptionError),
        (lambda s, pid: s.update_patient(MAIN, pid, birth_date="1066-10-14"), OptionError),
    ],
)
def test_bad_inputs_raise_one_line_errors_and_save_nothing(store, call, error):
    pid = new_patient(store, "Base", code="P-1").id
    with pytest.raises(error) as info:
        call(store, pid)
    assert "\n" not in str(info.value) and ";" in str(info.value)  # one sentence that says the fix
    assert count_rows(store, Visit) == 0 and count_rows(store, Photo) == 0
    assert list(store.blobs) == []


def test_treatments_and_visit_with_treatment(store):
    pid = new_patient(store, "T").id
    store.add_treatment(MAIN, pid, dt.date(2025, 3, 1), needle_depth_mm=1.5, area="cheeks")
    store.add_treatment(MAIN, pid, "2025-01-15", procedure="micro-needling + PRP", needle_depth_mm=2.0)
    store.save_visit(MAIN, pid, date="2025-02-01", treatment={"needle_depth_mm": 1.0, "area": "forehead"})
    ts = store.treatments(MAIN, pid)
    assert [t.date for t in ts] == [dt.date(2025, 1, 15), dt.date(2025, 2, 1), dt.date(2025, 3, 1)]
    assert [t.needle_depth_mm for t in ts] == [2.0, 1.0, 1.5]
    assert ts[0].procedure == "micro-needling + PRP" and ts[1].procedure == "micro-needling"


def test_save_visit_stores_photos_metadata_and_measurements(store):
    pid = new_patient(store, "V").id
    data = png(7, w=30, h=20)
    v = store.save_visit(MAIN, 
        pid, date=dt.date(2025, 1, 6), notes="baseline",
        photos=[
            NewPhoto(data, "IMG_1.PNG", "left cheek", capture={"distance_cm": 25}, measurement=meas(4.0)),
            NewPhoto(png(8), "dir/IMG_2.png", "right cheek"),
        ],
    )
    assert v.notes == "baseline" and len(v.photos) == 2
    p = v.photos[0]
    assert (p.region, p.filename, p.content_type, p.width, p.height) == ("left cheek", "IMG_1.PNG", "image/png", 30, 20)
    assert p.sha256 == hashlib.sha256(data).hexdigest() and p.capture == {"distance_cm": 25}
    assert v.photos[1].filename == "IMG_2.png"  # folders stripped
    assert store.photo_bytes(MAIN, pid, p.id) == data
    path = store.photo_path(MAIN, pid, p.id)
    assert path == store.data_dir / "photos" / p.sha256[:2] / f"{p.sha256}.png"
    assert store.visits(MAIN, pid) == [v]
    assert store.visit(MAIN, pid, v.id) == v
    assert store.regions(MAIN, pid) == ["left cheek", "right cheek"]
    assert [x.id for x in store.photos(MAIN, pid, region="right cheek")] == [v.photos[1].id]
    m = store.get_measurement(MAIN, pid, p.id, V1)
    assert m.roughness_index == 4.0 and m.metrics["scar.Sq"] == 2.0 and m.scale_source == "card"
    assert store.get_measurement(MAIN, pid, v.photos[1].id, V1) is None


@pytest.mark.parametrize("orientation, size", [(1, (40, 10)), (6, (10, 40)), (8, (10, 40))])
def test_photo_size_comes_from_the_header_with_exif_rotation(store, orientation, size):
    im = Image.new("RGB", (40, 10), (200, 150, 120))
    exif = im.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif.tobytes())
    pid = new_patient(store, "J").id
    p = store.save_visit(MAIN, pid, date="2025-01-01", photos=[NewPhoto(buf.getvalue(), "a.jpeg", "chin")]).photos[0]
    assert (p.width, p.height, p.content_type) == (*size, "image/jpeg")
    assert store.photo_path(MAIN, pid, p.id).suffix == ".jpg"  # extension from the bytes, not the upload name


# ------------------------------------------------------------------------------------------- blobs
def test_identical_bytes_are_stored_once(store):
    a = new_patient(store, "A").id
    b = new_patient(store, "B").id
    data = png(1)
    v1 = store.save_visit(MAIN, a, date="2025-01-01", photos=[
        NewPhoto(data, "x.png", "left cheek"), NewPhoto(data, "again.png", "right cheek"),
    ])
    # The same photo at a later visit of the same patient is a mistake (it would read "no change"): refused.
    with pytest.raises(Conflict, match=r"y.png was saved already at the visit of 01 Jan 2025 \(left cheek\) — "):
        store.save_visit(MAIN, a, date="2025-02-01", photos=[NewPhoto(png(2), "new.png", "chin"),
                                                            NewPhoto(data, "y.png", "left cheek")])
    assert count_rows(store, Visit) == 1 and len(list(store.blobs)) == 1  # nothing of that visit saved
    v2 = store.save_visit(MAIN, b, date="2025-02-01", photos=[NewPhoto(data, "z.png", "chin")])
    assert [p.filename for p in v1.photos] == ["x.png"]  # one row per (visit, sha256): first kept
    assert v2.photos[0].sha256 == v1.photos[0].sha256  # another patient's identical file is shared
    assert count_rows(store, Photo) == 2
    assert [sha for sha, _ in store.blobs] == [hashlib.sha256(data).hexdigest()]  # one file
    # Deleting one patient keeps the file the other still uses; deleting both removes it.
    store.delete_patient(MAIN, a)
    assert len(list(store.blobs)) == 1
    store.delete_patient(MAIN, b)
    assert list(store.blobs) == []


def test_blob_write_is_atomic_and_never_overwrites(tmp_path, monkeypatch):
    blobs = BlobStore(tmp_path / "photos")
    data = png(3)

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        blobs.put(data)
    assert list(blobs) == [] and blobs.temp_files() == []  # no partial file, temp file cleaned
    assert not any(p.is_file() for p in (tmp_path / "photos").rglob("*"))
    monkeypatch.undo()

    sha, ctype, path = blobs.put(data)
    assert path.read_bytes() == data and ctype == "image/png"
    monkeypatch.setattr(os, "replace", failing_replace)  # an existing hash is never rewritten
    assert blobs.put(data) == (sha, ctype, path)
    # A leftover temp file (killed writer) is not a photo.
    (path.parent / ".tmp-abandoned").write_bytes(data[:10])
    assert list(blobs) == [(sha, path)]


def test_corrupt_photo_file_is_detected(store):
    pid = new_patient(store, "C").id
    p = store.save_visit(MAIN, pid, date="2025-01-01", photos=[NewPhoto(png(4), "a.png", "chin")]).photos[0]
    path = store.photo_path(MAIN, pid, p.id)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage")
    with pytest.raises(StorageError, match="corrupt"):
        store.photo_bytes(MAIN, pid, p.id)
    path.unlink()
    with pytest.raises(StorageError, match="missing"):
        store.photo_bytes(MAIN, pid, p.id)


# ------------------------------------------------------------------------------------- transactions
def test_failing_analysis_leaves_no_rows_and_orphan_is_collected(store):
    pid = new_patient(store, "R").id
    keep = store.save_visit(MAIN, pid, date="2025-01-01", photos=[NewPhoto(png(10), "keep.png", "chin")])
    calls = []

    def analyse(photo: NewPhoto):
        calls.append(photo.filename)
        if len(calls) == 2:
            raise RuntimeError("analysis crashed")
        return meas(3.0)

    with pytest.raises(RuntimeError, match="analysis crashed"):
        store.save_visit(MAIN, 
            pid, date="2025-02-01", treatment={"needle_depth_mm": 1.0},
            photos=[NewPhoto(png(11), "a.png", "chin"), NewPhoto(png(12), "b.png", "left cheek")],
            analyse=analyse,
        )
    assert calls == ["a.png", "b.png"]
    assert [v.id for v in store.visits(MAIN, pid)] == [keep.id]
    assert (count_rows(store, Photo), count_rows(store, Measurement), count_rows(store, Treatment)) == (1, 0, 0)
    # The files the failed save wrote are gone with it (no deletion of the patient could reach them later).
    assert [sha for sha, _ in store.blobs] == [keep.photos[0].sha256]
    assert store.photo_bytes(MAIN, pid, keep.photos[0].id) == png(10)
    # A failed save of bytes another visit stores already keeps that visit's file.
    with pytest.raises(RuntimeError, match="analysis crashed"):
        store.save_visit(MAIN, pid, date="2025-03-01", photos=[NewPhoto(png(10), "again.png", "chin")],
                         analyse=lambda ph: (_ for _ in ()).throw(RuntimeError("analysis crashed")))
    assert store.photo_bytes(MAIN, pid, keep.photos[0].id) == png(10)


@pytest.mark.parametrize("meanwhile", ["another save fails", "a visit is deleted"])
def test_a_photo_file_another_save_found_is_there_when_its_row_commits(store, meanwhile):
    """Files are shared by content. A save that found its photo's file already there (step 2) and is still
    analysing must not commit its row for a file that was removed meanwhile — by the clean-up of a failing save of
    the same bytes, or by deleting the visit that held them — both of which saw no committed row using it. Before,
    the visit was saved with its photo file gone, and uploading the photo again was refused as 'saved already'."""
    import threading

    first, second = new_patient(store, "Ann").id, new_patient(store, "Bob").id
    data = png(40)
    held = store.save_visit(MAIN, first, date="2025-01-01", photos=[NewPhoto(data, "a.png", "chin")]) \
        if meanwhile == "a visit is deleted" else None
    found, removed, out = threading.Event(), threading.Event(), {}

    def slow_analysis(ph):  # the second save: its file was found (or written) in step 2; rows not yet committed
        found.set()
        assert removed.wait(30)
        return meas(2.0)

    def second_save():
        out["visit"] = store.save_visit(MAIN, second, date="2025-01-02", photos=[NewPhoto(data, "b.png", "chin")],
                                        analyse=slow_analysis)

    if meanwhile == "another save fails":
        def failing(ph):  # the first save wrote the file; the second found it there
            assert found.wait(30)
            raise RuntimeError("analysis crashed")

        t = threading.Thread(target=second_save)
        first_save = threading.Thread(target=lambda: pytest.raises(RuntimeError, store.save_visit, MAIN, first,
                                                                   date="2025-01-01", analyse=failing,
                                                                   photos=[NewPhoto(data, "a.png", "chin")]))
        first_save.start()
        time.sleep(0.2)  # (the first save's file is written before the second looks)
        t.start()
        first_save.join()
    else:
        t = threading.Thread(target=second_save)
        t.start()
        assert found.wait(30)
        store.delete_visit(MAIN, first, held.id)
    assert store.visits(MAIN, first) == [] and list(store.blobs) == []  # (the file went)
    removed.set()
    t.join()
    photo = out["visit"].photos[0]
    assert store.photo_bytes(MAIN, second, photo.id) == data


def test_a_full_disk_while_saving_photos_is_one_line_and_saves_nothing(store, monkeypatch):
    import errno

    import storage.blobs as blobs

    pid = new_patient(store, "Full").id
    real, calls = blobs._write_atomic, []

    def full_disk(final, data):
        calls.append(final)
        if len(calls) == 2:  # the visit's second photo
            raise OSError(errno.ENOSPC, "No space left on device", str(final))
        return real(final, data)

    monkeypatch.setattr(blobs, "_write_atomic", full_disk)
    photos = [NewPhoto(png(41), "a.png", "chin"), NewPhoto(png(42), "b.png", "left cheek")]
    with pytest.raises(StorageError) as err:
        store.save_visit(MAIN, pid, date="2025-01-01", photos=photos)
    assert str(err.value) == ("the photos folder cannot be written (No space left on device) — nothing was saved; "
                              "free space on the server or fix the folder's permissions, then save again")
    assert store.visits(MAIN, pid) == [] and list(store.blobs) == []  # (the first photo's file went too)
    monkeypatch.setattr(blobs, "_write_atomic", real)  # space freed: the same save goes through
    assert len(store.save_visit(MAIN, pid, date="2025-01-01", photos=photos).photos) == 2


def test_files_a_killed_save_left_are_collected(store):
    pid = new_patient(store, "K").id
    keep = store.save_visit(MAIN, pid, date="2025-01-01", photos=[NewPhoto(png(10), "keep.png", "chin")])
    orphan = store.blobs.put(png(11))[2]  # written by a save whose process died before its rows
    assert store.gc_orphans() == []  # fresh files are protected by the grace period
    assert store.gc_orphans(grace_s=0) == [orphan]
    assert [sha for sha, _ in store.blobs] == [keep.photos[0].sha256]


@pytest.mark.parametrize("field, value, said", [
    ("region", "R" * 101, "the region is 101 characters long, more than the 100 allowed"),
    ("region", "left\x00cheek", "the region contains a NUL character"),
    ("notes", "seen\x00today", "the notes contain a NUL character"),
    ("filename", "a\x00.png", "the file name contains a NUL character"),
    ("treatment", {"notes": "1.5\x00mm"}, "the notes contain a NUL character"),
    ("treatment", {"area": "A" * 201}, "the treated area is 201 characters long, more than the 200 allowed"),
    ("treatment", {"procedure": "P" * 101}, "the treatment's procedure is 101 characters long"),
])
def test_text_that_does_not_fit_is_refused_alike_on_every_database_before_any_file(store, field, value, said):
    """PostgreSQL refused these with a database error in the middle of the save, after the photo's file was
    written (SQLite stored them): now both refuse them first, in one line, and nothing is written."""
    pid = new_patient(store, "T").id
    photo = NewPhoto(png(20), value if field == "filename" else "a.png", value if field == "region" else "chin")
    with pytest.raises(OptionError, match=said.replace("(", r"\(")) as err:
        store.save_visit(MAIN, pid, date="2025-01-01", photos=[photo], notes=value if field == "notes" else "",
                         treatment=value if field == "treatment" else None)
    assert "\n" not in str(err.value)
    assert (count_rows(store, Visit), count_rows(store, Photo), count_rows(store, Treatment)) == (0, 0, 0)
    assert list(store.blobs) == []


def test_every_orm_write_is_checked_not_only_visits(store):
    with pytest.raises(OptionError, match="the patient code is 101 characters long"):
        store.create_patient(MAIN, "Long code", code="C" * 101)
    p = new_patient(store, "Fits")
    with pytest.raises(OptionError, match="the patient code contains a NUL character"):
        store.update_patient(MAIN, p.id, code="P\x00-1")
    assert store.patient(MAIN, p.id).code == p.code
    assert count_rows(store, Patient) == 1


def test_long_names_and_treatment_text_are_refused_not_cut(store):
    """A name, procedure or treated area longer than its column used to be cut without a word: what the
    practitioner typed was lost. Now it is refused in one line and nothing is stored."""
    with pytest.raises(OptionError, match="the patient's name is 201 characters long, more than the 200 allowed"):
        store.create_patient(MAIN, "N" * 201)
    assert count_rows(store, Patient) == 0
    p = new_patient(store, "Fits")
    with pytest.raises(OptionError, match="the patient's name is 201 characters long"):
        store.update_patient(MAIN, p.id, name="N" * 201)
    assert store.patient(MAIN, p.id).name == "Fits"
    assert store.create_patient(MAIN, "N" * 200).name == "N" * 200  # the limit itself fits, whole
    with pytest.raises(OptionError, match="the treated area is 201 characters long"):
        store.add_treatment(MAIN, p.id, "2025-01-01", area="A" * 201)
    with pytest.raises(OptionError, match="the treatment's procedure is 101 characters long"):
        store.add_treatment(MAIN, p.id, "2025-01-01", procedure="P" * 101)
    assert count_rows(store, Treatment) == 0


def test_a_nul_in_a_search_or_a_user_name_finds_nothing_instead_of_failing(store):
    new_patient(store, "Searchable")
    assert store.list_patients(MAIN, "Sea\x00rch") == []
    with pytest.raises(storage.SignInFailed):
        store.accounts.sign_in("ad\x00min", "whatever password")
    with store.engine.connect() as conn:  # the attempt is audited, with the NUL made visible
        tried = conn.execute(select(AuditEvent.account).where(AuditEvent.outcome == "failed")).scalars().all()
    assert tried == ["(unknown user name of 6 characters)"]  # (only its length: it may be a password)


def test_database_error_inside_the_transaction_rolls_everything_back(store, monkeypatch):
    import storage.visits as visits

    pid = new_patient(store, "D").id
    real = visits._measurement_row

    def broken_row(patient_id, photo_id, m):
        row = real(patient_id, photo_id, m)
        row.photo_id = None  # NOT NULL violation, raised by the database at flush
        return row

    monkeypatch.setattr(visits, "_measurement_row", broken_row)
    with pytest.raises(Exception) as info:
        store.save_visit(MAIN, pid, date="2025-01-01", treatment={},
                         photos=[NewPhoto(png(20), "a.png", "chin", measurement=meas(2.0))])
    assert "IntegrityError" in type(info.value).__name__
    assert (count_rows(store, Visit), count_rows(store, Photo), count_rows(store, Treatment)) == (0, 0, 0)


CRASH_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, {repo!r})
    sys.path.insert(0, {repo!r} + "/tests")
    from helpers import MAIN, new_patient
    from sqlalchemy import event
    from storage import open_store, NewPhoto, NewMeasurement
    from storage.models import Visit

    mode, data_dir, url = sys.argv[1], sys.argv[2], sys.argv[3] or None
    store = open_store(data_dir, url=url)
    pid = new_patient(store, "Crash").id
    photos = [NewPhoto(bytes.fromhex(h), f"p{{i}}.png", "chin",
                       measurement=NewMeasurement("1.0.0", roughness_index=1.0))
              for i, h in enumerate(sys.argv[4:])]
    if mode == "during-blob-write":
        real_fsync, n = os.fsync, [0]
        def fsync(fd):
            n[0] += 1
            if n[0] == 3:  # 1: first photo file, 2: its folder, 3: second photo file
                os._exit(17)  # die with the second photo's bytes in a .tmp- file, not yet renamed
            real_fsync(fd)
        os.fsync = fsync
    else:
        @event.listens_for(store._sessions, "before_commit")
        def hang(session):
            if any(isinstance(o, Visit) for o in session.identity_map.values()):
                print("READY", flush=True)  # rows flushed, not committed: the parent kills us now
                time.sleep(60)
    store.save_visit(MAIN, pid, date="2025-01-01", photos=photos)
    print("SAVED", flush=True)
    """
)


@pytest.mark.parametrize("mode", ["during-blob-write", "sigkill-before-commit"])
def test_crash_in_the_middle_of_saving_leaves_no_half_record(backend, mode):
    data_dir, url = backend
    photos = [png(30), png(31)]
    cmd = [sys.executable, "-c", CRASH_SCRIPT.format(repo=str(REPO)), mode, str(data_dir), url or ""]
    proc = subprocess.Popen(cmd + [p.hex() for p in photos], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        if mode == "sigkill-before-commit":
            line = proc.stdout.readline()
            assert line.strip() == "READY", proc.stderr.read()
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out, err = proc.communicate()
    assert "SAVED" not in out
    assert proc.returncode == (17 if mode == "during-blob-write" else -signal.SIGKILL), err

    with open_store(data_dir, url=url) as s:
        (patient,) = s.list_patients(MAIN, )
        assert patient.n_visits == 0 and s.visits(MAIN, patient.id) == []
        assert (count_rows(s, Photo), count_rows(s, Measurement)) == (0, 0)
        # Every listed photo file is complete (its content matches its name); a partial one is only a .tmp-.
        listed = list(s.blobs)
        for sha, path in listed:
            assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
        shas = {hashlib.sha256(p).hexdigest() for p in photos}
        if mode == "during-blob-write":
            assert [sha for sha, _ in listed] == [hashlib.sha256(photos[0]).hexdigest()]
            assert len(s.blobs.temp_files()) == 1
        else:
            assert {sha for sha, _ in listed} == shas and s.blobs.temp_files() == []
        s.gc_orphans(grace_s=0)
        assert list(s.blobs) == [] and s.blobs.temp_files() == []


# ------------------------------------------------------------------------------------ measurements
def test_measurement_is_computed_once_per_algorithm_version(store):
    pid = new_patient(store, "M").id
    photo = store.save_visit(MAIN, pid, date="2025-01-01", photos=[NewPhoto(png(40), "a.png", "chin")]).photos[0]
    calls = []

    def compute_v1():
        calls.append(V1)
        return {"roughness_index": np.float64(5.5), "metrics": {"roughness_index": np.float32(5.5),
                "fine.Sq": float("nan")}, "scars": [], "px_per_mm": 10, "scale_source": "default",
                "quality": {"ok": True, "warnings": [], "codes": [], "values": {"sharpness": 0.8}}}

    first = store.measurement_for(MAIN, pid, photo.id, V1, compute_v1)
    again = store.measurement_for(MAIN, pid, photo.id, V1, compute_v1)
    assert calls == [V1] and (again.id, again.created_at) == (first.id, first.created_at)  # NaN != NaN
    assert first.roughness_index == 5.5 and math.isnan(first.metrics["fine.Sq"])
    assert store.photo(MAIN, pid, photo.id).quality["values"] == {"sharpness": 0.8}

    def compute_v2():
        calls.append(V2)
        return meas(float("nan"), version=V2)

    second = store.measurement_for(MAIN, pid, photo.id, V2, compute_v2)
    assert calls == [V1, V2] and math.isnan(second.roughness_index)
    store.measurement_for(MAIN, pid, photo.id, V2, compute_v2)
    assert calls == [V1, V2]
    assert store.get_measurement(MAIN, pid, photo.id, V1).id == first.id  # the old version's row is kept
    assert count_rows(store, Measurement) == 2

    with pytest.raises(OptionError):  # compute() must answer for the version asked
        store.measurement_for(MAIN, pid, photo.id, "3.0.0", lambda: meas(1.0, version=V1))


def test_save_measurement_replaces_the_same_version(store):
    pid = new_patient(store, "S").id
    photo = store.save_visit(MAIN, pid, date="2025-01-01", photos=[NewPhoto(png(41), "a.png", "chin")]).photos[0]
    store.save_measurement(MAIN, pid, photo.id, V1, roughness_index=3.0, metrics={"roughness_index": 3.0})
    m = store.save_measurement(MAIN, pid, photo.id, V1, roughness_index=2.5, metrics={"roughness_index": 2.5},
                               scars=[{"d": 1}], px_per_mm=12.5, scale_source="card",
                               quality={"ok": False, "warnings": ["blurry"], "codes": ["blur"], "values": {}})
    assert count_rows(store, Measurement) == 1
    assert store.get_measurement(MAIN, pid, photo.id, V1) == m
    assert (m.roughness_index, m.scars, m.px_per_mm) == (2.5, [{"d": 1}], 12.5)
    assert store.photo(MAIN, pid, photo.id).quality["codes"] == ["blur"]


def test_comparisons_are_cached_by_photo_pair_and_version(store):
    pid = new_patient(store, "K").id
    b = store.save_visit(MAIN, pid, date="2025-01-01", photos=[NewPhoto(png(50), "b.png", "chin")]).photos[0]
    f = store.save_visit(MAIN, pid, date="2025-03-01", photos=[NewPhoto(png(51), "f.png", "chin")]).photos[0]
    assert store.get_comparison(MAIN, pid, b.id, f.id, V1) is None
    calls = []

    def compute():
        calls.append(1)
        return dict(change_pct=-12.0, ci_low=-18.0, ci_high=-6.0, mdc_pct=float("nan"), significant=True,
                    result={"registration": {"ok": True, "matrix": np.eye(2, 3)}})

    c = store.comparison_for(MAIN, pid, b.id, f.id, V1, compute)
    assert store.comparison_for(MAIN, pid, b.id, f.id, V1, compute).id == c.id and calls == [1]
    assert (c.region, c.change_pct, c.significant) == ("chin", -12.0, True) and math.isnan(c.mdc_pct)
    assert c.result["registration"]["matrix"] == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    c2 = store.save_comparison(MAIN, pid, b.id, f.id, V1, change_pct=-10.0, ci_low=-15, ci_high=-5, mdc_pct=4,
                               significant=True)
    assert c2.id == c.id and store.get_comparison(MAIN, pid, b.id, f.id, V1).change_pct == -10.0
    with pytest.raises(OptionError):
        store.save_comparison(MAIN, pid, b.id, b.id, V1, change_pct=0, ci_low=0, ci_high=0, mdc_pct=0, significant=False)


# ----------------------------------------------------------------------------------------- scoping
def test_a_patient_cannot_reach_another_patients_records(store):
    a = new_patient(store, "A").id
    b = new_patient(store, "B").id
    va = store.save_visit(MAIN, a, date="2025-01-01", photos=[NewPhoto(png(60), "a.png", "chin", measurement=meas(1.0))])
    vb = store.save_visit(MAIN, b, date="2025-01-02", photos=[NewPhoto(png(61), "b.png", "chin")])
    pa, pb = va.photos[0].id, vb.photos[0].id
    calls = [
        lambda: store.photo(MAIN, b, pa),
        lambda: store.photo_bytes(MAIN, b, pa),
        lambda: store.photo_path(MAIN, b, pa),
        lambda: store.get_measurement(MAIN, b, pa, V1),
        lambda: store.save_measurement(MAIN, b, pa, V1, roughness_index=1.0, metrics={}),
        lambda: store.measurement_for(MAIN, b, pa, V1, lambda: meas(1.0)),
        lambda: store.get_comparison(MAIN, b, pa, pb, V1),
        lambda: store.save_comparison(MAIN, b, pa, pb, V1, change_pct=0, ci_low=0, ci_high=0, mdc_pct=0,
                                      significant=False),
        lambda: store.visit(MAIN, b, va.id),
        lambda: store.delete_visit(MAIN, b, va.id),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            call()
    assert [p.id for p in store.photos(MAIN, b)] == [pb]
    assert store.photo_bytes(MAIN, a, pa) == png(60)  # untouched
    assert store.baseline_photo(MAIN, b, "chin").id == pb


# ---------------------------------------------------------------------------------------- progress
def _seed_course(store, n_visits: int, *, seed: int = 0):
    """A patient with a treatment 1 week after the first visit and ``n_visits`` visits 2 weeks apart.

    Each visit has a "left cheek" photo with a measurement, plus a "chin" photo with none; follow-ups
    have a stored comparison against the baseline. Returns (patient_id, roughness by visit, change by visit).
    """
    rng = np.random.default_rng(seed)
    pid = new_patient(store, "Progress", code=f"PR-{seed}").id
    start = dt.date(2024, 1, 1)
    store.add_treatment(MAIN, pid, start + dt.timedelta(days=7), needle_depth_mm=1.5)
    ri = 6.0 - np.cumsum(rng.uniform(0, 0.1, n_visits))
    photo_ids = []
    for i in range(n_visits):
        v = store.save_visit(MAIN, pid, date=start + dt.timedelta(days=14 * i), photos=[
            NewPhoto(png(1000 * seed + 2 * i), f"lc{i}.png", "left cheek", measurement=meas(float(ri[i]))),
            NewPhoto(png(1000 * seed + 2 * i + 1), f"ch{i}.png", "chin"),
        ])
        photo_ids.append(v.photos[0].id)
    change = {}
    for i in range(1, n_visits):
        pct = 100.0 * (ri[i] - ri[0]) / ri[0]
        change[i] = pct
        store.save_comparison(MAIN, pid, photo_ids[0], photo_ids[i], V1, change_pct=pct, ci_low=pct - 2,
                              ci_high=pct + 2, mdc_pct=3.0, significant=abs(pct) > 3)
    return pid, ri, change


def test_progress_of_50_visits_is_three_queries_and_fast(store):
    pid, ri, change = _seed_course(store, 50)
    with QueryCounter(store.engine) as qc:
        t0 = time.perf_counter()
        points = store.progress(MAIN, pid, "left cheek", algorithm_version=V1)
        elapsed = time.perf_counter() - t0
    assert qc.n <= 3, f"{qc.n} queries for one progress chart"  # access check, visits, comparisons
    assert elapsed < 0.5, f"progress of 50 visits took {elapsed:.3f} s"

    assert len(points) == 50
    assert [p.date for p in points] == [dt.date(2024, 1, 1) + dt.timedelta(days=14 * i) for i in range(50)]
    np.testing.assert_allclose([p.roughness_index for p in points], ri)
    assert points[0].is_baseline and points[0].change_pct == 0.0 and points[0].days_since_baseline == 0
    assert points[0].weeks_since_first_treatment == -1.0 and points[3].weeks_since_first_treatment == 5.0
    np.testing.assert_allclose([p.change_pct for p in points[1:]], [change[i] for i in range(1, 50)])
    np.testing.assert_allclose([p.ci_low for p in points[1:]], [change[i] - 2 for i in range(1, 50)])
    assert [p.significant for p in points[1:]] == [abs(change[i]) > 3 for i in range(1, 50)]
    assert points[10].metrics["scar.Sq"] == pytest.approx(ri[10] / 2)

    with QueryCounter(store.engine) as qc:
        visits = store.visits(MAIN, pid)
    assert len(visits) == 50 and qc.n <= 3  # access check + visits with their photos: no N+1 either

    # Another algorithm version: same visits, nothing measured yet.
    other = store.progress(MAIN, pid, "left cheek", algorithm_version=V2)
    assert len(other) == 50 and all(p.roughness_index is None and p.metrics is None for p in other)
    assert all(p.change_pct is None for p in other[1:])
    # A region without measurements still lists its visits.
    assert [p.roughness_index for p in store.progress(MAIN, pid, "chin", algorithm_version=V1)] == [None] * 50
    assert store.progress(MAIN, pid, "forehead", algorithm_version=V1) == []


def test_result_versions_lists_the_versions_with_stored_comparisons_newest_first(store):
    pid, ri, change = _seed_course(store, 3)
    assert store.result_versions(MAIN, pid, "left cheek") == [V1]
    photos = [p.photo_id for p in store.progress(MAIN, pid, "left cheek", algorithm_version=V1)]
    for v in ("1.10.0", "1.9.2"):
        store.save_comparison(MAIN, pid, photos[0], photos[1], v, change_pct=1.0, ci_low=0, ci_high=2, mdc_pct=3,
                              significant=False)
    got = store.result_versions(MAIN, pid, "left cheek")
    assert got[:2] == ["1.10.0", "1.9.2"] and set(got) == {V1, "1.10.0", "1.9.2"}
    assert store.result_versions(MAIN, pid, "chin") == []  # another region: its own results only
    from storage.results import version_key
    assert version_key("1.10.0") > version_key("1.9.2") > version_key("1.2.10") > version_key("1.2.9")
    assert version_key("1.3") == version_key("1.3.0")
    assert version_key("1.3.9") < version_key("1.4.0rc1") < version_key("1.4.0")  # a pre-release before its release


def test_patient_list_shows_latest_change_against_the_true_baseline(store):
    pid, ri, change = _seed_course(store, 4)
    plain = new_patient(store, "No visits").id
    with QueryCounter(store.engine) as qc:
        rows = {r.id: r for r in store.list_patients(MAIN, algorithm_version=V1)}
    assert qc.n <= 2
    r = rows[pid]
    assert (r.n_visits, r.first_visit, r.last_visit) == (4, dt.date(2024, 1, 1), dt.date(2024, 2, 12))
    assert (r.change_region, r.change_date) == ("left cheek", dt.date(2024, 2, 12))
    assert r.change_pct == pytest.approx(change[3]) and r.change_ci_low == pytest.approx(change[3] - 2)
    assert rows[plain].n_visits == 0 and rows[plain].change_pct is None

    # An earlier visit entered later becomes the baseline: comparisons against the old one no longer count.
    store.save_visit(MAIN, pid, date="2023-12-01", photos=[NewPhoto(png(999), "old.png", "left cheek")])
    assert store.list_patients(MAIN, "PR-0", algorithm_version=V1)[0].change_pct is None
    assert store.baseline_photo(MAIN, pid, "left cheek").filename == "old.png"


def test_a_visit_with_several_photos_of_a_region_counts_one_photo_everywhere(store):
    """One rule for which photo stands for a visit (its first measurable one): progress, the baseline and the
    patients list used to pick different photos of the same visit and show −20 % on one page, −40 % on the
    next."""
    pid = new_patient(store, "Two photos", code="TWO").id
    unmeasurable = meas(float("nan"))
    v1 = store.save_visit(MAIN, pid, date="2025-01-01", photos=[
        NewPhoto(png(501), "black.png", "left cheek", measurement=unmeasurable),  # first, but unmeasurable
        NewPhoto(png(502), "base.png", "left cheek", measurement=meas(5.0))])
    v2 = store.save_visit(MAIN, pid, date="2025-02-01", photos=[
        NewPhoto(png(503), "first.png", "left cheek", measurement=meas(4.0)),
        NewPhoto(png(504), "retake.png", "left cheek", measurement=meas(3.0))])
    base, first, retake = v1.photos[1], v2.photos[0], v2.photos[1]
    for ph, pct in ((first, -20.0), (retake, -40.0)):  # the retake's comparison is the newest row
        store.save_comparison(MAIN, pid, base.id, ph.id, V1, change_pct=pct, ci_low=pct - 5, ci_high=pct + 5,
                              mdc_pct=5.0, significant=True)
    assert store.baseline_photo(MAIN, pid, "left cheek").id == base.id
    points = store.progress(MAIN, pid, "left cheek", algorithm_version=V1)
    assert [(p.photo_id, p.is_baseline, p.change_pct) for p in points] == [(base.id, True, 0.0), (first.id, False, -20.0)]
    (row,) = store.list_patients(MAIN, "TWO", algorithm_version=V1)
    assert row.change_pct == -20.0


def test_delete_patient_removes_rows_and_files(store):
    pid, _, _ = _seed_course(store, 3)
    other = new_patient(store, "Other").id
    store.save_visit(MAIN, other, date="2025-01-01", photos=[NewPhoto(png(77), "o.png", "chin", measurement=meas(1.0))])
    store.delete_patient(MAIN, pid)
    with pytest.raises(NotFound):
        store.patient(MAIN, pid)
    for model, n in ((Patient, 1), (Visit, 1), (Photo, 1), (Measurement, 1), (Comparison, 0), (Treatment, 0)):
        assert count_rows(store, model) == n, model.__name__
    assert [sha for sha, _ in store.blobs] == [hashlib.sha256(png(77)).hexdigest()]


def test_delete_visit_cascades_to_photos_and_results(store):
    pid, _, _ = _seed_course(store, 3)
    first = store.visits(MAIN, pid)[0]
    store.delete_visit(MAIN, pid, first.id)
    assert len(store.visits(MAIN, pid)) == 2
    assert count_rows(store, Comparison) == 0  # all were against the deleted baseline
    assert count_rows(store, Measurement) == 2
    assert len(list(store.blobs)) == 4


def test_public_api_is_documented():
    doc = storage.__doc__
    for name in ("open_store", "save_visit", "measurement_for", "progress", "gc_orphans", "photo_bytes"):
        assert name in doc
    for name in storage.__all__:
        assert getattr(storage, name)


def test_a_photo_with_nothing_measurable_never_becomes_the_baseline(store):
    # a black photo kept despite the quality gate (roughness NaN) must not be the reference for later visits
    pid = new_patient(store, "Nan Baseline").id
    black = NewPhoto(b"black-photo-bytes", "black.png", "chin",
                     measurement=NewMeasurement("v1", roughness_index=float("nan")))
    good = NewPhoto(b"good-photo-bytes", "good.png", "chin", measurement=NewMeasurement("v1", roughness_index=4.2))
    store.save_visit(MAIN, pid, date=dt.date(2026, 1, 5), photos=[black])
    store.save_visit(MAIN, pid, date=dt.date(2026, 1, 12), photos=[good])
    assert store.baseline_photo(MAIN, pid, "chin").filename == "good.png"
