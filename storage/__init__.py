"""Relief's storage: patients, visits, photos and the library's results, kept safely.

No Streamlit and no analysis here — the storage keeps what :mod:`analyzer` computes. The dashboard talks
to it only through :class:`Store`; every method takes the acting :class:`Actor` first (an account signed in
through ``store.accounts``, a patient link opened through ``store.links``, or ``Actor.system`` for the server's
command line) and is scoped by the actor's clinic and role in the query itself (:mod:`storage.access`).

Where things live
-----------------
* Database: SQLite ``$RELIEF_DATA_DIR/relief.db`` (``RELIEF_DATA_DIR`` defaults to ``./data``), or
  PostgreSQL when ``RELIEF_DATABASE_URL`` is set (``postgresql+psycopg://user@host:5432/db``).
  The schema is created and upgraded by Alembic (``storage/migrations``) whenever :func:`open_store` runs.
* Photos: ``$RELIEF_DATA_DIR/photos/ab/<sha256>.<ext>`` — content-addressed, written atomically,
  never overwritten; identical bytes are stored once. Temporary ``.tmp-*`` files are never listed.
  Metadata (GPS, serials, thumbnails, ...) is stripped on the way in (:mod:`storage.photo_privacy`), so
  ``sha256`` is that of the stripped file; with ``RELIEF_ENCRYPTION_KEY`` files are AES-256-GCM encrypted
  as ``ab/<hmac>.enc`` (:mod:`storage.blobs`) and ``photo_path`` refuses (use ``photo_bytes``).

Service API
-----------
::

    store = open_store(data_dir=None, url=None)           # -> Store (reads the env when None); migrates

    # patients
    store.create_patient(actor, name, *, code=None, birth_date=None, notes="") -> PatientRecord
    store.update_patient(actor, patient_id, **fields)            # name, code, birth_date, notes -> PatientRecord
    store.patient(actor, patient_id) -> PatientRecord
    store.list_patients(actor, search="", *, algorithm_version=None) -> list[PatientSummary]
        # name/code contains search; with visit counts and the latest change vs baseline (2 queries)
    store.delete_patient(actor, patient_id)                      # everything, photo files included

    # treatments
    store.add_treatment(actor, patient_id, date, *, procedure="micro-needling", needle_depth_mm=None,
                        area="", notes="") -> TreatmentRecord
    store.treatments(actor, patient_id) -> list[TreatmentRecord]

    # visits and photos
    store.save_visit(actor, patient_id, *, date, notes="", photos=[NewPhoto(...)], treatment=None,
                     analyse=None) -> VisitRecord         # all or nothing
    store.visits(actor, patient_id) -> list[VisitRecord]         # with photos, oldest first
    store.visit(actor, patient_id, visit_id) -> VisitRecord
    store.delete_visit(actor, patient_id, visit_id)
    store.photos(actor, patient_id, *, region=None) -> list[PhotoRecord]
    store.photo(actor, patient_id, photo_id) -> PhotoRecord
    store.photo_bytes(actor, patient_id, photo_id) -> bytes      # verified against the SHA-256
    store.photo_path(actor, patient_id, photo_id) -> Path        # read-only
    store.regions(actor, patient_id) -> list[str]
    store.baseline_photo(actor, patient_id, region) -> PhotoRecord | None   # earliest visit's photo

    # results (caches keyed by algorithm version)
    store.get_measurement(actor, patient_id, photo_id, algorithm_version) -> MeasurementRecord | None
    store.save_measurement(actor, patient_id, photo_id, algorithm_version, *, roughness_index, metrics,
                           scars=(), px_per_mm=None, scale_source="", quality=None) -> MeasurementRecord
    store.measurement_for(actor, patient_id, photo_id, algorithm_version, compute) -> MeasurementRecord
        # compute() -> NewMeasurement | dict, called only when (photo, version) is not stored yet
    store.get_comparison(actor, patient_id, baseline_photo_id, followup_photo_id, algorithm_version)
        -> ComparisonRecord | None
    store.save_comparison(actor, patient_id, baseline_photo_id, followup_photo_id, algorithm_version, *,
                          change_pct, ci_low, ci_high, mdc_pct, significant, result=None)
    store.comparison_for(actor, patient_id, baseline_photo_id, followup_photo_id, algorithm_version, compute)
    store.progress(actor, patient_id, region, *, algorithm_version=None) -> list[ProgressPoint]  # 3 queries
    store.result_versions(actor, patient_id, region) -> list[str]  # versions with stored comparisons, newest first

    # the acting account, and the aggregates beside the patient data
    actor = store.accounts.sign_in(username, password)    # -> Actor (or SignInFailed, one message for all)
    store.accounts.add(actor, name, role=..., password=..., clinic=None) / list / set_disabled / reset_password
    store.open_patient(actor, patient_id)                 # patient(), audited as view_patient
    store.consents.record(actor, patient_id, "clinical"|"marketing", granted=True, date=None) / status(...)
    token, link = store.links.issue(actor, patient_id, expires_at=None)   # default: end of today
    link_actor = store.links.open(token)                  # read-only, one patient; audited link_used
    store.links.revoke(actor, patient_id, link_id) / list(actor, patient_id)
    store.audit.events(actor, since=None, action=None, ...)  # admins: their clinic; append-only
    store.audit.log(actor, "export", patient_id=None)     # actions that happen outside storage

    # housekeeping
    store.gc_orphans(*, grace_s=3600) -> list[Path]      # photo files no row refers to, stale .tmp-*
    store.close()                                         # or: with open_store() as store: ...

Decisions
---------
* **Records, not ORM objects.** Every method returns frozen dataclasses from :mod:`storage.records`;
  no session leaks. NaN results come back as ``float('nan')`` (stored as SQL NULL / JSON null).
* **Scoping.** An id of another patient or clinic raises :class:`NotFound`, the same as a missing id; a role
  without the right raises :class:`AccessDenied` (only for records the actor can see).
* **Consent.** ``save_visit`` with photos raises :class:`ConsentRequired` until clinical consent is in force.
  While it is withdrawn no patient link opens or is issued; recording the withdrawal revokes the open ones.
* **Duplicates.** One photo row per (visit, sha256): uploading the same bytes twice in a visit keeps
  the first. The same bytes in another visit or for another patient get their own row and share one file.
* **Saving a visit** is all-or-nothing: files are written first (atomic, content-addressed), then the
  ``analyse`` callback runs (outside any database lock), then every row (visit, treatment, photos,
  measurements) is inserted in one transaction. Any exception or a crash before the commit leaves no
  rows; a file written before the failure is an orphan that :meth:`Store.gc_orphans` removes.
* **Analysis stays out.** Measurements reach the store either precomputed
  (``NewPhoto(..., measurement=NewMeasurement(...))``, handy for demo seeding and for analysis done
  before saving) or through ``analyse(new_photo) -> NewMeasurement | dict | None``. Later, the dashboard
  uses ``measurement_for``/``comparison_for`` so each (photo, version) is computed once and recomputed
  when ``analyzer.ALGORITHM_VERSION`` changes.

Example
-------
>>> import datetime as dt, tempfile
>>> from storage import open_store, NewPhoto, NewMeasurement
>>> store = open_store(tempfile.mkdtemp(), url=None)  # doctest: +SKIP
>>> actor = store.accounts.clinic_actor("MAIN")  # doctest: +SKIP
>>> p = store.create_patient(actor, "A. Example", code="P-001")  # doctest: +SKIP
>>> png = open("sample_images/cheek.png", "rb").read()  # doctest: +SKIP
>>> store.consents.record(actor, p.id, "clinical", granted=True)  # doctest: +SKIP
>>> v = store.save_visit(actor, p.id, date=dt.date(2025, 1, 6), photos=[  # doctest: +SKIP
...     NewPhoto(png, "cheek.png", "left cheek",
...              measurement=NewMeasurement("1.0.0", roughness_index=4.2, metrics={"roughness_index": 4.2}))],
...     treatment={"needle_depth_mm": 1.5, "area": "cheeks"})
>>> store.progress(actor, p.id, "left cheek", algorithm_version="1.0.0")[0].roughness_index  # doctest: +SKIP
4.2
"""
from .access import Actor
from .errors import AccessDenied, Conflict, ConsentRequired, NotFound, OptionError, SignInFailed, StorageError
from .records import (
    ComparisonRecord,
    MeasurementRecord,
    NewMeasurement,
    NewPhoto,
    PatientRecord,
    PatientSummary,
    PhotoRecord,
    ProgressPoint,
    TreatmentRecord,
    VisitRecord,
)
from .service import Store, open_store
from .results import comparison_caveats
from .fields import text_limit as _text_limit
from . import models as _models

#: Characters each form field holds (its column's length); longer text is refused, never cut.
TEXT_LIMITS = {
    "patient_name": _text_limit(_models.Patient, "name"),
    "patient_code": _text_limit(_models.Patient, "code"),
    "region": _text_limit(_models.Photo, "region"),
    "treatment_area": _text_limit(_models.Treatment, "area"),
    "user_name": _text_limit(_models.Account, "username"),
    "email": _text_limit(_models.Account, "email"),
}

__all__ = [
    "open_store", "Store", "Actor", "TEXT_LIMITS",
    "NewPhoto", "NewMeasurement",
    "PatientRecord", "PatientSummary", "TreatmentRecord", "VisitRecord", "PhotoRecord",
    "MeasurementRecord", "ComparisonRecord", "ProgressPoint", "comparison_caveats",
    "StorageError", "NotFound", "Conflict", "OptionError", "AccessDenied", "SignInFailed", "ConsentRequired",
]
