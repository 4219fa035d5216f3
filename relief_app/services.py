"""The Streamlit side of the glue: the cached store, cached reads and analyses, error display.

* ``st.cache_resource``: the :class:`storage.Store` (one engine per data folder / database URL) and the demo
  seeding (runs once per process and data folder).
* ``st.cache_data``: pure, serialisable results — photo analyses and thumbnails keyed by the photo's SHA-256
  and ``analyzer.ALGORITHM_VERSION``; comparison maps keyed by both photo records, their SHA-256, the version and
  whether the actor stores results; store
  reads keyed by the store, the patient and a data revision that every write through this module bumps (with a
  short TTL for writes made by other processes).

Pages call these functions and lay out the results; they never open the store or run the library themselves.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import streamlit as st

import analyzer
from analyzer.errors import ReliefError
from storage import TEXT_LIMITS, Actor, Store, open_store
from storage.access import WRITE

from . import demo, images, visits
from .text import md_escape, sentence_case

__all__ = [
    "get_store", "store_key", "ensure_demo", "revision", "bump", "show_errors", "require_patient",
    "list_patients", "patient", "progress", "baseline_photo", "standard_regions", "compute_missing", "treatments",
    "visits_of", "regions", "photos", "analyse_upload", "thumbnail", "thumbnail_of_bytes", "compare_views",
    "region_values", "save_visit", "create_patient", "update_patient", "current_actor", "open_patient",
    "consent_status", "record_consent", "delete_patient", "delete_visit", "issue_link", "links_of", "revoke_link", "can",
    "TEXT_LIMITS",
]

_TTL = 30  # seconds: reads cached across reruns; writes by another process show up after at most this

# ------------------------------------------------------------------------------------------------ store


def store_key() -> str:
    """Which data this process talks to: the data folder and database URL from the environment."""
    return f"{os.environ.get('RELIEF_DATA_DIR', '')}|{os.environ.get('RELIEF_DATABASE_URL', '')}"


@st.cache_resource(show_spinner=False)
def _open(key: str, store_class: int) -> Store:
    data_dir, _, url = key.partition("|")
    store = open_store(data_dir or None, url or None)
    # Photo files a killed save left behind (no row refers to them, so no deletion could reach them): removed
    # once per process; files younger than an hour are kept (a save elsewhere may be about to refer to them).
    store.gc_orphans()
    visits.sweep_temporary()  # and photos a killed analysis left in its temporary folder
    return store


def get_store() -> Store:
    """The store for ``RELIEF_DATA_DIR`` / ``RELIEF_DATABASE_URL`` (opened and migrated once per process).

    Also keyed by the identity of the ``Store`` class: after an edit of the code, Streamlit's file watcher
    re-imports the project's modules, and a store made of the old classes would return records that the
    data caches cannot pickle ("not the same object as storage.records.…").
    """
    return _open(store_key(), id(Store))


@st.cache_resource(show_spinner="Preparing the demo patient (first start only)…")
def _seed_once(key: str, enabled: bool) -> int | None:
    if not enabled:
        return None
    pid = demo.seed_demo(_open(key, id(Store)))
    if pid is not None:
        bump()
    return pid


def ensure_demo() -> int | None:
    """Seed the demo patient on a first start (see :mod:`relief_app.demo`); once per process and data folder."""
    return _seed_once(store_key(), demo.demo_enabled())


def current_actor() -> Actor | None:
    """The actor of this browser session, set by :func:`relief_app.auth.gate` on every page run (``None``
    before sign-in: storage then refuses every patient read)."""
    a = st.session_state.get("actor")
    return a if isinstance(a, Actor) else None


# ------------------------------------------------------------------------------------ revisions, errors
_rev_lock = threading.Lock()
_rev_counter = itertools.count(1)
_rev = 0


def revision() -> int:
    """Changes after every write made through this module; part of every cached read's key."""
    return _rev


def bump() -> None:
    global _rev
    with _rev_lock:
        _rev = next(_rev_counter)


@contextlib.contextmanager
def show_errors(stop: bool = True, *, instead: str | None = None) -> Iterator[None]:
    """Show a library or storage error as one line (``st.error``), never a traceback; then stop the page.

    ``instead``: a sentence shown in its place (e.g. to a patient, who needs no photographer's advice).
    """
    try:
        yield
    except ReliefError as err:  # storage.StorageError is a ReliefError too
        if instead is not None:
            st.info(instead)
        else:
            st.error(md_escape(sentence_case(str(err)), limit=None))
        if stop:
            st.stop()


def require_patient() -> int:
    """The selected patient's id, or an info box and the end of the page."""
    pid = st.session_state.get("patient_id")
    if pid is None:
        st.info("Select a patient first — on the **Patients** page or in the sidebar.")
        st.stop()
    return int(pid)


def patient_page(title: str, *, without_photos: str | None = None):
    """The common head of a patient's page: title, selected patient and its regions.

    Returns ``(patient_id, patient, regions)``. With ``without_photos``, a patient with no photos yet gets that
    message in an info box and the page ends.
    """
    st.title(title)
    pid = require_patient()
    with show_errors():
        record = patient(pid)
        known = regions(pid)
    st.caption(f"Patient: **{md_escape(record.name)}**")
    if without_photos is not None and not known:
        st.info(without_photos)
        st.stop()
    return pid, record, known


# -------------------------------------------------------------------------------------------- reads
@st.cache_data(ttl=_TTL, show_spinner=False)
def _list_patients(key: str, actor: Actor, search: str, version: str, rev: int):
    return get_store().list_patients(actor, search, algorithm_version=version)


def list_patients(search: str = ""):
    return _list_patients(store_key(), current_actor(), search, analyzer.ALGORITHM_VERSION, revision())


@st.cache_data(ttl=_TTL, show_spinner=False)
def _patient(key: str, actor: Actor, patient_id: int, rev: int):
    return get_store().patient(actor, patient_id)


def patient(patient_id: int):
    return _patient(store_key(), current_actor(), patient_id, revision())


@st.cache_data(ttl=_TTL, show_spinner=False)
def _progress(key: str, actor: Actor, patient_id: int, region: str, version: str, rev: int):
    return get_store().progress(actor, patient_id, region, algorithm_version=version)


def progress(patient_id: int, region: str):
    """``store.progress`` (two queries), cached per patient, region, version and data revision."""
    return _progress(store_key(), current_actor(), patient_id, region, analyzer.ALGORITHM_VERSION, revision())


@st.cache_data(ttl=_TTL, show_spinner=False)
def _recomputed(key: str, actor: Actor, patient_id: int, region: str, version: str, rev: int):
    store = get_store()
    points = store.progress(actor, patient_id, region, algorithm_version=version)
    return visits.recomputed(store, actor, patient_id, region, points, version=version)


def recomputed(patient_id: int, region: str) -> tuple[str | None, str, list[dict]]:
    """``(earlier, current, changes)``: :func:`relief_app.visits.recomputed` for the installed algorithm version
    (``current``), cached per data revision; ``(None, current, [])`` when no earlier version computed the region."""
    current = analyzer.ALGORITHM_VERSION
    earlier, moved = _recomputed(store_key(), current_actor(), patient_id, region, current, revision())
    return earlier, current, moved


@st.cache_data(ttl=_TTL, show_spinner=False)
def _treatments(key: str, actor: Actor, patient_id: int, rev: int):
    return get_store().treatments(actor, patient_id)


def treatments(patient_id: int):
    return _treatments(store_key(), current_actor(), patient_id, revision())


@st.cache_data(ttl=_TTL, show_spinner=False)
def _visits(key: str, actor: Actor, patient_id: int, rev: int):
    return get_store().visits(actor, patient_id)


def visits_of(patient_id: int):
    return _visits(store_key(), current_actor(), patient_id, revision())


@st.cache_data(ttl=_TTL, show_spinner=False)
def _regions(key: str, actor: Actor, patient_id: int, rev: int):
    return get_store().regions(actor, patient_id)


def regions(patient_id: int) -> list[str]:
    return _regions(store_key(), current_actor(), patient_id, revision())


@st.cache_data(ttl=_TTL, show_spinner=False)
def _photos(key: str, actor: Actor, patient_id: int, region: str | None, rev: int):
    return get_store().photos(actor, patient_id, region=region)


def photos(patient_id: int, region: str | None = None):
    return _photos(store_key(), current_actor(), patient_id, region, revision())


@st.cache_data(ttl=_TTL, show_spinner=False)
def _baseline(key: str, actor: Actor, patient_id: int, region: str, rev: int):
    return get_store().baseline_photo(actor, patient_id, region)


def baseline_photo(patient_id: int, region: str):
    """The region's baseline photo record (earliest visit), or ``None``."""
    return _baseline(store_key(), current_actor(), patient_id, region, revision())


def standard_regions() -> tuple[str, ...]:
    """The library's standard face regions (patient's left/right), or a fallback list."""
    try:
        from analyzer.regions import REGION_NAMES
    except ImportError:  # pragma: no cover - regions module not present
        REGION_NAMES = ("forehead", "left cheek", "right cheek", "chin", "left temple", "right temple")
    return tuple(REGION_NAMES)


# -------------------------------------------------------------------------------- analyses, pictures
@st.cache_data(show_spinner=False, max_entries=256)
def _analyse(sha: str, filename: str, px_per_mm: float | None, version: str, regions_key, _data: bytes):
    regions = regions_key if isinstance(regions_key, str) else ({n: box for n, box in regions_key}
                                                                 if regions_key else None)
    return visits.analyse_photo(_data, filename, px_per_mm=px_per_mm, regions=regions)


def analyse_upload(data: bytes, filename: str, px_per_mm: float | None = None,
                   regions=None) -> visits.PhotoAnalysis:
    """:func:`relief_app.visits.analyse_photo`, cached by the file's SHA-256, scale, regions and algorithm version.

    ``regions``: ``None``, ``"face"`` or ``{name: (x, y, w, h)}`` in the photo's pixels.
    """
    if isinstance(regions, str) or not regions:
        key = regions or None
    else:
        key = tuple((str(n), tuple(int(v) for v in box)) for n, box in dict(regions).items())
    return _analyse(visits.sha256(data), filename, px_per_mm or None, analyzer.ALGORITHM_VERSION, key, data)


@st.cache_data(show_spinner=False, max_entries=512)
def _thumb_bytes(sha: str, max_side: int, _data: bytes):
    return images.thumbnail(_data, max_side=max_side)


def thumbnail_of_bytes(data: bytes, max_side: int = 640):
    return _thumb_bytes(visits.sha256(data), max_side, data)


@st.cache_data(show_spinner=False, max_entries=512)
def _thumb_photo(key: str, sha: str, max_side: int, _actor: Actor, _patient_id: int, _photo_id: int):
    return images.thumbnail(get_store().photo_bytes(_actor, _patient_id, _photo_id), max_side=max_side)


def thumbnail(photo, max_side: int = 640):
    """Preview (uint8 RGB) of a stored photo record, cached by its SHA-256.

    Storage checks the actor's access on every call (a cheap read); only then is the cached picture used, so the
    cache, shared by all sessions, never hands a picture to an actor who may not see the photo.
    """
    actor = current_actor()
    rec = get_store().photo(actor, photo.patient_id, photo.id)  # the access check, every time
    return _thumb_photo(store_key(), rec.sha256, max_side, actor, rec.patient_id, rec.id)


@st.cache_data(show_spinner=False, max_entries=32)
def _compare_views(key: str, sha_a: str, sha_b: str, version: str, stores: bool, _actor: Actor, patient_id: int,
                   a: int, b: int):
    # Keyed by the photo records too, not only their bytes: the result depends on each record (its patient's
    # regions and typed scale, the comparison stored for it). Two patients — of one clinic or of two — holding
    # identical files got the first one's result, with the regions named at the other clinic. ``stores``: whether
    # this actor's computation is stored (a viewer's is not), so a practitioner's call after a viewer's stores it.
    out = visits.compare_views(get_store(), _actor, patient_id, a, b)
    if stores:
        bump()  # the comparison may have been stored just now
    return out


def compare_views(patient_id: int, baseline, followup) -> dict[str, Any]:
    """Aligned before/after, difference map and numbers of two stored photos (records), cached by the records
    and their hashes (shared across sessions, like :func:`thumbnail`: storage checks the actor's access first, every
    call)."""
    store, actor = get_store(), current_actor()
    a = store.photo(actor, patient_id, baseline.id)
    b = store.photo(actor, patient_id, followup.id)
    return _compare_views(store_key(), a.sha256, b.sha256, analyzer.ALGORITHM_VERSION, actor.can(WRITE), actor,
                          patient_id, a.id, b.id)


@st.cache_data(ttl=_TTL, show_spinner=False, max_entries=256)
def _region_values(key: str, actor: Actor, sha: str, version: str, rev: int, patient_id: int, photo_id: int):
    m = get_store().get_measurement(actor, patient_id, photo_id, version)  # (keyed by the record, not its bytes)
    return visits.regions_from_metrics(m.metrics) if m is not None else {}


def region_values(patient_id: int, photo) -> dict[str, dict[str, float]]:
    """Per-region numbers stored with a photo's measurement (``{}`` when it was measured as a whole)."""
    return _region_values(store_key(), current_actor(), photo.sha256, analyzer.ALGORITHM_VERSION, revision(),
                          patient_id, photo.id)


def compute_missing(patient_id: int, region: str, points: Sequence) -> list[str]:
    """Measure/compare the visits of a region that have no result for the current algorithm version
    (:func:`relief_app.visits.complete_results`); returns the one-line reasons of those that failed."""
    tried, problems = visits.complete_results(get_store(), current_actor(), patient_id, points)
    if tried:
        bump()
    return problems


# ------------------------------------------------------------------------------------------- writes
def create_patient(name: str, code: str | None = None, notes: str = ""):
    rec = get_store().create_patient(current_actor(), name, code=(code or None), notes=notes)
    bump()
    return rec


def delete_patient(patient_id: int) -> None:
    """Delete the patient with their photo files (audited); then the data revision changes."""
    get_store().delete_patient(current_actor(), patient_id)
    st.session_state.get("_viewed_patients", set()).discard(patient_id)
    bump()


def delete_visit(patient_id: int, visit_id: int) -> None:
    """Delete one visit with its photos, their files and results (audited ``delete_visit``); then the data revision
    changes."""
    get_store().delete_visit(current_actor(), patient_id, visit_id)
    # The New-visit page remembers the photos it saved (to keep them from being saved twice): of this patient, that
    # memory may now name a deleted visit, and the same photos could not be saved again under the right date.
    ss = st.session_state
    for key in ("saved_uploads", "saved_photos"):
        if isinstance(ss.get(key), dict):
            ss[key] = {k: v for k, v in ss[key].items() if k[0] != patient_id}
    last = ss.get("last_save")
    if last is not None and getattr(getattr(last, "visit", None), "patient_id", None) == patient_id:
        ss["last_save"] = None
    bump()


def update_patient(patient_id: int, **fields):
    rec = get_store().update_patient(current_actor(), patient_id, **fields)
    bump()
    return rec


def save_visit(patient_id: int, *, date: dt.date, region: str, uploads: Sequence[tuple[bytes, str]],
               analyses: Mapping[str, visits.PhotoAnalysis] | None = None, treatment=None, notes: str = "",
               px_per_mm: float | None = None) -> visits.SavedVisit:
    """:func:`relief_app.visits.save_new_visit` on the app's store; bumps the data revision."""
    try:
        return visits.save_new_visit(get_store(), current_actor(), patient_id, date=date, region=region,
                                     uploads=uploads, analyses=analyses, treatment=treatment, notes=notes,
                                     px_per_mm=px_per_mm)
    finally:
        bump()


def open_patient(patient_id: int):
    """The patient, audited as viewed (``view_patient``) once per selection in this browser session."""
    seen = st.session_state.setdefault("_viewed_patients", set())
    rec = get_store().open_patient(current_actor(), patient_id) if patient_id not in seen else patient(patient_id)
    seen.add(patient_id)
    return rec


def consent_status(patient_id: int):
    return get_store().consents.status(current_actor(), patient_id)


def record_consent(patient_id: int, kind: str, *, granted: bool, date: dt.date | None = None):
    out = get_store().consents.record(current_actor(), patient_id, kind, granted=granted, date=date)
    bump()
    return out


def issue_link(patient_id: int, *, expires_at=None):
    return get_store().links.issue(current_actor(), patient_id, expires_at=expires_at)


def links_of(patient_id: int):
    return get_store().links.list(current_actor(), patient_id)


def revoke_link(patient_id: int, link_id: int):
    return get_store().links.revoke(current_actor(), patient_id, link_id)


def can(right: str) -> bool:
    """Whether the signed-in actor holds ``right`` (``"read"``, ``"write"``, ``"admin"``) — for hiding
    buttons only; storage enforces it whatever a page shows."""
    a = st.session_state.get("actor")
    return isinstance(a, Actor) and a.can(right)


# ----------------------------------------------------------------------------------- accounts and audit
def accounts():
    return get_store().accounts.list(current_actor())


def add_account(username: str, *, role: str, password: str | None, email: str | None = None):
    """A new account in the admin's clinic; it must change the password at its first sign-in. Without a
    password (``None``) it signs in only through single sign-on, with ``email``."""
    return get_store().accounts.add(current_actor(), username, role=role, password=password, email=email,
                                    must_change_password=password is not None)


def remove_account_password(username: str, *, revoke_links: bool = False):
    """Make an account of the admin's clinic single sign-on only (its password is deleted, its sessions end);
    ``revoke_links``: the patient links it issued too."""
    return get_store().accounts.remove_password(current_actor(), username, revoke_links=revoke_links)


def open_links_of(username: str) -> int:
    """How many patient links an account of the admin's clinic issued that are still open."""
    return get_store().accounts.open_links(current_actor(), username)


def set_account_disabled(username: str, disabled: bool):
    return get_store().accounts.set_disabled(current_actor(), username, disabled)


def reset_account_password(username: str, password: str, *, revoke_links: bool = False):
    """A one-time password for an account of the admin's clinic. The account's sessions end (its password
    changed); when admins reset their own, this session goes on and asks them to choose a new one.
    ``revoke_links``: the patient links it issued end too (the old password may have been stolen)."""
    store, actor = get_store(), current_actor()
    rec = store.accounts.reset_password(actor, username, password, must_change=True, revoke_links=revoke_links)
    if rec.id == actor.account_id:
        st.session_state["session_stamp"] = store.accounts.actor(actor.account_id).credential_stamp
    return rec


def audit_events(**filters):
    return get_store().audit.events(current_actor(), **filters)


# ------------------------------------------------------------------------------------- reports and exports
def clinic_state() -> str:
    """A fingerprint of the clinic's patient list as the Patients page shows it (visits, latest changes) and of its
    consent decisions (who may be in a de-identified export): a clinic export prepared under another one is out of
    date and not offered."""
    consents = get_store().consents.last_change(current_actor())
    return hashlib.sha256(repr((list_patients(), consents, analyzer.ALGORITHM_VERSION)).encode()).hexdigest()


def patient_state(patient_id: int) -> str:
    """A fingerprint of what a patient's report and export show (the record, visits and photos, treatments, the
    algorithm version): a report or export prepared under another fingerprint is out of date and not offered."""
    state = (patient(patient_id), visits_of(patient_id), treatments(patient_id), analyzer.ALGORITHM_VERSION)
    return hashlib.sha256(repr(state).encode()).hexdigest()


def report_pdf(patient_id: int, *, region: str | None = None, paper: str = "A4") -> bytes:
    """The patient's PDF progress report, from the same reads as the command line; audited as ``report``."""
    from . import report, reportdata

    store, actor = get_store(), current_actor()
    data = reportdata.gather_report(store, actor, patient_id, region=region,
                                    clinic=os.environ.get("RELIEF_CLINIC_NAME", ""))
    pdf = report.render_pdf(data, paper=paper)
    store.audit.log(actor, "report", patient_id=patient_id, detail=f"dashboard, {paper}")
    bump()  # missing results may have been computed
    return pdf


def export_zip(*, patient_id: int | None = None, deidentify: bool = False) -> bytes:
    """The data export (CSV + XLSX) as a ZIP; de-identified exports hold only patients with teaching/marketing
    consent who have not withdrawn consent to clinical photography. Audited as ``export``."""
    return _export(patient_id, deidentify)[0]


def clinic_export(*, deidentify: bool) -> tuple[bytes, tuple[int, int]]:
    """The export of every patient of the clinic, with ``(included, left_out)``: how many patients it holds and how
    many a de-identified export left out for lack of consent to teaching and marketing use, or a withdrawn consent
    to clinical photography (:func:`relief_app.reportdata.gather_export`)."""
    out, n = _export(None, deidentify)
    return out, (n, len(list_patients()) - n)


def _export(patient_id: int | None, deidentify: bool) -> tuple[bytes, int]:
    from . import export, reportdata

    store, actor = get_store(), current_actor()
    data = reportdata.gather_export(store, actor, patient_id=patient_id, teaching=deidentify)
    key = export.pseudonym_key(store.data_dir) if deidentify else None
    out = export.zip_export(data, deidentify=deidentify, key=key)
    detail = f"dashboard, {len(data.patients)} patient(s)" + (", de-identified" if deidentify else "")
    reportdata.log_export(store, actor, data, patient_id=patient_id, detail=detail)
    return out, len(data.patients)
