"""The storage service: the only API the dashboard uses to keep patients, visits, photos and results.

:class:`Store` is the one door. Its patient-data methods live by aggregate — :mod:`storage.patients`,
:mod:`storage.visits` (treatments, visits, photos and their files) and :mod:`storage.results` (measurements,
comparisons, progress) — and the aggregates beside the patient data hang off it as attributes (``store.accounts``,
``store.audit``, ``store.links``, ``store.consents``).

Every public method takes the acting :class:`~storage.access.Actor` first and the ``patient_id`` second, and
reaches the patient only through :func:`storage.access.patient_in_scope` (the actor's clinic, role and — for a
patient link — its one patient are part of the query). An id that belongs to another clinic or patient raises
:class:`~storage.errors.NotFound` exactly like an id that does not exist. Auditable actions write their audit row
in the same transaction (:mod:`storage.audit`).

Transactions are short and all-or-nothing. Slow work (the library's analysis, passed in as callbacks) runs
*outside* database transactions so that no lock is held while a photo is analysed.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import URL
from sqlalchemy.orm import sessionmaker

from . import db
from .accounts import Accounts
from .audit import AuditLog
from .blobs import BlobStore
from .consent import Consents
from .errors import StorageError
from .fields import guard_text
from .links import PatientLinks
from .patients import Patients
from .results import Results
from .visits import Visits

__all__ = ["Store", "open_store"]


def open_store(
    data_dir: str | os.PathLike[str] | None = None, url: str | URL | None = None
) -> Store:
    """Open (and create or migrate) Relief's storage.

    Parameters
    ----------
    data_dir : path-like, optional
        Folder for the SQLite database and the photo files; default ``$RELIEF_DATA_DIR`` or ``./data``.
    url : str, optional
        SQLAlchemy database URL; default ``$RELIEF_DATABASE_URL`` or SQLite ``<data_dir>/relief.db``.
        Photos always live under ``<data_dir>/photos``, also with PostgreSQL.

    Returns
    -------
    Store
        Ready to use; the schema has been brought to the newest migration (``alembic upgrade head``).
    """
    data_dir = db.resolve_data_dir(data_dir)
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # (new folders: the owner only)
    except OSError as err:  # (a file of that name, no permission, ...)
        raise StorageError(f"the data folder {data_dir} cannot be made or used ({err.strerror or err}); give a "
                           "folder Relief may write (--data-dir or RELIEF_DATA_DIR)") from None
    db.make_private(data_dir, data_dir / "photos")  # (and folders from before that rule)
    engine = db.make_engine(db.resolve_url(url, data_dir))
    try:
        db.upgrade(engine)
    except Exception as err:
        engine.dispose()
        why = " ".join(str(getattr(err, "orig", None) or err).split())  # (one line: without SQLAlchemy's link)
        raise StorageError(
            f"the database at {engine.url.render_as_string(hide_password=True)} cannot be opened or "
            f"migrated ({type(err).__name__}: {why}); check RELIEF_DATABASE_URL and that the server runs"
        ) from err
    return Store(engine, data_dir)


def _by(aggregate: str, method: Callable) -> Callable:
    """A :class:`Store` method that calls ``method`` of the store's ``aggregate`` (same signature and docs)."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        return getattr(getattr(self, aggregate), method.__name__)(*args, **kwargs)

    return call


class Store:
    """Patients, treatments, visits, photos, measurements and comparisons.

    Create it with :func:`open_store`. Thread-safe (one engine, a new session per call); close it with
    :meth:`close` or use it as a context manager.
    """

    def __init__(self, engine: Engine, data_dir: str | os.PathLike[str]):
        self.engine = engine
        self.data_dir = Path(data_dir)
        self.blobs = BlobStore(self.data_dir / "photos")
        # The store's "now" travels with its sessions: storage.access checks links' expiry by the same clock as
        # storage.links (tests move it).
        self._sessions = sessionmaker(engine, expire_on_commit=False, info={"clock": lambda: self.links.clock()})
        guard_text(self._sessions)  # text that does not fit its column is refused alike on every database
        #: Aggregates beside the patient data, sharing the engine: accounts and sign-in, the audit log,
        #: patient links, consent.
        self.accounts = Accounts(self._sessions)
        self.audit = AuditLog(self._sessions)
        self.links = PatientLinks(self._sessions)
        self.consents = Consents(self._sessions, clock=lambda: self.links.clock())  # (one "now" for links)
        #: The patient data, by aggregate (the methods below call them).
        self._patients = Patients(self._sessions, self.blobs)
        self._visits = Visits(self._sessions, self.blobs)
        self._results = Results(self._sessions, self.blobs)

    # ------------------------------------------------------------------------------------- plumbing
    def close(self) -> None:
        """Release database connections."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store(url={self.engine.url.render_as_string(hide_password=True)!r}, data_dir={str(self.data_dir)!r})"

    # patients (storage.patients)
    create_patient = _by("_patients", Patients.create_patient)
    update_patient = _by("_patients", Patients.update_patient)
    patient = _by("_patients", Patients.patient)
    open_patient = _by("_patients", Patients.open_patient)
    list_patients = _by("_patients", Patients.list_patients)
    delete_patient = _by("_patients", Patients.delete_patient)

    # treatments, visits, photos and their files (storage.visits)
    add_treatment = _by("_visits", Visits.add_treatment)
    treatments = _by("_visits", Visits.treatments)
    save_visit = _by("_visits", Visits.save_visit)
    visits = _by("_visits", Visits.visits)
    visit = _by("_visits", Visits.visit)
    delete_visit = _by("_visits", Visits.delete_visit)
    photos = _by("_visits", Visits.photos)
    photo = _by("_visits", Visits.photo)
    photo_path = _by("_visits", Visits.photo_path)
    photo_bytes = _by("_visits", Visits.photo_bytes)
    regions = _by("_visits", Visits.regions)
    baseline_photo = _by("_visits", Visits.baseline_photo)
    gc_orphans = _by("_visits", Visits.gc_orphans)

    # measurements, comparisons, progress (storage.results)
    get_measurement = _by("_results", Results.get_measurement)
    save_measurement = _by("_results", Results.save_measurement)
    measurement_for = _by("_results", Results.measurement_for)
    get_comparison = _by("_results", Results.get_comparison)
    save_comparison = _by("_results", Results.save_comparison)
    comparison_for = _by("_results", Results.comparison_for)
    progress = _by("_results", Results.progress)
    result_versions = _by("_results", Results.result_versions)
