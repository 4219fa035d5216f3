"""Security: every promise about access, sign-in, links, consent and audit, tried from the outside.

Storage-level tests run on SQLite and on the real PostgreSQL server `make test` starts; the app-level ones go
through Streamlit's AppTest (the browser-level ones are in test_browser.py). Each test is written so that it
fails if the check it is about is removed.
"""
from __future__ import annotations

import datetime as dt
import inspect
import json
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import (MAIN, another_photo, app_texts, figure_captions, local_time_zone, media_images,
                     new_patient, signed_in, small_png)
from sqlalchemy import select, text

from storage import (AccessDenied, Actor, Conflict, ConsentRequired, NewMeasurement, NewPhoto, NotFound, OptionError,
                     SignInFailed, Store, open_store)
from storage.models import Account, Consent
from storage import accounts as accounts_mod

REPO = Path(__file__).resolve().parents[1]
PW = "correct horse battery staple"
SIGN_IN_FAILED_LINE = accounts_mod.SIGN_IN_FAILED[:1].upper() + accounts_mod.SIGN_IN_FAILED[1:] + "."
V = "1.0.0"


png = small_png


pytestmark = pytest.mark.usefixtures("cheap_hashes")  # (tests/conftest.py)




@pytest.fixture
def world(store):
    """Clinic MAIN with a patient that has two visits, a comparison and a link; clinic OTHER with a
    practitioner; accounts of every role in MAIN."""
    system = Actor.system()
    for name, role, clinic in (("main_admin", "admin", "MAIN"), ("main_prac", "practitioner", "MAIN"),
                               ("main_viewer", "viewer", "MAIN"), ("other_prac", "practitioner", "OTHER"),
                               ("other_admin", "admin", "OTHER")):
        store.accounts.add(system, name, role=role, password=PW, clinic=clinic)
    actors = {n: store.accounts.sign_in(n, PW) for n in ("main_admin", "main_prac", "main_viewer", "other_prac",
                                                          "other_admin")}
    prac = actors["main_prac"]
    p = new_patient(store, "Alice Secret", code="A-1", actor=prac)
    v1 = store.save_visit(prac, p.id, date="2025-01-01", photos=[
        NewPhoto(png(1), "a.png", "chin", measurement=NewMeasurement(V, roughness_index=5.0))])
    v2 = store.save_visit(prac, p.id, date="2025-02-01", photos=[
        NewPhoto(png(2), "b.png", "chin", measurement=NewMeasurement(V, roughness_index=4.0))])
    a, b = v1.photos[0].id, v2.photos[0].id
    store.save_comparison(prac, p.id, a, b, V, change_pct=-20.0, ci_low=-25.0, ci_high=-15.0, mdc_pct=5.0,
                          significant=True)
    return dict(store=store, actors=actors, pid=p.id, photos=(a, b), visits=(v1.id, v2.id))


# every patient-scoped call of the storage, as (name, call(store, actor, pid, photo_a, photo_b, visit_a))
CALLS = [
    ("patient", lambda s, x, pid, a, b, v: s.patient(x, pid)),
    ("open_patient", lambda s, x, pid, a, b, v: s.open_patient(x, pid)),
    ("update_patient", lambda s, x, pid, a, b, v: s.update_patient(x, pid, notes="x")),
    ("delete_patient", lambda s, x, pid, a, b, v: s.delete_patient(x, pid)),
    ("add_treatment", lambda s, x, pid, a, b, v: s.add_treatment(x, pid, "2025-01-01")),
    ("treatments", lambda s, x, pid, a, b, v: s.treatments(x, pid)),
    ("save_visit", lambda s, x, pid, a, b, v: s.save_visit(x, pid, date="2025-03-01",
                                                           photos=[NewPhoto(png(9), "c.png", "chin")])),
    ("visits", lambda s, x, pid, a, b, v: s.visits(x, pid)),
    ("visit", lambda s, x, pid, a, b, v: s.visit(x, pid, v)),
    ("delete_visit", lambda s, x, pid, a, b, v: s.delete_visit(x, pid, v)),
    ("photos", lambda s, x, pid, a, b, v: s.photos(x, pid)),
    ("photo", lambda s, x, pid, a, b, v: s.photo(x, pid, a)),
    ("photo_bytes", lambda s, x, pid, a, b, v: s.photo_bytes(x, pid, a)),
    ("photo_path", lambda s, x, pid, a, b, v: s.photo_path(x, pid, a)),
    ("regions", lambda s, x, pid, a, b, v: s.regions(x, pid)),
    ("baseline_photo", lambda s, x, pid, a, b, v: s.baseline_photo(x, pid, "chin")),
    ("get_measurement", lambda s, x, pid, a, b, v: s.get_measurement(x, pid, a, V)),
    ("save_measurement", lambda s, x, pid, a, b, v: s.save_measurement(x, pid, a, V, roughness_index=1.0,
                                                                       metrics={})),
    ("measurement_for", lambda s, x, pid, a, b, v: s.measurement_for(x, pid, a, "9.9", lambda: dict(
        roughness_index=1.0, metrics={}))),
    ("get_comparison", lambda s, x, pid, a, b, v: s.get_comparison(x, pid, a, b, V)),
    ("save_comparison", lambda s, x, pid, a, b, v: s.save_comparison(x, pid, a, b, V, change_pct=0, ci_low=0,
                                                                     ci_high=0, mdc_pct=0, significant=False)),
    ("comparison_for", lambda s, x, pid, a, b, v: s.comparison_for(x, pid, a, b, "9.9", lambda: dict(
        change_pct=0, ci_low=0, ci_high=0, mdc_pct=0, significant=False))),
    ("progress", lambda s, x, pid, a, b, v: s.progress(x, pid, "chin")),
    ("result_versions", lambda s, x, pid, a, b, v: s.result_versions(x, pid, "chin")),
    ("consent status", lambda s, x, pid, a, b, v: s.consents.status(x, pid)),
    ("consent record", lambda s, x, pid, a, b, v: s.consents.record(x, pid, "marketing", granted=True)),
    ("link issue", lambda s, x, pid, a, b, v: s.links.issue(x, pid)),
    ("link list", lambda s, x, pid, a, b, v: s.links.list(x, pid)),
    ("link revoke", lambda s, x, pid, a, b, v: s.links.revoke(x, pid, 1)),
    ("audit log", lambda s, x, pid, a, b, v: s.audit.log(x, "export", patient_id=pid)),
    ("audit log each", lambda s, x, pid, a, b, v: s.audit.log_each(x, "export", [pid])),
]
WRITES = {"update_patient", "delete_patient", "add_treatment", "save_visit", "delete_visit", "save_measurement",
          "save_comparison", "consent record", "link issue", "link list", "link revoke"}


def _call(world, name, actor):
    fn = dict(CALLS)[name]
    return fn(world["store"], actor, world["pid"], *world["photos"], world["visits"][0])


# ------------------------------------------------------------------------------------- one door, scoped
def test_every_public_store_method_takes_the_acting_account_first():
    maintenance = {"close", "gc_orphans"}
    for name, fn in inspect.getmembers(Store, inspect.isfunction):
        if name.startswith("_") or name in maintenance:
            continue
        params = list(inspect.signature(fn).parameters)
        assert params[:2] == ["self", "actor"], f"Store.{name}{params} does not take the actor first"
    assert {n for n, _ in CALLS} >= {n for n, f in inspect.getmembers(Store, inspect.isfunction)
                                    if not n.startswith("_") and n not in maintenance | {"create_patient",
                                                                                          "list_patients"}}


@pytest.mark.parametrize("name", [n for n, _ in CALLS])
def test_no_actor_no_data(world, name):
    with pytest.raises(AccessDenied, match="sign in"):
        _call(world, name, None)
    with pytest.raises(AccessDenied):
        world["store"].list_patients(None)


@pytest.mark.parametrize("name", [n for n, _ in CALLS])
def test_another_clinic_cannot_reach_the_patient_by_any_call(world, name):
    store, other = world["store"], world["actors"]["other_prac"]
    with pytest.raises(NotFound) as theirs:
        _call(world, name, other)
    # Exactly the answer for an id that does not exist: nothing tells that the patient exists.
    with pytest.raises(NotFound) as missing:
        CALLS_ = dict(CALLS)[name]
        CALLS_(store, other, 987654, *world["photos"], world["visits"][0])
    assert str(theirs.value) == str(missing.value)
    # ... and the patient is untouched.
    assert store.patient(MAIN, world["pid"]).name == "Alice Secret"
    assert len(store.visits(MAIN, world["pid"])) == 2


# An Actor is a snapshot: storage checks it again in each call's transaction, so a caller that keeps one (a long
# job, a script, a page run under way) cannot outlive the end of its access. The dashboard checks every page run
# as well (relief_app.auth); these go round it, straight to storage.
def _remove_password(store):
    with store._sessions() as s, s.begin():  # (an account without a password needs an e-mail)
        acc = s.scalar(select(Account).where(Account.username == "main_admin"))
        acc.email = acc.email_key = "admin@clinic.example"
    store.accounts.remove_password(Actor.system(), "main_admin")


ENDINGS = {
    "disabled": lambda store: store.accounts.set_disabled(Actor.system(), "main_admin"),
    "password reset": lambda store: store.accounts.reset_password(Actor.system(), "main_admin", PW + " new"),
    "password removed": _remove_password,
}
# Calls beside the patient-scoped ones (CALLS) that an admin makes.
CLINIC_CALLS = {
    "list_patients": lambda store, x: store.list_patients(x),
    "create_patient": lambda store, x: store.create_patient(x, "Kept Actor"),
    "consents.last_change": lambda store, x: store.consents.last_change(x),
    "audit log, no patient": lambda store, x: store.audit.log(x, "export", detail="kept"),
    "audit events": lambda store, x: store.audit.events(x),
    "accounts list": lambda store, x: store.accounts.list(x),
    "accounts add": lambda store, x: store.accounts.add(x, "kept_new", role="viewer", password=PW),
    "accounts disable": lambda store, x: store.accounts.set_disabled(x, "main_viewer"),
    "accounts reset": lambda store, x: store.accounts.reset_password(x, "main_viewer", PW + " other"),
    "accounts reset, links revoked": lambda store, x: store.accounts.reset_password(x, "main_prac", PW + " other",
                                                                                    revoke_links=True),
    "accounts open links": lambda store, x: store.accounts.open_links(x, "main_prac"),
}


def _audit_rows(store) -> int:
    with store._sessions() as s:
        return len(s.execute(text("SELECT id FROM audit_events")).all())


@pytest.mark.parametrize("ending", list(ENDINGS))
@pytest.mark.parametrize("name", [n for n, _ in CALLS] + list(CLINIC_CALLS))
def test_an_account_actor_kept_after_its_access_ended_is_refused_by_every_call(world, name, ending):
    store, kept = world["store"], world["actors"]["main_admin"]  # an admin: only the check in force can refuse
    ENDINGS[ending](store)
    rows = _audit_rows(store)
    with pytest.raises(AccessDenied, match="^your session has ended; sign in again$"):
        if name in CLINIC_CALLS:
            CLINIC_CALLS[name](store, kept)
        else:
            _call(world, name, kept)
    # Nothing was written, not even an audit row; the patient, its visits and the accounts are as they were.
    assert _audit_rows(store) == rows
    assert [p.name for p in store.list_patients(MAIN)] == ["Alice Secret"]
    assert store.patient(MAIN, world["pid"]).notes == ""
    assert len(store.visits(MAIN, world["pid"])) == 2
    accounts = {a.username: a for a in store.accounts.list(Actor.system())}
    assert "kept_new" not in accounts and not accounts["main_viewer"].disabled


def test_only_the_ended_account_is_refused_and_signing_in_again_works(world):
    store, actors, pid = world["store"], world["actors"], world["pid"]
    store.accounts.set_disabled(Actor.system(), "main_viewer")
    assert store.patient(actors["main_prac"], pid).name == "Alice Secret"  # (another account goes on)
    with pytest.raises(AccessDenied, match="session has ended"):
        store.patient(actors["main_viewer"], pid)
    store.accounts.set_disabled(Actor.system(), "main_viewer", False)
    # Enabling it again does not revive a session kept meanwhile (a tab that made no request while the account was
    # disabled, an actor kept by a script: a review let one back in); the person signs in again.
    with pytest.raises(AccessDenied, match="session has ended"):
        store.patient(actors["main_viewer"], pid)
    with pytest.raises(SignInFailed, match="disabled meanwhile"):  # (the dashboard's check of its session, too)
        store.accounts.actor(actors["main_viewer"].account_id, stamp=actors["main_viewer"].credential_stamp)
    assert store.patient(store.accounts.sign_in("main_viewer", PW), pid).name == "Alice Secret"
    assert store.patient(actors["main_prac"], pid).name == "Alice Secret"  # (nobody else's session moved)


def _withdraw_behind_storage(store, pid):
    # Written straight into the database (as a withdrawal from before withdrawals revoked links): only the check
    # of consent in force can refuse the link then.
    with store._sessions() as s, s.begin():
        s.add(Consent(patient_id=pid, kind="clinical", granted=False, date=dt.date.today(), recorded_by="old",
                      created_at=dt.datetime.now(dt.timezone.utc)))


LINK_ENDINGS = {
    "revoked": lambda store, pid, link_id: store.links.revoke(MAIN, pid, link_id),
    "expired": lambda store, pid, link_id: setattr(
        store.links, "clock", lambda: dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)),
    "consent withdrawn": lambda store, pid, link_id: store.consents.record(MAIN, pid, "clinical", granted=False),
    "consent withdrawn, link not revoked": lambda store, pid, link_id: _withdraw_behind_storage(store, pid),
}


@pytest.mark.parametrize("ending", list(LINK_ENDINGS))
def test_a_link_actor_kept_after_the_link_ended_reads_nothing(world, ending):
    store, pid = world["store"], world["pid"]
    token, rec = store.links.issue(world["actors"]["main_prac"], pid)
    link = store.links.open(token)
    readable = [n for n, _ in CALLS if _reads(world, n, link)]
    assert {"patient", "visits", "photos", "photo_bytes", "progress"} <= set(readable)
    LINK_ENDINGS[ending](store, pid, rec.id)
    for name in readable:
        with pytest.raises(NotFound, match="this link is not valid"):
            _call(world, name, link)


def _reads(world, name, actor) -> bool:
    try:
        _call(world, name, actor)
        return True
    except (AccessDenied, NotFound):
        return False


def test_a_one_time_password_session_reads_no_clinical_field(world):
    """Until its one-time password is changed an account holds READ only (Actor.can): the consent history was
    refused, but the records still carried the notes, birth date and upload file names."""
    store, prac, pid = world["store"], world["actors"]["main_prac"], world["pid"]
    store.update_patient(prac, pid, notes="clinical note", birth_date="1980-02-03")
    store.accounts.add(Actor.system(), "temp", role="viewer", password=PW, clinic="MAIN", must_change_password=True)
    temp = store.accounts.sign_in("temp", PW)
    with pytest.raises(AccessDenied, match="one-time password"):
        store.consents.status(temp, pid)
    rec, visits = store.patient(temp, pid), store.visits(temp, pid)
    assert (rec.notes, rec.birth_date) == ("", None)
    assert visits and {ph.filename for v in visits for ph in v.photos} == {"photo"}
    assert store.patient(prac, pid).notes == "clinical note"  # (the practitioner still reads it)


@pytest.mark.parametrize("half", ["decimal", "fraction"])
def test_a_fractional_id_of_any_number_type_names_no_patient(world, half):
    """int(Decimal("1.5")) is 1: an exact fraction passed the scope check of the caller's own patient 1 while the
    insert used the value as given, which PostgreSQL rounds to 2 — another clinic's patient (a security review
    wrote a treatment, a visit and a photo into it this way). No call takes a fraction of any number type."""
    from decimal import Decimal
    from fractions import Fraction

    store, prac, other = world["store"], world["actors"]["main_prac"], world["actors"]["other_prac"]
    theirs = new_patient(store, "Bob Other", actor=other).id
    assert theirs == world["pid"] + 1  # (the id the fraction rounds to)
    bad = Decimal(world["pid"]) + Decimal("0.5") if half == "decimal" else Fraction(2 * world["pid"] + 1, 2)
    for name, call in CALLS:
        with pytest.raises(NotFound):
            call(store, prac, bad, *world["photos"], world["visits"][0])
    assert store.treatments(other, theirs) == [] and store.visits(other, theirs) == []
    assert store.patient(other, theirs).name == "Bob Other"
    # A whole number of any type still names the patient, and what is written carries the checked id.
    import numpy as np

    for whole in (Decimal(world["pid"]), Fraction(world["pid"]), float(world["pid"]), str(world["pid"]),
                  np.int64(world["pid"])):
        assert store.patient(prac, whole).name == "Alice Secret"
        assert store.add_treatment(prac, whole, "2025-01-02").patient_id == world["pid"]
    # Nor does anything that is not plainly a positive whole number that fits a row id.
    for odd in (np.bool_(True), 10**30, 1e30, 2**63, " 1", "1_0", "\u0661", "+1\n", 0, -1):
        with pytest.raises(NotFound):
            store.patient(prac, odd)


def test_another_clinic_never_sees_the_patient_in_lists_search_counts_or_codes(world):
    store, other = world["store"], world["actors"]["other_prac"]
    assert store.list_patients(other) == []
    assert store.list_patients(other, "Alice") == [] and store.list_patients(other, "A-1") == []
    # The same code in another clinic is no conflict (a conflict would tell that the code exists).
    mine = new_patient(store, "Bob Other", code="A-1", actor=other)
    assert [p.name for p in store.list_patients(other)] == ["Bob Other"]
    assert [p.name for p in store.list_patients(world["actors"]["main_viewer"])] == ["Alice Secret"]
    with pytest.raises(NotFound):
        store.patient(world["actors"]["main_prac"], mine.id)
    # Audit: an admin of the other clinic sees none of MAIN's rows.
    rows = store.audit.events(world["actors"]["other_admin"])
    assert rows and all(r.clinic_id == world["actors"]["other_prac"].clinic_id for r in rows)
    assert not any(r.patient_id == world["pid"] for r in rows)


@pytest.mark.parametrize("name", sorted(WRITES))
def test_a_viewer_reads_but_cannot_change_anything(world, name):
    viewer = world["actors"]["main_viewer"]
    with pytest.raises(AccessDenied, match="viewer"):
        _call(world, name, viewer)
    assert world["store"].patient(viewer, world["pid"]).name == "Alice Secret"
    assert len(world["store"].progress(viewer, world["pid"], "chin")) == 2
    with pytest.raises(AccessDenied):
        world["store"].create_patient(viewer, "New")


def test_only_admins_manage_accounts_and_read_the_audit_log(world):
    store, a = world["store"], world["actors"]
    for who in ("main_prac", "main_viewer"):
        with pytest.raises(AccessDenied):
            store.audit.events(a[who])
        with pytest.raises(AccessDenied):
            store.accounts.add(a[who], "sneaky", role="admin", password=PW)
        with pytest.raises(AccessDenied):
            store.accounts.list(a[who])
    # An admin manages only their own clinic.
    with pytest.raises(AccessDenied):
        store.accounts.add(a["main_admin"], "x1", role="viewer", password=PW, clinic="OTHER")
    with pytest.raises(NotFound):
        store.accounts.set_disabled(a["main_admin"], "other_prac")
    assert {r.username for r in store.accounts.list(a["main_admin"])} == {
        "main_admin", "main_prac", "main_viewer"}


# ------------------------------------------------------------------------------------------ patient links
def test_a_link_shows_its_patient_read_only_and_no_other(world):
    store, prac = world["store"], world["actors"]["main_prac"]
    other = new_patient(store, "Yvonne Other", actor=prac)
    token, rec = store.links.issue(prac, world["pid"])
    assert len(token) >= 43  # 32 random bytes = 256 bits, URL-safe base64
    link = store.links.open(token)
    assert link.kind == "link" and link.patient_id == world["pid"]
    assert store.patient(link, world["pid"]).name == "Alice Secret"
    assert [p.id for p in store.list_patients(link)] == [world["pid"]]
    with pytest.raises(NotFound):
        store.patient(link, other.id)
    with pytest.raises(NotFound):
        store.progress(link, other.id, "chin")
    for name in sorted(WRITES):
        with pytest.raises(AccessDenied):
            _call(world, name, link)
    # Nor can it add audit rows that read as the clinic's data leaving (a report or an export).
    n = len(store.audit.events(MAIN))
    for name in ("audit log", "audit log each"):
        with pytest.raises(AccessDenied):
            _call(world, name, link)
    assert len(store.audit.events(MAIN)) == n


def test_random_expired_and_revoked_tokens_are_refused(world):
    store, prac = world["store"], world["actors"]["main_prac"]
    for _ in range(1000):
        with pytest.raises(NotFound, match="not valid"):
            store.links.actor(secrets.token_urlsafe(32))
    with pytest.raises(NotFound):
        store.links.open("")
    token, rec = store.links.issue(prac, world["pid"])
    assert rec.expires_at.astimezone().date() == dt.date.today()  # default: the end of today
    assert store.links.actor(token).patient_id == world["pid"]
    real_clock = store.links.clock
    store.links.clock = lambda: rec.expires_at + dt.timedelta(seconds=1)
    with pytest.raises(NotFound):
        store.links.open(token)
    store.links.clock = real_clock
    store.links.revoke(prac, world["pid"], rec.id)
    with pytest.raises(NotFound):
        store.links.open(token)
    longer, rec2 = store.links.issue(prac, world["pid"], expires_at=dt.date.today() + dt.timedelta(days=7))
    assert rec2.expires_at.date() == dt.date.today() + dt.timedelta(days=7)
    with pytest.raises(OptionError):
        store.links.issue(prac, world["pid"], expires_at=dt.date.today() - dt.timedelta(days=1))


def test_disabling_an_account_revokes_the_links_it_issued_and_no_others(world):
    """A leaver's or a stolen account's patient links stop with it — including a link already open in a browser
    (checked on every page run) — while another practitioner's link and the admin's own stay open; audited; and
    enabling the account again does not bring them back."""
    store, a, pid = world["store"], world["actors"], world["pid"]
    store.accounts.add(Actor.system(), "main_prac2", role="practitioner", password=PW, clinic="MAIN")
    other = store.accounts.sign_in("main_prac2", PW)
    mine, mine_rec = store.links.issue(a["main_prac"], pid)
    later, _ = store.links.issue(a["main_prac"], pid, expires_at=dt.date.today() + dt.timedelta(days=30))
    theirs, _ = store.links.issue(other, pid)
    opened = store.links.open(mine)  # in a patient's browser
    assert opened.patient_id == pid
    store.accounts.set_disabled(a["main_admin"], "main_prac")
    for token in (mine, later):
        with pytest.raises(NotFound, match="not valid"):
            store.links.open(token)
        with pytest.raises(NotFound, match="not valid"):
            store.links.actor(token)
    assert store.links.actor(theirs).patient_id == pid
    revoked = [e for e in store.audit.events(a["main_admin"], action="link_revoked")]
    assert len(revoked) == 2 and all("main_prac was disabled" in e.detail and e.patient_id == pid for e in revoked)
    listed = {r.id: r for r in store.links.list(a["main_admin"], pid)}
    assert listed[mine_rec.id].revoked_at is not None
    store.accounts.set_disabled(a["main_admin"], "main_prac", False)
    with pytest.raises(NotFound):
        store.links.open(mine)
    assert store.links.actor(theirs).patient_id == pid


@pytest.mark.parametrize("ending", ["reset", "sso-only"])
def test_ending_a_stolen_password_can_revoke_the_links_it_issued(world, ending):
    """A thief with a practitioner's password issues links; the clinic resets the password (or makes the account
    single sign-on only) instead of disabling it. Without ``revoke_links`` (a forgotten password) the links go on;
    with it they stop, the account's only, audited (a review: they outlived the reset)."""
    store, a, pid = world["store"], world["actors"], world["pid"]
    store.accounts.add(Actor.system(), "main_prac2", role="practitioner", password=PW, clinic="MAIN",
                       email="prac2@clinic.example")
    victim = store.accounts.sign_in("main_prac2", PW)
    stolen, _ = store.links.issue(victim, pid)
    theirs, _ = store.links.issue(a["main_prac"], pid)
    # only an admin of the clinic may count or revoke them: not signed in, a viewer, a practitioner, another
    # clinic's admin (who finds no such account), nor hostile text for a name
    for who, error in ((None, AccessDenied), (a["main_viewer"], AccessDenied), (a["main_prac"], AccessDenied),
                       (a["other_admin"], NotFound)):
        with pytest.raises(error):
            store.accounts.open_links(who, "main_prac2")
        with pytest.raises(error):
            store.accounts.reset_password(who, "main_prac2", PW + "y", revoke_links=True)
    with pytest.raises(NotFound) as info:
        store.accounts.open_links(a["main_admin"], "main_prac2' OR '1'='1\n<b>")
    assert "<b>" not in str(info.value) and "\n" not in str(info.value)
    assert store.links.actor(stolen).patient_id == pid  # (nothing was revoked by the refused calls)
    assert store.accounts.open_links(a["main_admin"], "main_prac2") == 1
    end = {"reset": lambda revoke: store.accounts.reset_password(a["main_admin"], "main_prac2", PW + "x",
                                                                 revoke_links=revoke),
           "sso-only": lambda revoke: store.accounts.remove_password(a["main_admin"], "main_prac2",
                                                                     revoke_links=revoke)}[ending]
    end(False)  # a forgotten password: the links stay
    assert store.links.actor(stolen).patient_id == pid
    if ending == "sso-only":
        store.accounts.reset_password(a["main_admin"], "main_prac2", PW)
    end(True)
    with pytest.raises(NotFound, match="not valid"):
        store.links.actor(stolen)
    assert store.links.actor(theirs).patient_id == pid
    assert store.accounts.open_links(a["main_admin"], "main_prac2") == 0
    revoked = store.audit.events(a["main_admin"], action="link_revoked")
    assert len(revoked) == 1 and "main_prac2" in revoked[0].detail


def test_withdrawing_clinical_consent_revokes_the_patients_open_links(world):
    """A link shows the patient's photos: once consent to clinical photography is withdrawn, every link of that
    patient stops — also one already open in a browser — while another patient's link stays open; audited. A
    withdrawal of marketing consent, or a clinical withdrawal dated before a later consent (so not in force),
    revokes nothing; consenting again does not bring the revoked links back, and a new link can be issued."""
    store, a, pid = world["store"], world["actors"], world["pid"]
    prac = a["main_prac"]
    other = new_patient(store, "Bob Other", code="B-2", actor=prac)
    today = store.links.issue(prac, pid)[0]
    later = store.links.issue(prac, pid, expires_at=dt.date.today() + dt.timedelta(days=30))[0]
    theirs = store.links.issue(prac, other.id)[0]
    assert store.links.open(today).patient_id == pid  # open in the patient's browser
    store.consents.record(prac, pid, "marketing", granted=False)
    store.consents.record(prac, pid, "clinical", granted=False, date=dt.date(2019, 6, 1))  # before the 2020 consent
    assert store.consents.status(prac, pid).clinical_granted
    assert store.links.actor(today).patient_id == pid and store.links.open(later).patient_id == pid
    assert not store.audit.events(a["main_admin"], action="link_revoked")

    store.consents.record(prac, pid, "clinical", granted=False)
    for token in (today, later):
        with pytest.raises(NotFound, match="not valid"):
            store.links.actor(token)
        with pytest.raises(NotFound, match="not valid"):
            store.links.open(token)
    assert store.links.actor(theirs).patient_id == other.id
    revoked = store.audit.events(a["main_admin"], action="link_revoked")
    assert len(revoked) == 2 and all(e.patient_id == pid and "clinical photography withdrawn" in e.detail
                                     for e in revoked)
    assert all(r.revoked_at is not None for r in store.links.list(prac, pid))

    with pytest.raises(ConsentRequired, match="withdrawn consent"):  # no new link while it is withdrawn
        store.links.issue(prac, pid)
    store.consents.record(prac, pid, "clinical", granted=True)  # the same day, recorded last: in force
    with pytest.raises(NotFound):
        store.links.open(later)
    fresh = store.links.issue(prac, pid)[0]
    assert store.links.open(fresh).patient_id == pid


def test_no_link_opens_while_consent_to_photography_is_withdrawn(world):
    """Also a link that the withdrawal did not revoke: one issued at the same moment, or a withdrawal recorded
    before withdrawals revoked links (here written straight into the database)."""
    store, prac, pid = world["store"], world["actors"]["main_prac"], world["pid"]
    token = store.links.issue(prac, pid)[0]
    with store._sessions() as s, s.begin():
        s.add(Consent(patient_id=pid, kind="clinical", granted=False, date=dt.date.today(), recorded_by="old",
                      created_at=dt.datetime.now(dt.timezone.utc)))
    for use in (store.links.open, store.links.actor):
        with pytest.raises(NotFound, match="not valid"):
            use(token)
    store.consents.record(prac, pid, "clinical", granted=True)
    assert store.links.open(token).patient_id == pid  # (never revoked: it opens again with the consent)


def test_link_tokens_are_stored_only_as_a_hash(world, backend):
    store, prac = world["store"], world["actors"]["main_prac"]
    token, _ = store.links.issue(prac, world["pid"])
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM patient_links")).all()
    assert rows and all(token not in str(tuple(r)) for r in rows)
    if backend[1] is None:  # SQLite: not in the database file either
        store.engine.dispose()
        assert token.encode() not in (backend[0] / "relief.db").read_bytes()


# ---------------------------------------------------------------------------------------------- sign-in
def test_passwords_are_argon2id_hashes_and_at_least_12_characters(world, backend):
    store = world["store"]
    with store.engine.connect() as conn:
        hashes = [r[0] for r in conn.execute(text("SELECT password_hash FROM accounts"))]
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    assert all(PW not in h for h in hashes)
    for short in ("", "short", "x" * 11):
        with pytest.raises(OptionError, match="12 characters"):
            store.accounts.add(Actor.system(), "shorty", role="viewer", password=short, clinic="MAIN")


def test_sign_in_failures_never_tell_whether_the_user_exists(world):
    store = world["store"]
    with pytest.raises(SignInFailed) as unknown:
        store.accounts.sign_in("nobody_here", PW)
    with pytest.raises(SignInFailed) as wrong:
        store.accounts.sign_in("main_prac", "wrong password!!")
    store.accounts.set_disabled(Actor.system(), "main_viewer")
    with pytest.raises(SignInFailed) as disabled:
        store.accounts.sign_in("main_viewer", PW)
    assert str(unknown.value) == str(wrong.value) == str(disabled.value)


def test_brute_force_is_slowed_then_locked_for_15_minutes(world):
    store = world["store"]
    now = [dt.datetime(2030, 1, 1, 12, tzinfo=dt.timezone.utc)]
    store.accounts.clock = lambda: now[0]

    def attempt(pw, *, wait_s=0.0):
        now[0] += dt.timedelta(seconds=wait_s)
        return store.accounts.sign_in("main_prac", pw)

    for _ in range(accounts_mod.FREE_FAILURES):  # the first failures cost nothing
        with pytest.raises(SignInFailed):
            attempt("wrong password 1")
    with pytest.raises(SignInFailed):
        attempt("wrong password 1")  # the 3rd: from now on each attempt must wait (2 s here)
    with pytest.raises(SignInFailed):
        attempt(PW, wait_s=1)  # even the right password is refused inside the wait
    assert attempt(PW, wait_s=2).name == "main_prac"  # after the wait it works, and the count starts again
    for i in range(accounts_mod.LOCK_AFTER):
        with pytest.raises(SignInFailed):
            attempt("wrong password 2", wait_s=60)  # waits out every throttle
    with pytest.raises(SignInFailed):
        attempt(PW, wait_s=14 * 60)  # locked: 15 minutes
    assert attempt(PW, wait_s=2 * 60).name == "main_prac"
    fails = [e for e in store.audit.events(Actor.system(), action="sign_in") if e.outcome == "failed"]
    assert len(fails) >= accounts_mod.LOCK_AFTER + 4


def test_guessing_the_current_password_in_an_open_session_is_slowed_locked_and_audited(world):
    """Changing the password checks the current one: a session left open let its holder test guesses at full
    speed, unaudited (a security review: 25 guesses in 5 s, then the right one accepted). The guesses now count
    towards the sign-in's waits and lock-out, and each is in the audit log."""
    store, prac = world["store"], world["actors"]["main_prac"]
    now = [dt.datetime(2030, 1, 1, 12, tzinfo=dt.timezone.utc)]
    store.accounts.clock = lambda: now[0]
    new = "another good password 3"
    for i in range(accounts_mod.LOCK_AFTER):
        now[0] += dt.timedelta(seconds=60)  # waits out every throttle
        with pytest.raises(SignInFailed, match="not right"):
            store.accounts.change_password(prac, f"guess {i}", new)
    now[0] += dt.timedelta(minutes=accounts_mod.LOCK_MINUTES - 1)
    with pytest.raises(SignInFailed, match="wait"):
        store.accounts.change_password(prac, PW, new)  # locked: even the right password waits
    with pytest.raises(SignInFailed):
        store.accounts.sign_in("main_prac", PW)  # ... and so does signing in
    fails = [e for e in store.audit.events(Actor.system(), action="password_changed") if e.outcome == "failed"]
    assert len(fails) == accounts_mod.LOCK_AFTER + 1 and all(e.account == "main_prac" for e in fails)
    now[0] += dt.timedelta(minutes=2)
    changed = store.accounts.change_password(prac, PW, new)
    assert changed.name == "main_prac" and store.accounts.sign_in("main_prac", new).name == "main_prac"


def test_a_password_change_survives_another_write_while_the_new_password_is_hashed(world, monkeypatch):
    """The new hash was computed inside a transaction that had read first: on SQLite another account's write in
    that tenth of a second failed the change with "database is locked" (a traceback on the page), and the attempt
    still counted as a wrong password (a review)."""
    store, prac, viewer = world["store"], world["actors"]["main_prac"], world["actors"]["main_viewer"]
    real = accounts_mod._hasher

    class Busy:  # another account writes while the new password is hashed
        def hash(self, password):
            store.accounts.sign_out(viewer)
            return real.hash(password)

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(accounts_mod, "_hasher", Busy())
    for k in range(4):
        pw_from, pw_to = (PW, "another good password 4") if k % 2 == 0 else ("another good password 4", PW)
        prac = store.accounts.change_password(prac, pw_from, pw_to)
    assert store.accounts.sign_in("main_prac", PW).name == "main_prac"


def test_own_patient_id_with_another_patients_photo_ids_reaches_nothing(world):
    """Every lookup below the patient check must also be filtered by the patient: a caller passes a patient it may
    see (its own, or another of its clinic) with photo or link ids of a patient it may not. (A test audit found
    that dropping these filters — stored comparisons, treatments, links — failed no test.)"""
    store, a = world["store"], world["actors"]
    pa, pb = world["photos"]
    store.add_treatment(a["main_prac"], world["pid"], "2025-01-01", notes="secret treatment")
    token, link = store.links.issue(a["main_prac"], world["pid"])
    outsider = a["other_prac"]
    own = new_patient(store, "Outsider's own", actor=outsider).id
    neighbour = new_patient(store, "Same clinic, other patient", actor=a["main_prac"]).id
    for actor, pid in ((outsider, own), (a["main_prac"], neighbour)):
        with pytest.raises(NotFound):
            store.get_comparison(actor, pid, pa, pb, V)  # the comparison is stored: only the filter stops it
        with pytest.raises(NotFound):
            store.comparison_for(actor, pid, pa, pb, V, lambda: pytest.fail("computed for another patient"))
        with pytest.raises(NotFound):
            store.get_measurement(actor, pid, pa, V)
        assert store.treatments(actor, pid) == []
        assert store.links.list(actor, pid) == []
        with pytest.raises(NotFound):
            store.links.revoke(actor, pid, link.id)
    assert store.links.actor(token).patient_id == world["pid"]  # the link was not revoked
    assert [t.notes for t in store.treatments(a["main_prac"], world["pid"])] == ["secret treatment"]


def test_a_link_lasts_at_most_90_days_and_consent_is_not_dated_in_the_future(world):
    # the README and the page promise at most 90 days; storage allowed 366 (a review)
    store, prac = world["store"], world["actors"]["main_prac"]
    for days in (91, 400):
        with pytest.raises(OptionError, match="at most 90 days"):
            store.links.issue(prac, world["pid"], expires_at=dt.date.today() + dt.timedelta(days=days))
    store.links.issue(prac, world["pid"], expires_at=dt.date.today() + dt.timedelta(days=90))
    with pytest.raises(OptionError, match="future"):
        store.consents.record(prac, world["pid"], "marketing", granted=True,
                              date=dt.date.today() + dt.timedelta(days=30))


def test_a_link_to_the_90th_day_is_accepted_across_a_change_of_summer_time(world, monkeypatch):
    # end of today (summer offset) + 90 days fell an hour short of the 90th day's end in winter time (a review)
    store, prac = world["store"], world["actors"]["main_prac"]
    with local_time_zone("Europe/Berlin"):
        monkeypatch.setattr(store.links, "clock", lambda: dt.datetime(2025, 9, 15, 10, 0, tzinfo=dt.timezone.utc))
        store.links.issue(prac, world["pid"], expires_at=dt.date(2025, 12, 14))  # the 90th day, in winter time
        with pytest.raises(OptionError, match="at most 90 days"):
            store.links.issue(prac, world["pid"], expires_at=dt.date(2025, 12, 15))


def test_an_account_that_must_change_its_password_can_only_read(world):
    store, system = world["store"], Actor.system()
    store.accounts.add(system, "fresh_prac", role="practitioner", password=PW, clinic="MAIN",
                       must_change_password=True)
    fresh = store.accounts.sign_in("fresh_prac", PW)
    assert fresh.must_change_password and fresh.can("read") and not fresh.can("write")
    with pytest.raises(AccessDenied):
        store.update_patient(fresh, world["pid"], notes="changed before choosing a password")


def test_wrong_passwords_sent_at_the_same_moment_get_no_more_checks_than_one_after_another(world, monkeypatch):
    """Read the count, check the password, write the count back: 11 simultaneous wrong passwords all got checked
    and left a count of 1 (PostgreSQL), or failed with "database is locked" and no audit row (SQLite). The
    attempt is now counted first, atomically: a burst gets at most FREE_FAILURES + 1 checks, then waits."""
    import threading

    store = world["store"]
    real_verify, checked = accounts_mod._verify, []

    def slow_verify(hashed, password):  # a real check takes ~0.1 s: the window the burst used
        if hashed != accounts_mod._DUMMY_HASH:
            checked.append(password)
        time.sleep(0.05)
        return real_verify(hashed, password)

    monkeypatch.setattr(accounts_mod, "_verify", slow_verify)
    start, outcomes = threading.Barrier(12), []

    def attempt(k):
        start.wait()
        try:
            store.accounts.sign_in("main_prac", f"wrong password {k}")
            outcomes.append("signed in")
        except SignInFailed:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt, args=(k,)) for k in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == ["refused"] * 12
    assert len(checked) <= accounts_mod.FREE_FAILURES + 1, checked
    fails = [e for e in store.audit.events(Actor.system(), action="sign_in") if e.outcome == "failed"]
    assert len(fails) == 12  # every attempt audited: checked ones as wrong passwords, the rest as throttled
    assert sum(e.detail.startswith("wrong password") for e in fails) == len(checked)
    with pytest.raises(SignInFailed):  # and the account waits now, even for the right password
        store.accounts.sign_in("main_prac", PW)


def test_a_disabled_account_stays_refused_and_a_right_password_does_not_clear_its_count(world):
    store, a = world["store"], world["actors"]
    with pytest.raises(SignInFailed):
        store.accounts.sign_in("main_prac", "wrong password 1")
    store.accounts.set_disabled(a["main_admin"], "main_prac")
    with pytest.raises(SignInFailed):
        store.accounts.sign_in("main_prac", PW)
    with store._sessions() as s:
        acc = s.scalar(select(Account).where(Account.username == "main_prac"))
        assert acc.failed_attempts == 1 and acc.locked_until is None


def test_a_password_typed_as_the_user_name_is_not_logged(world):
    store = world["store"]
    with pytest.raises(SignInFailed):
        store.accounts.sign_in("Tr0ub4dor&3-horse-staple", "whatever")
    [event] = [e for e in store.audit.events(Actor.system(), action="sign_in") if e.outcome == "failed"]
    assert event.account == "(unknown user name of 24 characters)" and event.detail == "unknown user name"
    assert "Tr0" not in repr(store.audit.events(Actor.system()))


def test_disabling_an_account_ends_its_sessions(world):
    store, a = world["store"], world["actors"]
    assert store.accounts.actor(a["main_prac"].account_id).name == "main_prac"
    store.accounts.set_disabled(a["main_admin"], "main_prac")
    with pytest.raises(SignInFailed):
        store.accounts.actor(a["main_prac"].account_id)
    with pytest.raises(OptionError):
        store.accounts.set_disabled(a["main_admin"], "main_admin")


def test_single_sign_on_maps_a_verified_email_to_exactly_one_enabled_account(world):
    store, system = world["store"], Actor.system()
    store.accounts.add(system, "sso_prac", role="practitioner", password=None, clinic="MAIN",
                       email="Dr.Sso@Clinic.example")
    store.accounts.add(system, "sso_off", role="viewer", password=None, clinic="MAIN", email="off@clinic.example")
    store.accounts.set_disabled(system, "sso_off")
    store.accounts.add(system, "twin_a", role="viewer", password=None, clinic="OTHER", email="twin@clinic.example")
    # A second account with that address is refused (another clinic's admin could otherwise lock the first out
    # of single sign-on) ...
    other_admin = store.accounts.add(system, "other_admin2", role="admin", password=PW, clinic="OTHER")
    with pytest.raises(Conflict, match="already given to an account"):
        store.accounts.add(store.accounts.sign_in("other_admin2", PW), "twin_b", role="viewer", password=None,
                           email="TWIN@clinic.example")
    assert other_admin.username == "other_admin2"
    # ... and one that a database from before that rule holds twice still signs in nobody.
    with store._sessions() as s, s.begin():
        twin = s.scalar(select(Account).where(Account.username == "twin_a"))
        s.add(Account(username="twin_b", clinic_id=twin.clinic_id, role="viewer", email="twin@clinic.example",
                      disabled=False, must_change_password=False, failed_attempts=0, created_at=twin.created_at))

    actor = store.accounts.sign_in_sso("dr.sso@CLINIC.example", verified=True)  # case does not matter
    assert (actor.name, actor.role, actor.clinic_code) == ("sso_prac", "practitioner", "MAIN")
    assert [p.name for p in store.list_patients(actor)] == ["Alice Secret"]
    assert store.accounts.actor(actor.account_id, single_sign_on=True) == actor

    refusals = {}
    for label, email, verified in (("unverified", "dr.sso@clinic.example", False), ("unknown", "x@y.example", True),
                                   ("disabled", "off@clinic.example", True),
                                   ("two accounts", "twin@clinic.example", True),
                                   ("empty", "  ", True)):
        with pytest.raises(SignInFailed) as err:
            store.accounts.sign_in_sso(email, verified=verified)
        refusals[label] = str(err.value)
    with pytest.raises(SignInFailed) as wrong_password:
        store.accounts.sign_in("main_prac", "wrong password!!")
    assert set(refusals.values()) == {str(wrong_password.value)}  # the same one line as a wrong password

    rows = [e for e in store.audit.events(system, action="sign_in") if "single sign-on" in e.detail]
    assert [(e.account, e.outcome) for e in rows] == [
        ("", "failed"), ("twin@clinic.example", "failed"), ("sso_off", "failed"), ("x@y.example", "failed"),
        ("dr.sso@clinic.example", "failed"), ("sso_prac", "ok")]  # newest first; one row per attempt


def test_single_sign_on_skips_a_pending_password_change_and_bad_emails_are_refused(world):
    store, system = world["store"], Actor.system()
    store.accounts.add(system, "temp_pw", role="practitioner", password=PW, clinic="MAIN", email="t@clinic.example",
                       must_change_password=True)
    assert store.accounts.sign_in("temp_pw", PW).must_change_password  # by password: must change it first
    actor = store.accounts.sign_in_sso("t@clinic.example", verified=True)
    assert not actor.must_change_password and actor.can("write")
    assert store.accounts.actor(actor.account_id).must_change_password  # a password session still must
    for bad in ("no-at-sign", "two@@signs", "sp ace@x.example"):
        with pytest.raises(OptionError, match="e-mail"):
            store.accounts.add(system, "bad_mail", role="viewer", password=None, clinic="MAIN", email=bad)


def test_a_single_sign_on_only_account_cannot_be_entered_with_a_password(world):
    """Two-factor sign-in through the identity provider holds only if no password gets past it: an admin can
    delete an account's password (audited; its password sessions end; single sign-on still signs it in), the
    password it had is then refused like a wrong one, and an account can be left without a way in neither at
    creation nor later (no e-mail), nor by an admin for themselves, another clinic or a non-admin."""
    store, a, system = world["store"], world["actors"], Actor.system()
    admin = a["main_admin"]
    store.accounts.add(admin, "two_factor", role="practitioner", password=PW, email="tf@clinic.example")
    before = store.accounts.sign_in("two_factor", PW)
    rec = store.accounts.remove_password(admin, "two_factor")
    assert not rec.has_password and not rec.must_change_password
    with pytest.raises(SignInFailed) as err:
        store.accounts.sign_in("two_factor", PW)
    assert str(err.value) == accounts_mod.SIGN_IN_FAILED
    with pytest.raises(SignInFailed, match="sign in again"):  # the password session has ended
        store.accounts.actor(before.account_id, stamp=before.credential_stamp)
    assert store.accounts.sign_in_sso("TF@clinic.example", verified=True).name == "two_factor"
    assert [e.detail for e in store.audit.events(admin, action="password_removed")] == [
        "two_factor: single sign-on only"]
    store.accounts.remove_password(admin, "two_factor")  # again: nothing changes, no second row
    assert len(store.audit.events(admin, action="password_removed")) == 1

    with pytest.raises(OptionError, match="e-mail"):
        store.accounts.remove_password(admin, "main_prac")  # no e-mail: nobody could sign in to it
    with pytest.raises(OptionError, match="e-mail"):
        store.accounts.add(admin, "nobody_in", role="viewer", password=None)
    with pytest.raises(OptionError, match="your own"):
        store.accounts.remove_password(admin, "main_admin")
    with pytest.raises(NotFound):
        store.accounts.remove_password(a["other_admin"], "two_factor")
    for who in ("main_prac", "main_viewer"):
        with pytest.raises(AccessDenied):
            store.accounts.remove_password(a[who], "two_factor")
    link = store.links.open(store.links.issue(a["main_prac"], world["pid"])[0])
    for nobody in (None, link):  # signed out, or a patient's link
        with pytest.raises(AccessDenied):
            store.accounts.remove_password(nobody, "two_factor")
    with pytest.raises(NotFound) as err:  # hostile text: a name that is no account, said in one plain line
        store.accounts.remove_password(admin, "x' OR 1=1; --<script>\n")
    assert "\n" not in str(err.value).strip()
    assert store.accounts.sign_in("main_prac", PW).name == "main_prac"  # untouched

    store.accounts.reset_password(admin, "two_factor", "a password again 12")  # the way back
    assert store.accounts.sign_in("two_factor", "a password again 12").must_change_password


def test_a_password_tried_on_a_single_sign_on_only_account_is_audited_by_name(world):
    store, admin = world["store"], world["actors"]["main_admin"]
    store.accounts.add(admin, "sso_person", role="viewer", password=None, email="sso.person@clinic.example")
    with pytest.raises(SignInFailed):
        store.accounts.sign_in("sso_person", PW)
    (row,) = [e for e in store.audit.events(admin, action="sign_in") if e.account == "sso_person"]
    assert (row.outcome, row.detail) == ("failed", "no password: single sign-on only")


def test_a_password_deleted_while_it_is_being_checked_opens_no_session(world, monkeypatch):
    """The password is checked outside the transactions (Argon2 takes a while): deleted (or reset) meanwhile, the
    sign-in must fail — a session begun with it would carry the new credential's stamp and outlive the change."""
    store, admin = world["store"], world["actors"]["main_admin"]
    store.accounts.add(admin, "racer", role="viewer", password=PW, email="racer@clinic.example")
    real = accounts_mod._verify

    def verify_while_the_admin_clicks(hashed, password):
        ok = real(hashed, password)
        store.accounts.remove_password(admin, "racer")
        return ok

    monkeypatch.setattr(accounts_mod, "_verify", verify_while_the_admin_clicks)
    with pytest.raises(SignInFailed):
        store.accounts.sign_in("racer", PW)
    assert [e.detail for e in store.audit.events(admin, action="sign_in") if e.account == "racer"] == [
        "the password changed during the sign-in"]


def test_first_admin_gets_the_configured_or_a_one_time_password(tmp_path):
    with open_store(tmp_path / "a") as s:
        one_time = s.accounts.ensure_first_admin()
        assert one_time and len(one_time) >= 12
        assert s.accounts.ensure_first_admin() is None  # only once
        admin = s.accounts.sign_in("admin", one_time)
        assert admin.must_change_password and admin.clinic_code == "MAIN" and admin.role == "admin"
        with pytest.raises(AccessDenied, match="one-time password"):
            s.create_patient(admin, "Too early")
        admin = s.accounts.change_password(admin, one_time, PW)
        assert not admin.must_change_password
        assert s.create_patient(admin, "Now").name == "Now"
    with open_store(tmp_path / "b") as s:
        assert s.accounts.ensure_first_admin(PW) is None
        assert not s.accounts.sign_in("admin", PW).must_change_password


# --------------------------------------------------------------------------------------------- consent
def test_no_photo_without_clinical_consent(world):
    store, prac = world["store"], world["actors"]["main_prac"]
    p = new_patient(store, "No Consent", actor=prac, consent=False)
    photo = [NewPhoto(png(5), "n.png", "chin")]
    files_before = sorted(store.blobs)
    with pytest.raises(ConsentRequired, match="consent"):
        store.save_visit(prac, p.id, date="2025-01-01", photos=photo)
    assert store.visits(prac, p.id) == [] and sorted(store.blobs) == files_before  # nothing, not even a file
    store.consents.record(prac, p.id, "clinical", granted=True, date=dt.date(2025, 1, 1))
    store.save_visit(prac, p.id, date="2025-01-01", photos=photo)
    with pytest.raises(ConsentRequired, match="the visit of 31 Dec 2024 is before the consent to clinical "
                                              r"photography \(01 Jan 2025\)"):  # photos taken before consent
        store.save_visit(prac, p.id, date="2024-12-31", photos=[NewPhoto(png(7), "early.png", "chin")])
    store.consents.record(prac, p.id, "clinical", granted=False, date=dt.date(2025, 1, 20))
    with pytest.raises(ConsentRequired, match="withdrew consent to clinical photography on 20 Jan 2025"):
        store.save_visit(prac, p.id, date="2025-02-01", photos=[NewPhoto(png(6), "m.png", "chin")])
    status = store.consents.status(prac, p.id)
    assert not status.clinical_granted and [c.granted for c in status.history] == [True, False]
    assert status.clinical.recorded_by == "main_prac"
    # Marketing consent is separate and optional.
    assert status.marketing is None and not status.marketing_granted


def test_the_decision_in_force_is_the_latest_by_date_not_the_last_typed_in(world):
    """A paper consent of January filed after a withdrawal of March put the patient back in force: photos could be
    saved again and the patient joined de-identified exports (a review). The latest decision by date counts."""
    from relief_app.reportdata import gather_export

    store, prac = world["store"], world["actors"]["main_prac"]
    p = new_patient(store, "Late Filing", actor=prac, consent=False)
    for kind in ("clinical", "marketing"):
        store.consents.record(prac, p.id, kind, granted=False, date=dt.date(2025, 3, 1))
        status = store.consents.record(prac, p.id, kind, granted=True, date=dt.date(2025, 1, 10))  # filed late
    assert not status.clinical_granted and not status.marketing_granted
    assert status.clinical.date == dt.date(2025, 3, 1)
    assert [(c.date.month, c.granted) for c in status.history if c.kind == "clinical"] == [(1, True), (3, False)]
    with pytest.raises(ConsentRequired, match="withdrew consent to clinical photography on 01 Mar 2025"):
        store.save_visit(prac, p.id, date="2025-04-01", photos=[NewPhoto(png(8), "late.png", "chin")])
    assert p.id not in [x.patient.id for x in gather_export(store, prac, teaching=True).patients]
    # the same day: the decision recorded last counts; a later date puts a new consent in force
    assert store.consents.record(prac, p.id, "clinical", granted=True, date=dt.date(2025, 3, 1)).clinical_granted
    assert not store.consents.record(prac, p.id, "clinical", granted=False, date=dt.date(2025, 3, 1)).clinical_granted
    assert store.consents.record(prac, p.id, "clinical", granted=True, date=dt.date(2025, 3, 5)).clinical_granted
    store.save_visit(prac, p.id, date="2025-04-01", photos=[NewPhoto(png(8), "late.png", "chin")])


def test_a_patient_who_withdrew_clinical_consent_leaves_de_identified_exports(world):
    """Consent to teaching kept but consent to clinical photography withdrawn: the numbers come from photos the
    patient no longer wants taken, so they stay in the clinic (a review found them in the teaching export)."""
    from relief_app.reportdata import gather_export

    store, prac = world["store"], world["actors"]["main_prac"]
    p = new_patient(store, "Changed Mind", actor=prac)
    store.consents.record(prac, p.id, "marketing", granted=True, date=dt.date(2020, 1, 2))
    assert p.id in [x.patient.id for x in gather_export(store, prac, teaching=True).patients]
    store.consents.record(prac, p.id, "clinical", granted=False)
    assert store.consents.status(prac, p.id).marketing_granted  # (teaching consent itself unchanged)
    assert p.id not in [x.patient.id for x in gather_export(store, prac, teaching=True).patients]
    assert p.id in [x.patient.id for x in gather_export(store, prac).patients]  # (the clinic's own export keeps it)


def test_a_consent_signed_before_an_earlier_visit_can_be_recorded_after_a_later_one(world):
    """Consent entered with today's date refused a visit of last week; the refusal says to record the day the patient
    actually consented, and that must then let the visit be saved (a review of the by-date rule)."""
    store, prac = world["store"], world["actors"]["main_prac"]
    p = new_patient(store, "Paper First", actor=prac, consent=False)
    store.consents.record(prac, p.id, "clinical", granted=True, date=dt.date(2025, 3, 20))
    with pytest.raises(ConsentRequired, match=r"is before the consent to clinical photography \(20 Mar 2025\)"):
        store.save_visit(prac, p.id, date="2025-03-10", photos=[NewPhoto(png(9), "p.png", "chin")])
    status = store.consents.record(prac, p.id, "clinical", granted=True, date=dt.date(2025, 3, 1))
    assert status.clinical.date == dt.date(2025, 3, 20)  # the later decision stays in force
    store.save_visit(prac, p.id, date="2025-03-10", photos=[NewPhoto(png(9), "p.png", "chin")])
    # a withdrawal between the consent and the visit's day still refuses that day's photos
    store.consents.record(prac, p.id, "clinical", granted=False, date=dt.date(2025, 3, 5))
    with pytest.raises(ConsentRequired, match="on 06 Mar 2025 the patient's consent to clinical photography was "
                                              "withdrawn"):
        store.save_visit(prac, p.id, date="2025-03-06", photos=[NewPhoto(png(10), "q.png", "chin")])
    store.save_visit(prac, p.id, date="2025-03-21", photos=[NewPhoto(png(10), "q.png", "chin")])


# ------------------------------------------------------------------------------------------------ audit
def test_every_action_leaves_exactly_one_audit_row(world):
    store, a = world["store"], world["actors"]
    prac, admin = a["main_prac"], a["main_admin"]
    system = Actor.system()

    def one_row(action, fn):
        before = {e.id for e in store.audit.events(system, limit=100000)}
        out = fn()
        new = [e for e in store.audit.events(system, limit=100000) if e.id not in before]
        assert [e.action for e in new] == [action], (action, new)
        return out, new[0]

    _, e = one_row("sign_in", lambda: store.accounts.sign_in("main_prac", PW))
    assert e.account == "main_prac" and e.outcome == "ok"
    _, e = one_row("sign_in", lambda: pytest.raises(SignInFailed, store.accounts.sign_in, "main_prac", "nope" * 4))
    assert e.outcome == "failed"
    pid = world["pid"]
    _, e = one_row("view_patient", lambda: store.open_patient(prac, pid))
    assert e.patient_id == pid and e.clinic_id == prac.clinic_id
    p2, _ = one_row("create_patient", lambda: store.create_patient(prac, "Carl"))
    one_row("edit_patient", lambda: store.update_patient(prac, p2.id, notes="n"))
    one_row("consent", lambda: store.consents.record(prac, p2.id, "clinical", granted=True, date=dt.date(2025, 1, 1)))
    one_row("add_treatment", lambda: store.add_treatment(prac, p2.id, "2025-01-01"))
    v, _ = one_row("upload", lambda: store.save_visit(prac, p2.id, date="2025-01-01", photos=[
        NewPhoto(png(11), "x.png", "chin", measurement=NewMeasurement(V, roughness_index=3.0))]))
    v2 = store.save_visit(prac, p2.id, date="2025-02-01", photos=[
        NewPhoto(png(12), "y.png", "chin", measurement=NewMeasurement(V, roughness_index=2.0))])
    one_row("compare", lambda: store.comparison_for(prac, p2.id, v.photos[0].id, v2.photos[0].id, V, lambda: dict(
        change_pct=-10, ci_low=-12, ci_high=-8, mdc_pct=3, significant=True)))
    one_row("export", lambda: store.audit.log(prac, "export", patient_id=p2.id))
    (token, link), _ = one_row("link_issued", lambda: store.links.issue(prac, p2.id))
    one_row("link_used", lambda: store.links.open(token))
    one_row("link_revoked", lambda: store.links.revoke(prac, p2.id, link.id))
    one_row("link_used", lambda: pytest.raises(NotFound, store.links.open, token))
    one_row("delete_visit", lambda: store.delete_visit(prac, p2.id, v2.id))
    one_row("delete_patient", lambda: store.delete_patient(prac, p2.id))
    one_row("account_created", lambda: store.accounts.add(admin, "newbie", role="viewer", password=PW))
    one_row("password_reset", lambda: store.accounts.reset_password(admin, "newbie", PW + "!"))
    one_row("account_disabled", lambda: store.accounts.set_disabled(admin, "newbie"))
    one_row("sign_out", lambda: store.accounts.sign_out(prac))
    # Reads that are not "viewing a patient" leave no row (the page audits the view once).
    one_row_none = {e.id for e in store.audit.events(system, limit=100000)}
    store.progress(prac, pid, "chin"), store.visits(prac, pid), store.list_patients(prac)
    assert {e.id for e in store.audit.events(system, limit=100000)} == one_row_none


def test_the_audit_log_is_append_only_in_the_database(world):
    store = world["store"]
    assert store.audit.events(Actor.system())
    for sql in ("UPDATE audit_events SET outcome = 'ok'", "DELETE FROM audit_events"):
        with pytest.raises(Exception, match="append-only"):
            with store.engine.begin() as conn:
                conn.execute(text(sql))
    assert not [n for n in dir(store.audit) if re.search(r"delete|update|edit|remove|clear", n)]


# --------------------------------------------------------------------------------------------- the CLI
def _cli(data_dir, *args, stdin=""):
    return subprocess.run([sys.executable, "-m", "storage", "--data-dir", str(data_dir), *args], cwd=REPO,
                          input=stdin, capture_output=True, text=True, timeout=120)


def test_users_cli_adds_lists_disables_resets_and_prints_the_audit(tmp_path):
    d = tmp_path / "data"
    # a clinic code that does not exist yet is a typo unless said otherwise: nothing is created
    r = _cli(d, "users", "add", "carol", "--role", "practitioner", "--clinic", "north", "--password-stdin",
             stdin=PW + "\n")
    assert r.returncode == 2 and "no clinic NORTH; check the code, or add --new-clinic" in r.stderr
    assert "carol" not in _cli(d, "users", "list").stdout
    r = _cli(d, "users", "add", "carol", "--role", "practitioner", "--clinic", "north", "--new-clinic",
             "--password-stdin", stdin=PW + "\n")
    assert r.returncode == 0, r.stderr
    assert "carol (practitioner) in clinic NORTH" in r.stdout and PW not in r.stdout + r.stderr
    r = _cli(d, "users", "list")
    assert re.search(r"carol\s+practitioner\s+NORTH\s+active", r.stdout)
    assert _cli(d, "users", "disable", "carol").returncode == 0
    assert re.search(r"carol\s+practitioner\s+NORTH\s+disabled", _cli(d, "users", "list").stdout)
    assert _cli(d, "users", "enable", "carol").returncode == 0
    assert _cli(d, "users", "reset", "carol", "--password-stdin", stdin="another long password\n").returncode == 0
    with open_store(d) as s:
        assert s.accounts.sign_in("carol", "another long password").clinic_code == "NORTH"
    r = _cli(d, "audit", "--json", "--since", dt.date.today().isoformat())
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["action"] for x in rows][::-1] == ["account_created", "account_disabled", "account_enabled",
                                                 "password_reset", "sign_in"]
    assert _cli(d, "audit", "--since", "2999-01-01").stdout == ""
    # single sign-on only: created without a password, or an existing password deleted
    r = _cli(d, "users", "add", "erin", "--role", "viewer", "--clinic", "north", "--email", "erin@north.example",
             "--sso-only")
    assert r.returncode == 0, r.stderr
    assert _cli(d, "users", "add", "carl", "--role", "viewer", "--clinic", "north", "--email", "c@north.example",
                "--password-stdin", stdin=PW + "\n").returncode == 0
    assert _cli(d, "users", "sso-only", "carl").returncode == 0
    listed = _cli(d, "users", "list").stdout
    assert re.search(r"erin\s+viewer\s+NORTH\s+active\s+sso-only", listed)
    assert re.search(r"carl\s+viewer\s+NORTH\s+active\s+sso-only", listed)
    assert re.search(r"carol\s+practitioner\s+NORTH\s+active\s+password", listed)
    with open_store(d) as s:
        with pytest.raises(SignInFailed):
            s.accounts.sign_in("carl", PW)
        assert s.accounts.sign_in_sso("c@north.example", verified=True).name == "carl"
        # a password that may have been stolen: the reset revokes the patient links the account issued
        pid = s.create_patient(s.accounts.clinic_actor("NORTH"), "Nora North").id
        s.consents.record(s.accounts.clinic_actor("NORTH"), pid, "clinical", granted=True)
        token, _ = s.links.issue(s.accounts.sign_in("carol", "another long password"), pid)
    r = _cli(d, "users", "reset", "carol", "--password-stdin", "--revoke-links", stdin="a third long password\n")
    assert r.returncode == 0 and "1 patient link(s) it issued revoked" in r.stdout, r.stderr
    with open_store(d) as s:
        with pytest.raises(NotFound):
            s.links.open(token)


@pytest.mark.parametrize("args, stdin, words", [
    (("users", "add", "dave", "--role", "boss", "--clinic", "MAIN", "--password-stdin"), PW, "invalid choice"),
    (("users", "add", "dave", "--role", "viewer", "--clinic", "MAIN", "--password-stdin"), "short", "12 char"),
    (("users", "add", "dave", "--role", "viewer", "--clinic", "MAIN"), PW, "--password-stdin"),
    (("users", "add", "bad name!", "--role", "viewer", "--clinic", "MAIN", "--password-stdin"), PW, "user name"),
    # ($ in the pattern matched before a last line break: the name was stored with it)
    (("users", "add", "name\n", "--role", "viewer", "--clinic", "MAIN", "--password-stdin"), PW, "user name"),
    (("users", "disable", "nobody"), "", "no account nobody"),
    (("users", "add", "dave", "--role", "viewer", "--clinic", "MAIN", "--sso-only"), "", "e-mail"),
    (("users", "add", "dave", "--role", "viewer", "--clinic", "MAIN", "--email", "d@x.example", "--sso-only",
      "--password-stdin"), PW, "leave out --password-stdin"),
    (("audit", "--since", "yesterday"), "", "YYYY-MM-DD"),
])
def test_users_cli_errors_are_one_line_exit_2(tmp_path, args, stdin, words):
    r = _cli(tmp_path / "data", *args, stdin=stdin)
    assert r.returncode == 2
    assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_storage_cli_downgrade_asks_for_confirmation_before_dropping_data(tmp_path):
    # (a review: "python -m storage downgrade base" dropped every table — accounts, patients, audit — at once)
    d = tmp_path / "data"
    assert _cli(d, "users", "add", "carol", "--role", "viewer", "--clinic", "MAIN", "--password-stdin",
                stdin=PW + "\n").returncode == 0
    r = _cli(d, "downgrade", "base")
    assert r.returncode == 2 and "back up" in r.stderr and "--confirm" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "carol" in _cli(d, "users", "list").stdout  # nothing dropped
    assert _cli(d, "downgrade", "base", "--confirm").returncode == 0
    assert _cli(d, "upgrade").returncode == 0 and "carol" not in _cli(d, "users", "list").stdout


@pytest.mark.parametrize("case", ["data folder is a file", "password not UTF-8", "database cannot be opened"])
def test_storage_cli_says_what_is_wrong_with_the_server_in_one_line(tmp_path, case):
    # (a review found a traceback for the first two and a second line from SQLAlchemy for the third)
    d, stdin, args = tmp_path / "data", b"", ("users", "list")
    if case == "data folder is a file":
        d.write_text("x")
        words = "cannot be made or used (File exists)"
    elif case == "password not UTF-8":
        stdin = "café au lait tous les jours\n".encode("latin-1")
        args = ("users", "add", "eve", "--role", "viewer", "--clinic", "MAIN", "--password-stdin")
        words = "not UTF-8 text"
    else:
        (d / "relief.db").mkdir(parents=True)  # (a folder where the database file should be)
        words = "cannot be opened or migrated"
    r = subprocess.run([sys.executable, "-m", "storage", "--data-dir", str(d), *args], cwd=REPO, input=stdin,
                       capture_output=True, timeout=120)
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 2 and words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


# ------------------------------------------------------------------------------------------ the app
pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from relief_app import auth as relief_auth  # noqa: E402
from relief_app import demo  # noqa: E402
from relief_app import text as relief_text

APP = str(REPO / "app.py")
PAGES = ["views/patients.py", "views/new_visit.py", "views/progress.py", "views/compare.py",
         "views/visit_mode.py", "views/admin.py"]


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory):
    """A data folder with the demo patient (clinic MAIN), a practitioner of clinic OTHER and a viewer of MAIN."""
    d = tmp_path_factory.mktemp("secapp") / "data"
    with open_store(d) as s:
        s.accounts.ensure_first_admin(PW)
        demo.seed_demo(s)
        s.accounts.add(Actor.system(), "other_prac", role="practitioner", password=PW, clinic="OTHER")
        s.accounts.add(Actor.system(), "viewer", role="viewer", password=PW, clinic="MAIN")
        ids = {a.username: a.id for a in s.accounts.list(Actor.system())}
        (pid,) = [p.id for p in s.list_patients(MAIN)]
    return d, ids, pid


@pytest.fixture
def app_env(app_dir, monkeypatch):
    d, ids, pid = app_dir
    monkeypatch.setenv("RELIEF_DATA_DIR", str(d))
    monkeypatch.delenv("RELIEF_DATABASE_URL", raising=False)
    monkeypatch.setenv("RELIEF_ADMIN_PASSWORD", PW)
    return d, ids, pid


def _at(*, account=None, page=None, last_active=None, **query):
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = str(v)
    if account is not None:
        signed_in(at, account, last_active=last_active)
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _everything(at) -> str:
    parts = []
    for kind in ("markdown", "title", "header", "subheader", "caption", "info", "success", "warning", "error",
                 "code", "text"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    for sb in at.selectbox:
        parts += [str(o) for o in sb.options]
    return re.sub(r"\\(.)", r"\1", "\n".join(parts))


def _no_patient_data(at) -> None:
    shown = _everything(at)
    assert demo.DEMO_NAME not in shown and "DEMO" not in shown
    assert not at.get("plotly_chart") and not at.get("imgs") and not figure_captions(at)
    assert not at.get("arrow_data_frame")


@pytest.mark.parametrize("page", [None, *PAGES])
def test_signed_out_every_page_shows_the_sign_in_form_and_no_patient(app_env, page):
    at = _at(page=page)
    _no_patient_data(at)
    assert at.text_input(key="signin_username").label == "Username"
    assert at.text_input(key="signin_password").label == "Password"
    assert at.button(key="signin_submit").label == "Sign in"


def _account_id(d, name: str) -> int:
    with open_store(d) as s:
        return next(a.id for a in s.accounts.list(Actor.system()) if a.username == name)


def _sso_at(**user):
    """The app as Streamlit runs it with an ``[auth]`` section: ``st.user`` has ``is_logged_in`` (AppTest's
    ``user`` stands in for the identity provider's claims; the real round trip is in test_sso.py)."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.user = {"is_logged_in": False, **user}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_single_sign_on_is_offered_only_when_configured_and_maps_verified_claims(app_env):
    d, ids, pid = app_env
    with open_store(d) as s:
        if "sso_user" not in {a.username for a in s.accounts.list(Actor.system())}:
            s.accounts.add(Actor.system(), "sso_user", role="viewer", password=None, clinic="MAIN",
                           email="sso.user@main.example")
    assert "signin_sso" not in [b.key for b in _at().button]  # not configured: only the local form
    at = _sso_at()
    assert at.button(key="signin_sso").label == "Sign in with single sign-on"
    assert at.button(key="signin_submit").label == "Sign in"
    _no_patient_data(at)

    for claims in ({"email": "SSO.User@main.example", "email_verified": False},
                   {"email": "sso.user@main.example", "email_verified": "false"},
                   {"email": "nobody@main.example"}, {}):
        at = _sso_at(is_logged_in=True, **claims)
        _no_patient_data(at)
        assert [e.value for e in at.error] == [SIGN_IN_FAILED_LINE], claims
        assert at.button(key="signin_sso_logout").label == "Sign out of single sign-on"
    for verified in ({}, {"email_verified": True}, {"email_verified": "true"}):  # absent claim: no statement
        at = _sso_at(is_logged_in=True, email="SSO.User@MAIN.example", **verified)
        assert demo.DEMO_NAME in _everything(at), verified
        assert "sso_user" in _everything(at)
        at.sidebar.button(key="sign_out").click().run()  # also st.logout(): Streamlit forgets the identity
        assert at.user == {"is_logged_in": False}
        _no_patient_data(at)
    # The idle timeout ends a single sign-on session too, and forgets the identity (else it would sign in again).
    at = AppTest.from_file(APP, default_timeout=60)
    at.user = {"is_logged_in": True, "email": "sso.user@main.example"}
    signed_in(at, _account_id(d, "sso_user"), last_active=time.time() - 31 * 60)
    at.session_state["sso"] = True
    at.run()
    assert at.user == {"is_logged_in": False}
    _no_patient_data(at)


@pytest.mark.parametrize("query", [dict(mode="visit", patient=1), dict(patient=1), dict(patient_id=1),
                                   dict(link="x" * 43), dict(link=secrets.token_urlsafe(32))])
def test_signed_out_query_parameters_show_no_patient(app_env, query):
    _no_patient_data(_at(**query))


def test_a_refused_link_is_audited_once_per_browser_session_not_on_every_rerun(app_env):
    """Every rerun of a page opened with a bad link wrote another row to the append-only audit log (a review: 50
    rows from one session). A refused link is remembered by the session; another link is tried (and audited)."""
    d, ids, pid = app_env

    def failed():
        with open_store(d) as s:
            return sum(1 for e in s.audit.events(Actor.system(), action="link_used", limit=100_000)
                       if e.outcome == "failed")

    before = failed()
    at = _at(link=secrets.token_urlsafe(32))
    for _ in range(5):
        at.run()
        _no_patient_data(at)
        assert "not valid" in _everything(at)
    assert failed() == before + 1
    at.query_params["link"] = secrets.token_urlsafe(32)
    at.run()
    _no_patient_data(at)
    assert failed() == before + 2


def test_sign_in_through_the_form_then_sign_out(app_env):
    d, ids, pid = app_env
    at = _at()
    at.text_input(key="signin_username").input("admin")
    at.text_input(key="signin_password").input("wrong password here")
    at.button(key="signin_submit").click().run()
    assert at.error and "wrong user name or password" in at.error[0].value
    _no_patient_data(at)
    at.text_input(key="signin_password").input(PW)
    at.button(key="signin_submit").click().run()
    assert not at.exception
    assert demo.DEMO_NAME in _everything(at)
    at.sidebar.button(key="sign_out").click().run()
    _no_patient_data(at)
    assert at.text_input(key="signin_username")


def test_idle_session_is_signed_out(app_env, monkeypatch):
    d, ids, pid = app_env
    monkeypatch.setenv("RELIEF_IDLE_MINUTES", "30")
    at = _at(account=ids["admin"], last_active=time.time() - 31 * 60)
    _no_patient_data(at)
    assert "31" not in _everything(at) and "30 minutes without activity" in _everything(at)
    at = _at(account=ids["admin"], last_active=time.time() - 29 * 60)
    assert demo.DEMO_NAME in _everything(at)


@pytest.mark.parametrize("page", [None, *PAGES])
def test_a_practitioner_of_another_clinic_cannot_reach_the_demo(app_env, page):
    d, ids, pid = app_env
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["patient"] = str(pid)
    signed_in(at, ids["other_prac"])
    at.session_state["patient_id"] = pid  # even a session that names the demo's id
    at.run()
    if page == "views/admin.py":  # not even registered for a practitioner
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(page)
    elif page:
        at.session_state["patient_id"] = pid
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    _no_patient_data(at)
    shown = _everything(at)
    assert "Alice" not in shown


def test_a_viewer_sees_the_demo_but_gets_no_upload_or_edit(app_env):
    d, ids, pid = app_env
    at = _at(account=ids["viewer"])
    assert demo.DEMO_NAME in _everything(at)
    for k in ("create_patient", "update_patient", "record_consent", "issue_link"):
        with pytest.raises(KeyError):
            at.button(key=k)
    # The New-visit page is not in a viewer's navigation at all ...
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("views/new_visit.py")
    with pytest.raises(KeyError):
        at.text_input(key="signin_username")
    # ... and the page refuses on its own when it runs for a viewer (a navigation that forgot it; the page
    # run directly with the viewer's session, as the app's gate leaves it).
    with open_store(d) as s:
        viewer = s.accounts.actor(ids["viewer"])
    page = AppTest.from_file(str(REPO / "views" / "new_visit.py"), default_timeout=60)
    page.session_state["actor"] = viewer
    page.session_state["patient_id"] = pid
    page.run()
    assert not page.exception, [e.value for e in page.exception]
    assert any("not record visits" in i.value for i in page.info)
    with pytest.raises(KeyError):
        page.button(key="save_visit")
    assert not page.get("file_uploader")


HOSTILE = ("[click me](javascript:alert(1)) <b>bold</b> <script>alert(2)</script> # Heading :red[red] "
           "**star** ![img](http://127.0.0.1/x.png)")


def test_hostile_text_is_shown_as_text(app_env):
    d, ids, pid = app_env
    with open_store(d) as s:
        p = new_patient(s, HOSTILE, code="<i>C</i>", notes="n" * 10_000)
    import streamlit as st

    st.cache_data.clear()  # written behind the app's back: no revision bump
    try:
        at = _at(account=ids["admin"])
        at.button(key=f"open_patient_{p.id}").click().run()
        assert not at.exception
        rows = [m.value for m in at.markdown if "click me" in m.value]
        assert rows, "the hostile name is not listed"
        for md in rows:
            assert "](javascript:" not in md and "<b>" not in md and "<script>" not in md
            assert relief_text.md_escape(HOSTILE) in md or "\\[click me\\]" in md
        assert at.text_area(key="edit_patient_notes").value == "n" * 10_000  # shown whole, as text
    finally:
        with open_store(d) as s:
            s.delete_patient(MAIN, p.id)


def test_a_hostile_camera_name_in_a_photos_exif_reaches_the_page_as_text(tmp_path):
    """The camera's EXIF make and model go into the "not taken alike" advice, which pages show as Markdown: a model
    written as a link or HTML must read as text there."""
    import io

    from PIL import Image

    from analyzer import compare

    files = []
    for name, model in (("week00_baseline.jpg", "iPhone 13"), ("week01.jpg", HOSTILE)):
        exif = Image.Exif()
        exif[0x010F], exif[0x0110] = "Evil\x00Corp", model
        out = io.BytesIO()
        Image.open(REPO / "sample_images" / name).save(out, "JPEG", quality=95, exif=exif)
        files.append(tmp_path / name)
        files[-1].write_bytes(out.getvalue())
    c = compare(*files)
    [diff] = [d for d in c.consistency["differences"] if "camera" in d]
    assert "\x00" not in diff and "click me" in diff and len(c.followup.camera) <= 80
    md = relief_text.not_alike_markdown([diff])
    for raw in ("[click me]", "<b>", "<script>"):
        assert re.search(r"(?<!\\)" + re.escape(raw), md) is None, raw


def test_md_escape_neutralises_markdown_html_and_directives():
    out = relief_text.md_escape(HOSTILE, limit=None)
    assert re.sub(r"\\(.)", r"\1", out) == HOSTILE  # reads the same
    for raw in ("[click me]", "(javascript:", "<b>", "**", ":red[", "# Heading", "!["):
        assert re.search(r"(?<!\\)" + re.escape(raw), out) is None, raw  # never with its first character bare
    assert relief_text.md_escape("x" * 10_000).endswith("…") and len(relief_text.md_escape("x" * 10_000)) == 300
    assert "\n" not in relief_text.md_escape("a\n\n# b")


def test_bandit_finds_no_high_severity_issue():
    pytest.importorskip("bandit")
    r = subprocess.run([sys.executable, "-m", "bandit", "-q", "-r", "analyzer", "storage", "relief_app", "views",
                        "app.py", "-lll", "-f", "json"], cwd=REPO, capture_output=True, text=True, timeout=300)
    report = json.loads(r.stdout)
    assert [x for x in report["results"] if x["issue_severity"] == "HIGH"] == [], report["results"]


def _shared_cache_script():
    import streamlit as st

    from relief_app import services

    st.session_state["actor"] = st.session_state["as_actor"]
    photos = st.session_state["photos"]
    for name, call in (("thumbnail", lambda: services.thumbnail(photos[0], 160)),
                       ("compare", lambda: services.compare_views(photos[0].patient_id, photos[0], photos[-1]))):
        try:
            call()
            st.text(f"{name}: SHOWN")
        except Exception as err:  # noqa: BLE001
            st.text(f"{name}: {type(err).__name__}")


def test_pictures_cached_for_one_session_never_reach_another_clinic_or_another_patients_link(app_env):
    """Thumbnails and aligned pairs are cached across sessions by the photos' hashes; the access check runs
    before the cache on every call, so a warm cache hands nothing to an actor who may not see the photo."""
    d, ids, pid = app_env
    with open_store(d) as s:
        photos = s.photos(MAIN, pid)
        other = new_patient(s, "Other Patient")
        token, _ = s.links.issue(MAIN, other.id)
        link_actor = s.links.actor(token)
        outsider = s.accounts.actor(ids["other_prac"])
        admin = s.accounts.actor(ids["admin"])

    def run(actor):
        return app_texts(_shared_cache_script, actor, timeout=120, photos=photos)

    assert run(admin) == ["thumbnail: SHOWN", "compare: SHOWN"]  # warms the caches
    assert run(outsider) == ["thumbnail: NotFound", "compare: NotFound"]
    assert run(link_actor) == ["thumbnail: NotFound", "compare: NotFound"]
    assert run(None) == ["thumbnail: AccessDenied", "compare: AccessDenied"]


def test_reports_and_exports_read_only_what_the_actor_may_see(app_env):
    from relief_app import reportdata

    d, ids, pid = app_env
    with open_store(d) as s:
        outsider = s.accounts.actor(ids["other_prac"])
        viewer = s.accounts.actor(ids["viewer"])
        other = new_patient(s, "Link Only")
        token, _ = s.links.issue(MAIN, other.id)
        link_actor = s.links.actor(token)
        with pytest.raises(NotFound):
            reportdata.gather_report(s, outsider, pid)
        with pytest.raises(NotFound):
            reportdata.find_patient(s, outsider, "DEMO")
        assert reportdata.gather_export(s, outsider).patients == ()
        assert [p.patient.id for p in reportdata.gather_export(s, link_actor).patients] == [other.id]
        assert reportdata.gather_report(s, viewer, pid).patient.id == pid  # reading is a viewer's right
        with pytest.raises(AccessDenied):
            reportdata.gather_report(s, None, pid)
        s.delete_patient(MAIN, other.id)


# --------------------------------------------------------------------------- found by a security review
def test_signing_out_leaves_nothing_a_page_kept_for_the_next_person(app_env):
    # An admin prepares an identified export of the whole clinic and leaves; the next person at this browser
    # (another clinic's admin) must not be offered it.
    d, ids, pid = app_env
    with open_store(d) as s:
        if "other_admin" not in {a.username for a in s.accounts.list(Actor.system())}:
            s.accounts.add(Actor.system(), "other_admin", role="admin", password=PW, clinic="OTHER")
        other_admin = {a.username: a.id for a in s.accounts.list(Actor.system())}["other_admin"]
    at = _at(account=ids["admin"], page="views/admin.py")
    at.checkbox(key="export_deidentify").uncheck().run()
    before = dt.datetime.now(dt.timezone.utc)
    at.button(key="prepare_clinic_export").click().run()
    assert at.session_state["clinic_export"] and at.get("download_button")
    with open_store(d) as s:  # the identified clinic export: one audit row per patient in it
        rows = s.audit.events(Actor.system(), action="export", since=before)
        assert sorted(r.patient_id for r in rows) == sorted(p.id for p in s.list_patients(MAIN)) and pid in [
            r.patient_id for r in rows]
    at.session_state["report_pdf"] = (pid, b"%PDF- a report of the demo patient")  # as the Progress page keeps it
    at.sidebar.button(key="sign_out").click().run()
    for key in ("clinic_export", "report_pdf", "patient_id", "account_id", "export_deidentify"):
        assert key not in at.session_state, key
    signed_in(at, other_admin)
    at.run()
    at.switch_page("views/admin.py").run()
    assert not at.exception
    assert not at.get("download_button")
    _no_patient_data(at)


def test_an_identified_clinic_export_is_never_offered_under_a_ticked_de_identify(app_env):
    """A product review prepared an identified export, ticked "De-identify" again and downloaded names. A prepared
    export is offered only under the choice it was made with, and says how many patients it holds."""
    d, ids, pid = app_env
    at = _at(account=ids["admin"], page="views/admin.py")
    at.checkbox(key="export_deidentify").uncheck().run()
    at.button(key="prepare_clinic_export").click().run()
    assert at.get("download_button")
    with open_store(d) as s:
        n = len(s.list_patients(MAIN))
    assert any(f"{n} patient(s) in the export" in c.value for c in at.caption)
    at.checkbox(key="export_deidentify").check().run()
    assert not at.get("download_button")
    at.button(key="prepare_clinic_export").click().run()  # de-identified: only patients who consented to teaching
    assert at.get("download_button") and any("left out for lack of consent" in c.value for c in at.caption)


def test_a_de_identified_export_prepared_before_a_withdrawal_is_not_offered_after_it(app_env):
    """A review prepared the de-identified export, the patient then withdrew consent to teaching use, and the old
    ZIP (with that patient's row) was still offered: the export is keyed by the consent decisions too."""
    import streamlit as st

    d, ids, pid = app_env
    with open_store(d) as s:
        p = new_patient(s, "Teaching Consent", code="TC-1")
        s.consents.record(MAIN, p.id, "marketing", granted=True, date=dt.date(2020, 1, 2))
    try:
        at = _at(account=ids["admin"], page="views/admin.py")
        at.checkbox(key="export_deidentify").check().run()
        at.button(key="prepare_clinic_export").click().run()
        assert at.get("download_button") and at.session_state["clinic_export"][2][0] >= 1
        at.run()
        assert at.get("download_button")  # a rerun alone keeps it
        with open_store(d) as s:
            s.consents.record(MAIN, p.id, "marketing", granted=False, date=dt.date.today())
        st.cache_data.clear()  # written behind the app's back: no revision bump
        at.run()
        assert not at.exception
        assert not at.get("download_button")
    finally:
        with open_store(d) as s:
            s.delete_patient(MAIN, p.id)


def test_a_password_change_or_reset_ends_every_other_session(app_env):
    d, ids, pid = app_env
    at = _at(account=ids["viewer"])
    assert demo.DEMO_NAME in _everything(at)
    try:
        with open_store(d) as s:  # the operator resets it (someone else knew the old one)
            s.accounts.reset_password(Actor.system(), "viewer", "a brand new password 1", must_change=False)
        at.run()
        _no_patient_data(at)
        assert at.text_input(key="signin_username")
        assert "password of this account has been changed" in _everything(at)
        at.text_input(key="signin_username").input("viewer")  # the new password works
        at.text_input(key="signin_password").input("a brand new password 1")
        at.button(key="signin_submit").click().run()
        assert demo.DEMO_NAME in _everything(at)
    finally:  # (the module's other tests sign in with PW)
        with open_store(d) as s:
            s.accounts.reset_password(Actor.system(), "viewer", PW, must_change=False)


def test_an_admin_disabling_an_account_on_the_page_ends_its_session_and_its_links(app_env):
    d, ids, pid = app_env
    with open_store(d) as s:
        if "linker" not in {a.username for a in s.accounts.list(Actor.system())}:
            s.accounts.add(Actor.system(), "linker", role="practitioner", password=PW, clinic="MAIN")
        linker = s.accounts.sign_in("linker", PW)
        token, _ = s.links.issue(linker, pid)
        linker_id = linker.account_id
    theirs = _at(account=linker_id)
    assert demo.DEMO_NAME in _everything(theirs)
    at = _at(account=ids["admin"], page="views/admin.py")
    at.selectbox(key="manage_account").select("linker").run()
    assert at.button(key="toggle_account").disabled  # it asks first: the links cannot be brought back
    at.checkbox(key="confirm_disable_linker").check().run()
    at.button(key="toggle_account").click().run()
    assert not at.exception
    assert any("Disabled linker" in str(x.value) and "links they issued are revoked" in str(x.value)
               for x in at.success)
    theirs.run()  # the disabled account's open session: signed out, nothing of the patient
    _no_patient_data(theirs)
    with open_store(d) as s:
        with pytest.raises(NotFound):
            s.links.open(token)
        s.accounts.set_disabled(Actor.system(), "linker", False)  # (the module's other tests)


def test_an_admin_resetting_a_stolen_password_on_the_page_can_revoke_its_links(app_env):
    d, ids, pid = app_env
    with open_store(d) as s:
        if "robbed" not in {a.username for a in s.accounts.list(Actor.system())}:
            s.accounts.add(Actor.system(), "robbed", role="practitioner", password=PW, clinic="MAIN")
        token, _ = s.links.issue(s.accounts.sign_in("robbed", PW), pid)
    try:
        at = _at(account=ids["admin"], page="views/admin.py")
        at.selectbox(key="manage_account").select("robbed").run()
        at.text_input(key="reset_password_value").input("a one-time password 9")  # not ticked: a forgotten one
        at.button(key="reset_password_submit").click().run()
        assert not at.exception and not any("revoked" in str(x.value) for x in at.success)
        with open_store(d) as s:
            assert s.links.open(token)
        at.selectbox(key="manage_account").select("robbed").run()
        assert "1 open patient link" in at.checkbox(key="revoke_links_robbed").label
        at.checkbox(key="revoke_links_robbed").check().run()
        at.text_input(key="reset_password_value").input("a one-time password 8")
        at.button(key="reset_password_submit").click().run()
        assert not at.exception
        assert any("Reset the password of robbed" in str(x.value) and "links they issued are revoked" in str(x.value)
                   for x in at.success)
        with open_store(d) as s:
            with pytest.raises(NotFound):
                s.links.open(token)
        at.selectbox(key="manage_account").select("robbed").run()  # nothing left to revoke: not offered
        assert not [c for c in at.checkbox if c.key == "revoke_links_robbed"]
    finally:
        with open_store(d) as s:
            s.accounts.reset_password(Actor.system(), "robbed", PW, must_change=False)


def test_a_refused_new_account_keeps_what_was_typed_and_a_created_one_clears_the_form(app_env):
    """The form was cleared on every submit: a password refused as too short also wiped the e-mail, and the
    account was then created without it (single sign-on silently off for it; a product review)."""
    d, ids, pid = app_env
    at = _at(account=ids["admin"], page="views/admin.py")
    at.text_input(key="new_account_name").input("dr_keep")
    at.text_input(key="new_account_password").input("short")
    at.text_input(key="new_account_email").input("keep@clinic.example")
    at.button(key="create_account").click().run()
    assert not at.exception and any("12 characters" in e.value for e in at.error)
    assert at.text_input(key="new_account_email").value == "keep@clinic.example"
    assert at.text_input(key="new_account_name").value == "dr_keep"
    at.text_input(key="new_account_password").input("a long enough password 1")
    at.button(key="create_account").click().run()
    assert any("Created dr_keep" in s.value.replace("\\", "") for s in at.success)
    assert at.text_input(key="new_account_email").value == "" and at.text_input(key="new_account_name").value == ""
    with open_store(d) as s:
        assert {a.username: a.email for a in s.accounts.list(Actor.system())}["dr_keep"] == "keep@clinic.example"


def test_an_admin_makes_accounts_single_sign_on_only_on_the_page(app_env, monkeypatch):
    """The Accounts page creates an account without a password and deletes an existing one's password (after a
    tick); the table says how each signs in, and a password that was deleted no longer signs in."""
    d, ids, pid = app_env
    at = _at(account=ids["admin"], page="views/admin.py")
    assert "not set up on this server" in _everything(at)  # no [auth] secrets: every account needs a password
    assert at.checkbox(key="new_account_sso_only").disabled
    monkeypatch.setattr(relief_auth, "sso_configured", lambda: True)  # as with single sign-on set up
    at.run()
    assert "not set up on this server" not in _everything(at)
    at.text_input(key="new_account_name").input("dr_sso_only")
    at.text_input(key="new_account_email").input("sso-only@clinic.example")
    at.checkbox(key="new_account_sso_only").check()
    at.button(key="create_account").click().run()
    assert not at.exception and any("single sign-on only" in x.value for x in at.success)
    assert at.checkbox(key="new_account_sso_only").value is False  # the next form starts afresh
    with open_store(d) as s:
        if "dr_both" not in {a.username for a in s.accounts.list(Actor.system())}:
            s.accounts.add(Actor.system(), "dr_both", role="viewer", password=PW, clinic="MAIN",
                           email="both@clinic.example")
    at.run()
    table = next(t.value for t in at.dataframe if "Sign-in" in t.value.columns)
    how = dict(zip(table["User"], table["Sign-in"]))
    assert (how["dr_sso_only"], how["dr_both"], how["admin"]) == (
        "single sign-on only", "password or single sign-on", "password")
    at.selectbox(key="manage_account").select("dr_both").run()
    assert at.button(key="remove_password").disabled  # it asks first
    at.checkbox(key="confirm_sso_only_dr_both").check().run()
    at.button(key="remove_password").click().run()
    assert not at.exception and any("dr_both now signs in through single sign-on only" in x.value.replace("\\", "")
                                    for x in at.success)
    with open_store(d) as s:
        with pytest.raises(SignInFailed):
            s.accounts.sign_in("dr_both", PW)
        assert {a.username: a.has_password for a in s.accounts.list(Actor.system())}["dr_sso_only"] is False
    for who in ("admin", "dr_both"):  # no e-mail / no password left: nothing to offer
        at.selectbox(key="manage_account").select(who).run()
        assert not [b for b in at.button if b.key == "remove_password"]
    with open_store(d) as s:  # an admin's own account, even with an e-mail: not offered (a lock-out)
        s.accounts.reset_password(Actor.system(), "dr_both", PW, must_change=False)
        if "admin_mail" not in {a.username for a in s.accounts.list(Actor.system())}:
            s.accounts.add(Actor.system(), "admin_mail", role="admin", password=PW, clinic="MAIN",
                           email="admin.mail@clinic.example")
        own_id = s.accounts.sign_in("admin_mail", PW).account_id
    own = _at(account=own_id, page="views/admin.py")
    for who, offered in (("admin_mail", False), ("dr_both", True)):
        own.selectbox(key="manage_account").select(who).run()
        assert bool([b for b in own.button if b.key == "remove_password"]) == offered, who


def test_a_session_without_its_password_stamp_has_ended(app_env):
    # The stamp is set together with the account id at sign-in; code that ever set one without the other must
    # not switch the password check off.
    d, ids, pid = app_env
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["account_id"] = ids["admin"]
    at.session_state["last_active"] = time.time()
    at.run()
    _no_patient_data(at)
    assert at.text_input(key="signin_username") and "session has ended" in _everything(at)


def test_an_admin_resetting_their_own_password_stays_signed_in_and_chooses_a_new_one(app_env):
    d, ids, pid = app_env
    try:
        at = _at(account=ids["admin"], page="views/admin.py")
        at.selectbox(key="manage_account").select("admin").run()
        at.text_input(key="reset_password_value").input("a one-time password 7")
        at.button(key="reset_password_submit").click().run()
        assert not at.exception
        assert not [w for w in at.text_input if w.key == "signin_username"]  # still signed in...
        assert "Choose your password" in [t.value for t in at.title]  # ...and asked for a new password
    finally:
        with open_store(d) as s:
            s.accounts.reset_password(Actor.system(), "admin", PW, must_change=False)


def test_own_password_change_keeps_this_session_and_ends_the_others(world):
    store = world["store"]
    here = store.accounts.sign_in("main_prac", PW)
    there = store.accounts.sign_in("main_prac", PW)
    assert here.credential_stamp == there.credential_stamp
    changed = store.accounts.change_password(here, PW, "another good password 2")
    assert store.accounts.actor(here.account_id, stamp=changed.credential_stamp).name == "main_prac"
    with pytest.raises(SignInFailed, match="changed"):
        store.accounts.actor(there.account_id, stamp=there.credential_stamp)
    assert here == changed  # (the stamp is not part of equality: caches keyed by actor stay valid)


def test_a_throttled_or_locked_account_costs_a_password_check_like_an_unknown_name(world, monkeypatch):
    # Otherwise the refusal comes back faster for a real user name once it is throttled: the timing tells
    # which names exist.
    store = world["store"]
    calls = []
    real = accounts_mod._verify
    monkeypatch.setattr(accounts_mod, "_verify", lambda h, p: calls.append(1) or real(h, p))
    costs = {}
    for name in ("main_prac", "no_such_user"):
        calls.clear()
        for _ in range(accounts_mod.FREE_FAILURES + 3):
            with pytest.raises(SignInFailed):
                store.accounts.sign_in(name, "wrong password 99")
        costs[name] = len(calls)
    assert costs["main_prac"] == costs["no_such_user"] == accounts_mod.FREE_FAILURES + 3


def test_a_deleted_patients_id_is_never_given_again(world):
    store, a = world["store"], world["actors"]
    prac = a["main_prac"]
    first = store.create_patient(prac, "Created by mistake")
    store.delete_patient(prac, first.id)
    second = store.create_patient(prac, "The right patient")
    assert second.id != first.id
    rows = store.audit.events(Actor.system(), patient_id=second.id)
    assert [r.action for r in rows] == ["create_patient"]  # none of the deleted patient's history


def test_patients_created_while_others_write_all_get_new_ids(world):
    # The new id is computed inside the INSERT: read beforehand, a write committed in between made SQLite refuse
    # the insert ("database is locked", at once).
    import threading

    store, prac = world["store"], world["actors"]["main_prac"]
    made, errors = [], []

    def create():
        for i in range(8):
            try:
                made.append(store.create_patient(prac, f"P {i}").id)
            except Exception as err:  # noqa: BLE001 - counted
                errors.append(repr(err))

    def log():
        for _ in range(20):
            try:
                store.audit.log(prac, "export", detail="concurrent")
            except Exception as err:  # noqa: BLE001 - counted
                errors.append(repr(err))

    threads = [threading.Thread(target=create) for _ in range(4)] + [threading.Thread(target=log) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(made) == len(set(made)) == 32


def test_a_clinic_export_leaves_one_audit_row_per_patient(world):
    store, a = world["store"], world["actors"]
    from relief_app import reportdata

    data = reportdata.gather_export(store, a["main_admin"])
    ids = [p.patient.id for p in data.patients]
    assert ids
    store.audit.log_each(a["main_admin"], "export", ids, detail="test")
    for pid in ids:
        assert store.audit.events(a["main_admin"], patient_id=pid, action="export")
    other = store.create_patient(a["other_prac"], "Other clinic's patient")
    with pytest.raises(NotFound):  # all or nothing, and only patients the actor may see
        store.audit.log_each(a["main_admin"], "export", [ids[0], other.id])


def _captions(ids, pid, page: str, select_key: str, region: str, containing: str) -> list[str]:
    """Image captions containing ``containing`` on ``page`` (admin of MAIN, the demo patient, ``region`` picked in
    the select box ``select_key``); data written behind the app's back, so its caches are cleared first."""
    import streamlit as st

    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=120)
    signed_in(at, ids["admin"])
    at.session_state["patient_id"] = pid
    at.run()
    at.switch_page(page).run()
    at.selectbox(key=select_key).select(region).run()
    assert not at.exception, [e.value for e in at.exception]
    assert media_images(at) == []
    # Plain text in HTML: no element but the figure's own (a link would be an <a>, a script a <script>)
    bodies = [e.value for e in at.get("html") if "relief-picture" in e.value]
    assert bodies and not any(re.search(r"<(a|script|b|i)\b", b) for b in bodies), bodies
    return [c for c in figure_captions(at) if containing in c]


def test_a_hostile_region_name_is_text_in_the_baseline_caption(app_env):
    # A region is free text typed by any practitioner of the clinic; shown as Markdown it would be a link
    # ("Session expired – sign in") on every colleague's New-visit page.
    d, ids, pid = app_env
    region = "[Session expired - sign in](https://evil.example)"
    with open_store(d) as s:
        visit = s.save_visit(MAIN, pid, date=dt.date.today(), photos=[NewPhoto(png(4), "x.png", region)])
    try:
        captions = _captions(ids, pid, "views/new_visit.py", "visit_region", region, "Baseline of")
        assert captions and all(region in c for c in captions), captions  # shown as typed, not as a link
    finally:
        with open_store(d) as s:
            s.delete_visit(MAIN, pid, visit.id)


def test_hostile_file_names_are_text_in_the_compare_captions(app_env):
    # Only the folder part of an uploaded file's name is removed; the rest reaches the Compare page's captions,
    # which must show it as text (they were Markdown; they are plain text in HTML now).
    d, ids, pid = app_env
    name = "[Sign in again](http:evil.example).jpg"  # (no slash: the folder part would go)
    region = "jaw line (caption test)"
    photo = (demo.SAMPLES_DIR / demo.COURSE[0][0]).read_bytes()
    with open_store(d) as s:
        visits = [s.save_visit(MAIN, pid, date=dt.date.today() - dt.timedelta(days=day),
                               photos=[NewPhoto(another_photo(photo, k), name, region)])
                  for k, day in ((1, 2), (2, 1))]
    try:
        captions = _captions(ids, pid, "views/compare.py", "compare_region", region, "Before —")
        assert captions and all(name in c for c in captions), captions  # shown as typed, not as a link
    finally:
        with open_store(d) as s:
            for v in visits:
                s.delete_visit(MAIN, pid, v.id)
