"""Defects found by a security review of storage and the app glue (1 December 2026): each test failed on the code
as reviewed (link expiry off UTC, a viewer storing results, a cache shared across patients' identical files,
world-readable exports, clinical text readable through a patient link, a fractional patient id)."""
from __future__ import annotations

import datetime as dt
import os
import stat
import time

import pytest
from helpers import MAIN, app_texts, local_time_zone, new_patient, small_png

from storage import Actor, NewMeasurement, NewPhoto, NotFound, open_store

PW = "correct horse battery staple"
V = "1.0.0"


png = small_png


pytestmark = pytest.mark.usefixtures("cheap_hashes")  # (tests/conftest.py)


@pytest.fixture
def sqlite_store(tmp_path):
    s = open_store(tmp_path / "data")
    yield s
    s.close()


@pytest.fixture
def tokyo():
    """The server's local time zone is not UTC (as on any clinic's server outside UTC)."""
    with local_time_zone("Asia/Tokyo"):
        yield


# ------------------------------------------------------------------------------------------------------------
# 1. Patient links outlive their expiry on SQLite when the server's time zone is not UTC.
#    storage/links.py:71-76 builds a *local* aware expiry; SQLite's DateTime drops the offset on write and
#    as_utc() (storage/models.py:51) reads the wall time back as UTC.
# ------------------------------------------------------------------------------------------------------------
def test_link_opens_after_its_expiry_when_the_server_is_not_on_utc(sqlite_store, tokyo):
    store = sqlite_store
    p = new_patient(store, "Alice Secret")
    # What the Patients page does: "valid until the end of <date>" (a date, local end of day).
    token, rec = store.links.issue(MAIN, p.id, expires_at=dt.date.today())
    assert store.links.actor(token).patient_id == p.id
    # One minute after the expiry the practitioner chose, the link must be dead ...
    store.links.clock = lambda: rec.expires_at + dt.timedelta(minutes=1)
    with pytest.raises(NotFound):
        store.links.open(token)  # ... but it still opens (for 9 more hours in UTC+9)


def test_link_expiry_read_back_differs_from_the_expiry_issued(sqlite_store):
    """Same defect without touching TZ: an aware expiry with a non-UTC offset loses its offset on SQLite."""
    store = sqlite_store
    p = new_patient(store, "Alice Secret")
    plus9 = dt.timezone(dt.timedelta(hours=9))
    expires = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).astimezone(plus9)
    token, rec = store.links.issue(MAIN, p.id, expires_at=expires)
    (stored,) = store.links.list(MAIN, p.id)
    assert stored.expires_at == expires, (stored.expires_at, expires)  # 9 hours later than issued


# ------------------------------------------------------------------------------------------------------------
# 2. A viewer (read-only role) creates comparison and measurement rows — with values it supplies itself — and
#    leaves "compare" audit rows; README: "A viewer reads; a practitioner also ... compares".
#    storage/results.py:97 and :196 (right = WRITE if replace else READ).
# ------------------------------------------------------------------------------------------------------------
def test_a_viewer_cannot_store_comparisons_or_measurements(sqlite_store):
    store = sqlite_store
    system = Actor.system()
    store.accounts.add(system, "main_prac", role="practitioner", password=PW, clinic="MAIN")
    store.accounts.add(system, "main_viewer", role="viewer", password=PW, clinic="MAIN")
    prac = store.accounts.sign_in("main_prac", PW)
    viewer = store.accounts.sign_in("main_viewer", PW)
    p = new_patient(store, "Alice Secret", actor=prac)
    a = store.save_visit(prac, p.id, date="2025-01-01", photos=[
        NewPhoto(png(1), "a.png", "chin", measurement=NewMeasurement(V, roughness_index=5.0))]).photos[0].id
    b = store.save_visit(prac, p.id, date="2025-02-01", photos=[NewPhoto(png(2), "b.png", "chin")]).photos[0].id
    fabricated = dict(change_pct=-60.0, ci_low=-65.0, ci_high=-55.0, mdc_pct=1.0, significant=True)
    try:
        store.comparison_for(viewer, p.id, a, b, V, lambda: fabricated)
    except Exception:
        pass
    try:
        store.measurement_for(viewer, p.id, b, V, lambda: dict(roughness_index=0.1, metrics={}))
    except Exception:
        pass
    # Nothing a viewer did may be stored or shown to the practitioner as a result.
    assert store.get_comparison(prac, p.id, a, b, V) is None
    assert store.get_measurement(prac, p.id, b, V) is None
    assert not [e for e in store.audit.events(system, action="compare") if e.account == "main_viewer"]


# ------------------------------------------------------------------------------------------------------------
# 3. The aligned before/after cache is keyed by the photos' hashes only (relief_app/services.py:265-281): when two
#    patients (here of two clinics) hold identical photo files, the second gets what was computed for the first
#    patient's photo records (regions typed at the other clinic, its given scale, its stored numbers).
# ------------------------------------------------------------------------------------------------------------
def _compare_script():
    import streamlit as st

    from relief_app import services

    st.session_state["actor"] = st.session_state["as_actor"]
    a, b = st.session_state["pair"]
    view = services.compare_views(a.patient_id, a, b)
    st.text(f"regions: {view['regions']}")


def test_the_compare_cache_hands_one_patients_result_to_another_clinic(tmp_path, monkeypatch):
    from relief_app import visits

    data = tmp_path / "data"
    monkeypatch.setenv("RELIEF_DATA_DIR", str(data))
    monkeypatch.delenv("RELIEF_DATABASE_URL", raising=False)
    with open_store(data) as s:
        s.accounts.add(Actor.system(), "other_prac", role="practitioner", password=PW, clinic="OTHER")
        other = s.accounts.sign_in("other_prac", PW)
        pairs = {}
        for actor, box in ((MAIN, "Jane Doe's keloid (MAIN)"), (other, "forehead")):
            p = new_patient(s, f"patient of {actor.name}", actor=actor)
            v1 = s.save_visit(actor, p.id, date="2025-01-01", photos=[
                NewPhoto(png(11), "a.png", "chin", capture={"regions": {box: [0, 0, 10, 10]}})])
            v2 = s.save_visit(actor, p.id, date="2025-02-01", photos=[NewPhoto(png(12), "b.png", "chin")])
            pairs[actor.name] = (v1.photos[0], v2.photos[0])

    def fake_compare_views(store, actor, patient_id, baseline_id, followup_id):
        # What the real compare_views derives from the records: the baseline's regions (run_compare's `spec`).
        return {"regions": sorted((store.photo(actor, patient_id, baseline_id).capture or {}).get("regions", {}))}

    monkeypatch.setattr(visits, "compare_views", fake_compare_views)

    def run(actor, pair):
        return app_texts(_compare_script, actor, pair=pair)

    assert run(MAIN, pairs["system"]) == ["regions: [\"Jane Doe's keloid (MAIN)\"]"]
    # Clinic OTHER, its own patient, its own photos (same bytes): must see its own regions only.
    assert run(other, pairs["other_prac"]) == ["regions: ['forehead']"]


# ------------------------------------------------------------------------------------------------------------
# 4. Exports with names, birth dates and notes are written readable by every local user
#    (relief_app/export.py:258, :162, :178: mkdir/open/write_bytes with the umask's 0755/0644), unlike the
#    database (0600) and the data folders (0700).
# ------------------------------------------------------------------------------------------------------------
def test_an_identifying_export_is_not_readable_by_other_local_users(sqlite_store, tmp_path):
    from relief_app import export, reportdata

    store = sqlite_store
    new_patient(store, "Alice Secret", code="A-1", birth_date=dt.date(1980, 1, 2), notes="HIV positive")
    data = reportdata.gather_export(store, MAIN)
    old = os.umask(0o022)
    try:
        files = export.write_export(data, tmp_path / "export")
    finally:
        os.umask(old)
    loose = [(f.name, oct(stat.S_IMODE(f.stat().st_mode))) for f in [tmp_path / "export", *files]
             if f.stat().st_mode & 0o077]
    assert loose == []


# ------------------------------------------------------------------------------------------------------------
# 5. (defence in depth) storage/access.py:14 says a patient link "reads one patient's progress; nothing else", but
#    _RIGHTS gives "link" the full READ right (storage/access.py:37): a link actor reads the clinician's notes,
#    birth date, visit and treatment notes and consent history through storage. Not reachable from the visit-mode
#    page today; a page that forgets would leak them.
# ------------------------------------------------------------------------------------------------------------
def test_a_patient_link_reads_progress_only_not_clinical_notes(sqlite_store):
    store = sqlite_store
    p = new_patient(store, "Alice Secret", birth_date=dt.date(1980, 1, 2), notes="clinician-only: HIV positive")
    store.add_treatment(MAIN, p.id, "2025-01-01", notes="clinician-only treatment note")
    token, _ = store.links.issue(MAIN, p.id)
    link = store.links.open(token)
    store.save_visit(MAIN, p.id, date="2025-01-02", notes="clinician-only visit note",
                     photos=[NewPhoto(png(3), "Alice_Secret_cheek.png", "chin")])
    leaked = []
    for what, call in (("patient notes", lambda: store.patient(link, p.id).notes),
                       ("birth date", lambda: store.patient(link, p.id).birth_date),
                       ("treatment notes", lambda: [t.notes for t in store.treatments(link, p.id) if t.notes]),
                       ("visit notes", lambda: [v.notes for v in store.visits(link, p.id) if v.notes]),
                       ("file names", lambda: [ph.filename for ph in store.photos(link, p.id)
                                               if "Alice" in ph.filename]),
                       ("consent history", lambda: store.consents.status(link, p.id).history)):
        try:
            value = call()
        except Exception:
            continue
        if value:
            leaked.append(what)
    assert leaked == []

    # what the patient's page needs is still there: the photos themselves, the treatment dates
    assert [t.date for t in store.treatments(link, p.id)] == [dt.date(2025, 1, 1)]
    assert len(store.photos(link, p.id)) == 1 and store.photo_bytes(link, p.id, store.photos(link, p.id)[0].id)
    # and the clinic's staff still read everything
    assert store.patient(MAIN, p.id).notes.startswith("clinician-only")
    assert store.photos(MAIN, p.id)[0].filename == "Alice_Secret_cheek.png"


@pytest.mark.parametrize("bad", [1.5, True, "1.5", float("nan"), float("inf")])
def test_only_a_whole_number_names_a_patient(sqlite_store, bad):
    """int(1.5) is 1: a fractional id passed the scope check of patient 1 while an insert using the value as given
    could land on another row (PostgreSQL rounds 1.5 to 2)."""
    store = sqlite_store
    new_patient(store, "Alice Secret")
    with pytest.raises(NotFound):
        store.add_treatment(MAIN, bad, "2025-01-01")
    with pytest.raises(NotFound):
        store.patient(MAIN, bad)


def test_a_viewer_still_sees_a_comparison_on_the_compare_page_but_it_is_not_stored(sqlite_store):
    """Pages compute for a read-only account without storing: the Compare page works for a viewer."""
    from helpers import another_photo

    from relief_app import demo, visits

    store = sqlite_store
    system = Actor.system()
    store.accounts.add(system, "main_viewer", role="viewer", password=PW, clinic="MAIN")
    viewer = store.accounts.sign_in("main_viewer", PW)
    p = new_patient(store, "Alice Secret")
    data = (demo.SAMPLES_DIR / "week06.jpg").read_bytes()
    ids = [store.save_visit(MAIN, p.id, date=f"2025-0{k + 1}-01", photos=[
        NewPhoto(another_photo(data, k), f"{k}.jpg", "left cheek")]).photos[0].id for k in range(2)]
    view = visits.compare_views(store, viewer, p.id, *ids)
    assert abs(view["values"]["change_pct"]) < 5  # the same skin
    assert store.get_comparison(MAIN, p.id, *ids, visits.analyzer.ALGORITHM_VERSION) is None
    assert visits.complete_results(store, viewer, p.id, store.progress(viewer, p.id, "left cheek")) == (False, [])


def test_the_report_command_writes_an_owner_only_pdf(tmp_path, monkeypatch):
    from relief_app import __main__ as cli
    from relief_app import demo

    data = tmp_path / "data"
    monkeypatch.setenv("RELIEF_DATA_DIR", str(data))
    monkeypatch.delenv("RELIEF_DATABASE_URL", raising=False)
    with open_store(data) as s:
        demo.seed_demo(s)
    out = tmp_path / "report.pdf"
    old = os.umask(0o022)
    try:
        assert cli.main(["report", "--patient", demo.DEMO_CODE, "--out", str(out)]) == 0
    finally:
        os.umask(old)
    assert out.read_bytes()[:5] == b"%PDF-" and stat.S_IMODE(out.stat().st_mode) == 0o600


def test_times_are_read_back_as_the_instant_written_in_utc_on_both_databases(store):
    """An expiry given at UTC+9 is the same instant when read back, expressed in UTC, on SQLite and PostgreSQL."""
    p = new_patient(store, "Alice Secret")
    plus9 = dt.timezone(dt.timedelta(hours=9))
    expires = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=3)).astimezone(plus9).replace(microsecond=0)
    store.links.issue(MAIN, p.id, expires_at=expires)
    (stored,) = store.links.list(MAIN, p.id)
    assert stored.expires_at == expires and stored.expires_at.utcoffset() == dt.timedelta(0)
    assert all(e.at.utcoffset() == dt.timedelta(0) for e in store.audit.events(Actor.system(1)))


def test_a_patient_link_does_not_list_the_birth_date(sqlite_store):
    store = sqlite_store
    p = new_patient(store, "Alice Secret", birth_date=dt.date(1980, 1, 2))
    token, _ = store.links.issue(MAIN, p.id)
    link = store.links.open(token)
    assert [s.birth_date for s in store.list_patients(link)] == [None]
    assert [s.birth_date for s in store.list_patients(MAIN)] == [dt.date(1980, 1, 2)]


@pytest.mark.parametrize("action", ["account_disabled", "delete_patient", "sign_in", "link_revoked"])
def test_the_audit_log_takes_only_exports_and_reports_from_outside_storage(sqlite_store, action):
    """Any reader could add rows of any action under their name (a viewer writing "account_disabled")."""
    from storage import OptionError

    store = sqlite_store
    store.accounts.add(Actor.system(), "main_viewer", role="viewer", password=PW, clinic="MAIN")
    viewer = store.accounts.sign_in("main_viewer", PW)
    p = new_patient(store, "Alice Secret")
    before = len(store.audit.events(Actor.system(1)))
    with pytest.raises(OptionError):
        store.audit.log(viewer, action, patient_id=p.id)
    with pytest.raises(OptionError):
        store.audit.log_each(viewer, action, [p.id])
    assert len(store.audit.events(Actor.system(1))) == before
    store.audit.log(viewer, "report", patient_id=p.id, detail="dashboard, A4")  # what happens outside storage
    assert store.audit.events(Actor.system(1))[0].action == "report"
