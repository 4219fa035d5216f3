"""The storage service: the only API the dashboard uses to keep patients, visits, photos and results.

Every public method takes the acting :class:`~storage.access.Actor` first and the ``patient_id`` second, and
reaches the patient only through :func:`storage.access.patient_in_scope` (the actor's clinic, role and — for a
patient link — its one patient are part of the query). An id that belongs to another clinic or patient raises
:class:`~storage.errors.NotFound` exactly like an id that does not exist. Auditable actions write their audit row
in the same transaction (:mod:`storage.audit`).

Transactions are short and all-or-nothing. Slow work (the library's analysis, passed in as callbacks) runs
*outside* database transactions so that no lock is held while a photo is analysed.
"""
from __future__ import annotations

import datetime as dt
import functools
import io
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, case, delete, func, or_, select, union_all
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from . import audit, consent, db
from .access import READ, WRITE, Actor, patient_in_scope, patients_in_scope, require
from .accounts import Accounts
from .audit import AuditLog
from .blobs import BlobStore
from .consent import Consents
from .errors import Conflict, ConsentRequired, NotFound, OptionError, StorageError
from .fields import check_text, guard_text
from .links import PatientLinks
from .photo_privacy import PhotoFormatError
from .models import AuditEvent, Comparison, Measurement, Patient, Photo, Treatment, Visit, as_utc, utcnow
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

__all__ = ["Store", "open_store"]

Analyse = Callable[[NewPhoto], "NewMeasurement | Mapping[str, Any] | None"]

_PATIENT_FIELDS = ("name", "code", "birth_date", "notes")
_TREATMENT_FIELDS = ("date", "procedure", "needle_depth_mm", "area", "notes")
_MEASUREMENT_FIELDS = (
    "algorithm_version", "roughness_index", "metrics", "scars", "px_per_mm", "scale_source", "quality",
)
_COMPARISON_FIELDS = ("change_pct", "ci_low", "ci_high", "mdc_pct", "significant", "result")


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
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = db.make_engine(db.resolve_url(url, data_dir))
    try:
        db.upgrade(engine)
    except Exception as err:
        engine.dispose()
        raise StorageError(
            f"the database at {engine.url.render_as_string(hide_password=True)} cannot be opened or "
            f"migrated ({type(err).__name__}: {err}); check RELIEF_DATABASE_URL and that the server runs"
        ) from err
    return Store(engine, data_dir)


def _unused_patient_id():
    """SQL for a patient id never given before (a scalar subquery, evaluated inside the INSERT).

    SQLite hands out max(id) + 1, so a deleted patient's id would come back (PostgreSQL's sequences never reuse
    one): the audit log would then tell the deleted patient's history as the new one's, and a page still holding
    the old id would show the new patient. Every patient ever created has a ``create_patient`` row in the
    append-only audit log, so one past the largest id seen there is free. Computed by the INSERT statement
    itself, not read beforehand: a read first would make the transaction fail when another write commits in
    between (SQLite refuses to upgrade a stale snapshot), where one statement waits its turn like any insert.
    """
    seen = union_all(select(func.max(Patient.id).label("m")), select(func.max(AuditEvent.patient_id).label("m")))
    return select(func.coalesce(func.max(seen.subquery().c.m), 0) + 1).scalar_subquery()


class Store:
    """Patients, treatments, visits, photos, measurements and comparisons.

    Create it with :func:`open_store`. Thread-safe (one engine, a new session per call); close it with
    :meth:`close` or use it as a context manager.
    """

    def __init__(self, engine: Engine, data_dir: str | os.PathLike[str]):
        self.engine = engine
        self.data_dir = Path(data_dir)
        self.blobs = BlobStore(self.data_dir / "photos")
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        guard_text(self._sessions)  # text that does not fit its column is refused alike on every database
        #: Aggregates beside the patient data, sharing the engine: accounts and sign-in, the audit log,
        #: patient links, consent.
        self.accounts = Accounts(self._sessions)
        self.audit = AuditLog(self._sessions)
        self.links = PatientLinks(self._sessions)
        self.consents = Consents(self._sessions)

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

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        """One all-or-nothing transaction: committed on success, rolled back on any exception."""
        with self._sessions() as session, session.begin():
            yield session

    # ------------------------------------------------------------------------------------- patients
    def create_patient(
        self,
        actor: Actor,
        name: str,
        *,
        code: str | None = None,
        birth_date: dt.date | str | None = None,
        notes: str = "",
    ) -> PatientRecord:
        """Add a patient. ``code`` is the clinic's own reference and must be unique when given."""
        require(actor, WRITE)
        values = _patient_values(name=name, code=code, birth_date=birth_date, notes=notes)
        if actor.clinic_id is None:
            raise OptionError("a patient belongs to a clinic; act within one (--clinic CODE)")
        try:
            with self._tx() as s:
                p = Patient(**values, clinic_id=actor.clinic_id, created_at=utcnow())
                if s.get_bind().dialect.name == "sqlite":
                    p.id = _unused_patient_id()
                s.add(p)
                s.flush()
                audit.record(s, actor, "create_patient", patient_id=p.id)
                return _patient_rec(p)
        except IntegrityError as err:
            raise _code_conflict(values["code"]) from err

    def update_patient(self, actor: Actor, patient_id: int, **fields: Any) -> PatientRecord:
        """Change any of ``name``, ``code``, ``birth_date``, ``notes``; returns the updated record."""
        unknown = set(fields) - set(_PATIENT_FIELDS)
        if unknown:
            raise OptionError(
                f"cannot update {', '.join(sorted(unknown))}; a patient has only {', '.join(_PATIENT_FIELDS)}"
            )
        values = _patient_values(**fields)
        try:
            with self._tx() as s:
                p = patient_in_scope(s, actor, patient_id, WRITE)
                for k, v in values.items():
                    setattr(p, k, v)
                s.flush()
                audit.record(s, actor, "edit_patient", patient_id=p.id, detail=", ".join(sorted(values)))
                return _patient_rec(p)
        except IntegrityError as err:
            raise _code_conflict(values.get("code")) from err

    def patient(self, actor: Actor, patient_id: int) -> PatientRecord:
        with self._tx() as s:
            return _patient_rec(patient_in_scope(s, actor, patient_id))

    def open_patient(self, actor: Actor, patient_id: int) -> PatientRecord:
        """:meth:`patient`, recorded in the audit log as ``view_patient`` (call it once when a patient is
        opened, not on every redraw)."""
        with self._tx() as s:
            p = patient_in_scope(s, actor, patient_id)
            audit.record(s, actor, "view_patient", patient_id=p.id)
            return _patient_rec(p)

    def list_patients(
        self, actor: Actor, search: str = "", *, algorithm_version: str | None = None
    ) -> list[PatientSummary]:
        """The actor's clinic's patients whose name or code contains ``search`` (case-insensitive), by name.

        Each summary carries visit counts and the latest stored change vs baseline (the comparison, for
        ``algorithm_version`` — default the library's current one — whose follow-up visit is the most
        recent, against the region's true baseline). Two queries, whatever the number of patients.
        """
        version = algorithm_version or _current_version()
        require(actor)
        with self._tx() as s:
            q = (
                select(
                    Patient,
                    func.count(Visit.id),
                    func.min(Visit.date),
                    func.max(Visit.date),
                )
                .outerjoin(Visit, Visit.patient_id == Patient.id)
                .where(patients_in_scope(actor))
                .group_by(Patient.id)
                .order_by(func.lower(Patient.name), Patient.id)
            )
            if search.strip():
                pattern = "%" + _escape_like(search.strip().lower()) + "%"
                q = q.where(
                    or_(
                        func.lower(Patient.name).like(pattern, escape="\\"),
                        func.lower(func.coalesce(Patient.code, "")).like(pattern, escape="\\"),
                    )
                )
            rows = s.execute(q).all()
            latest = self._latest_changes(s, [p.id for p, *_ in rows], version) if rows else {}
            out = []
            for p, n, first, last in rows:
                c = latest.get(p.id)
                out.append(
                    PatientSummary(
                        id=p.id, name=p.name, code=p.code, birth_date=p.birth_date,
                        n_visits=int(n), first_visit=first, last_visit=last,
                        **(c or {}),
                    )
                )
            return out

    @staticmethod
    def _latest_changes(s: Session, patient_ids: list[int], version: str) -> dict[int, dict[str, Any]]:
        fu_visit = Visit.__table__.alias("fu_visit")
        bv = Visit.__table__.alias("bv")
        # Only comparisons of the photos that count: the region's baseline (correlated to the comparison row)
        # with the photo that counts for the follow-up's visit (the rule of progress and baseline_photo).
        base_counting = _counting_photos(Photo.patient_id == Comparison.patient_id,
                                         Photo.region == Comparison.region, correlate=Comparison)
        true_baseline = (
            select(base_counting.c.photo_id)
            .join(bv, bv.c.id == base_counting.c.visit_id)
            .where(~base_counting.c.unmeasurable)
            .order_by(bv.c.date, bv.c.id)
            .limit(1)
            .correlate(Comparison)
            .scalar_subquery()
        )
        fu_counting = _counting_photos(Photo.patient_id.in_(patient_ids))
        rank = (
            func.row_number()
            .over(partition_by=Comparison.patient_id, order_by=(fu_visit.c.date.desc(), Comparison.id.desc()))
            .label("rank")
        )
        inner = (
            select(
                Comparison.patient_id, Comparison.region, fu_visit.c.date.label("date"),
                Comparison.change_pct, Comparison.ci_low, Comparison.ci_high, Comparison.significant, rank,
            )
            .join(fu_counting, fu_counting.c.photo_id == Comparison.followup_photo_id)
            .join(fu_visit, fu_visit.c.id == fu_counting.c.visit_id)
            .where(
                Comparison.patient_id.in_(patient_ids),
                Comparison.algorithm_version == version,
                Comparison.baseline_photo_id == true_baseline,
            )
            .subquery()
        )
        out = {}
        for r in s.execute(select(inner).where(inner.c.rank == 1)).all():
            out[r.patient_id] = dict(
                change_region=r.region, change_date=r.date, change_pct=_nan(r.change_pct),
                change_ci_low=_nan(r.ci_low), change_ci_high=_nan(r.ci_high),
                change_significant=bool(r.significant),
            )
        return out

    def delete_patient(self, actor: Actor, patient_id: int) -> None:
        """Delete a patient with all their treatments, visits, photos and results, and their photo files
        (a file shared with another patient's identical upload stays)."""
        with self._tx() as s:
            p = patient_in_scope(s, actor, patient_id, WRITE)
            files = {(r.sha256, r.content_type) for r in s.execute(
                select(Photo.sha256, Photo.content_type).where(Photo.patient_id == p.id))}
            s.execute(delete(Patient).where(Patient.id == p.id))
            audit.record(s, actor, "delete_patient", patient_id=p.id)
        self._remove_unreferenced(files)

    # ----------------------------------------------------------------------------------- treatments
    def add_treatment(
        self,
        actor: Actor,
        patient_id: int,
        date: dt.date | str,
        *,
        procedure: str = "micro-needling",
        needle_depth_mm: float | None = None,
        area: str = "",
        notes: str = "",
    ) -> TreatmentRecord:
        """Record a treatment session (e.g. micro-needling at 1.5 mm on both cheeks)."""
        with self._tx() as s:
            patient_in_scope(s, actor, patient_id, WRITE)
            t = Treatment(
                patient_id=patient_id, created_at=utcnow(),
                **_treatment_values(date=date, procedure=procedure, needle_depth_mm=needle_depth_mm,
                                    area=area, notes=notes),
            )
            s.add(t)
            s.flush()
            audit.record(s, actor, "add_treatment", patient_id=t.patient_id)
            return _treatment_rec(t)

    def treatments(self, actor: Actor, patient_id: int) -> list[TreatmentRecord]:
        """The patient's treatments, oldest first."""
        with self._tx() as s:
            patient_in_scope(s, actor, patient_id)
            ts = s.scalars(
                select(Treatment).where(Treatment.patient_id == patient_id).order_by(Treatment.date, Treatment.id)
            )
            return [_treatment_rec(t) for t in ts]

    # --------------------------------------------------------------------------------------- visits
    def save_visit(
        self,
        actor: Actor,
        patient_id: int,
        *,
        date: dt.date | str,
        notes: str = "",
        photos: Sequence[NewPhoto] = (),
        treatment: Mapping[str, Any] | None = None,
        analyse: Analyse | None = None,
    ) -> VisitRecord:
        """Save a photo session with its photos, their measurements and optionally a treatment — all or
        nothing.

        Parameters
        ----------
        patient_id : int
        date : datetime.date or ISO string
            Day of the visit (explicit, so past visits can be entered and demo data seeded).
        notes : str
        photos : sequence of NewPhoto
            Identical bytes within one visit are saved once (one row per (visit, sha256); the first
            occurrence's region and file name are kept).
        treatment : dict, optional
            A treatment given at this visit: keys of :meth:`add_treatment` (``procedure``,
            ``needle_depth_mm``, ``area``, ``notes``; ``date`` defaults to the visit's date).
        analyse : callable, optional
            ``analyse(new_photo) -> NewMeasurement | dict | None`` for photos that carry no precomputed
            ``measurement``. Called after the files are written and before the database transaction, so no
            lock is held while it runs; if it raises, nothing is saved and the exception propagates.

        Returns
        -------
        VisitRecord
            With its photos.

        Notes
        -----
        Order: (1) check inputs (text that does not fit its column is refused here, before any file),
        (2) write photo files (content-addressed, atomic), (3) run ``analyse``, (4) insert every row in one
        transaction and commit. A failure before the commit leaves no rows, and the files this call wrote are
        removed again; a crash (the process killed) may leave files no row refers to, which
        :meth:`gc_orphans` removes (the dashboard runs it when it starts).
        """
        visit_date = _to_date(date, "visit date")
        tx_values = None
        if treatment is not None:
            unknown = set(treatment) - set(_TREATMENT_FIELDS)
            if unknown:
                raise OptionError(
                    f"unknown treatment field {', '.join(sorted(unknown))}; use {', '.join(_TREATMENT_FIELDS)}"
                )
            tx_values = _treatment_values(**{"date": visit_date, **treatment})
        for i, ph in enumerate(photos):
            if not isinstance(ph, NewPhoto):
                raise OptionError(
                    f"photo {i + 1} is a {type(ph).__name__}; pass storage.NewPhoto(data, filename, region)"
                )
            if not ph.data:
                raise OptionError(f"photo {ph.filename or i + 1!s} is empty; upload the file again")
            if not str(ph.region).strip():
                raise OptionError(f"photo {ph.filename or i + 1!s} has no region; choose the face region it shows")
            check_text(Photo, region=str(ph.region).strip(), filename=_stored_filename(ph))
        check_text(Visit, notes=str(notes or ""))
        if tx_values is not None:
            check_text(Treatment, **tx_values)
        with self._tx() as s:  # fail early (before writing files): no such patient, no right, no consent
            patient_in_scope(s, actor, patient_id, WRITE)
            _require_clinical_consent(s, patient_id, photos, visit_date)

        # (2) files first: a crash after this point leaves only content-addressed orphans; a failure removes
        # the files this call wrote (those no row uses).
        stored: dict[str, tuple[NewPhoto, str, tuple[int | None, int | None]]] = {}
        created: set[tuple[str, str]] = set()
        try:
            for ph in photos:
                try:  # metadata stripped (and encrypted with a key) inside put; sha is of the stored photo
                    sha, ctype, _path, new = self.blobs.put_new(ph.data)
                except PhotoFormatError as err:
                    raise PhotoFormatError(f"{os.path.basename(str(ph.filename or 'photo'))}: {err}") from None
                if new:
                    created.add((sha, ctype))
                if sha not in stored:
                    stored[sha] = (ph, ctype, _image_size(ph.data))
            return self._save_visit_rows(actor, patient_id, visit_date, notes, tx_values, photos, stored, analyse)
        except BaseException:
            self._remove_unreferenced(created)
            raise

    def _save_visit_rows(self, actor, patient_id, visit_date, notes, tx_values, photos, stored, analyse):
        """Steps (3) and (4) of :meth:`save_visit`."""
        # (3) analysis, outside any transaction.
        measured: dict[str, NewMeasurement | None] = {}
        for sha, (ph, _, _) in stored.items():
            if ph.measurement is not None:
                measured[sha] = _as_new_measurement(ph.measurement)
            elif analyse is not None:
                m = analyse(ph)
                measured[sha] = None if m is None else _as_new_measurement(m)
            else:
                measured[sha] = None
        # (4) one transaction for every row.
        with self._tx() as s:
            patient_in_scope(s, actor, patient_id, WRITE)
            _require_clinical_consent(s, patient_id, photos, visit_date)
            _refuse_saved_again(s, patient_id, stored)
            now = utcnow()
            visit = Visit(patient_id=patient_id, date=visit_date, notes=str(notes or ""), created_at=now)
            s.add(visit)
            if tx_values is not None:
                s.add(Treatment(patient_id=patient_id, created_at=now, **tx_values))
            s.flush()
            rows = []
            for sha, (ph, ctype, (w, h)) in stored.items():
                m = measured[sha]
                photo = Photo(
                    visit_id=visit.id, patient_id=patient_id, region=str(ph.region).strip(), sha256=sha,
                    filename=_stored_filename(ph), content_type=ctype,
                    width=w, height=h, capture=_json(dict(ph.capture or {})),
                    quality=None if m is None or m.quality is None else _json(dict(m.quality)),
                    created_at=now,
                )
                s.add(photo)
                rows.append((photo, m))
            s.flush()
            for photo, m in rows:
                if m is not None:
                    s.add(_measurement_row(patient_id, photo.id, m))
            s.flush()
            audit.record(s, actor, "upload", patient_id=patient_id,
                         detail=f"visit {visit_date.isoformat()}: {len(rows)} photo(s)")
            return _visit_rec(visit, [p for p, _ in rows])

    def visits(self, actor: Actor, patient_id: int) -> list[VisitRecord]:
        """The patient's visits with their photos, oldest first (three queries)."""
        with self._tx() as s:
            patient_in_scope(s, actor, patient_id)
            vs = s.scalars(
                select(Visit)
                .where(Visit.patient_id == patient_id)
                .order_by(Visit.date, Visit.id)
                .options(selectinload(Visit.photos))
            ).all()
            return [_visit_rec(v, v.photos) for v in vs]

    def visit(self, actor: Actor, patient_id: int, visit_id: int) -> VisitRecord:
        with self._tx() as s:
            patient_in_scope(s, actor, patient_id)
            v = s.scalar(
                select(Visit)
                .where(Visit.id == visit_id, Visit.patient_id == patient_id)
                .options(selectinload(Visit.photos))
            )
            if v is None:
                raise NotFound(f"visit {visit_id} is not one of this patient's visits; pick one from the visit list")
            return _visit_rec(v, v.photos)

    def delete_visit(self, actor: Actor, patient_id: int, visit_id: int) -> None:
        """Delete one visit with its photos and results (and photo files no other row uses)."""
        with self._tx() as s:
            patient_in_scope(s, actor, patient_id, WRITE)
            v = s.scalar(select(Visit).where(Visit.id == visit_id, Visit.patient_id == patient_id))
            if v is None:
                raise NotFound(f"visit {visit_id} is not one of this patient's visits; pick one from the visit list")
            files = {(r.sha256, r.content_type) for r in s.execute(
                select(Photo.sha256, Photo.content_type).where(Photo.visit_id == visit_id))}
            s.execute(delete(Visit).where(Visit.id == visit_id))
            audit.record(s, actor, "delete_visit", patient_id=patient_id, detail=f"visit of {v.date.isoformat()}")
        self._remove_unreferenced(files)

    # --------------------------------------------------------------------------------------- photos
    def photos(self, actor: Actor, patient_id: int, *, region: str | None = None) -> list[PhotoRecord]:
        """The patient's photos (optionally of one region), by visit date."""
        with self._tx() as s:
            patient_in_scope(s, actor, patient_id)
            q = (
                select(Photo, Visit.date)
                .join(Visit, Visit.id == Photo.visit_id)
                .where(Photo.patient_id == patient_id)
                .order_by(Visit.date, Visit.id, Photo.id)
            )
            if region is not None:
                q = q.where(Photo.region == region)
            rows = s.execute(q).all()
            return [_photo_rec(p, d) for p, d in rows]

    def photo(self, actor: Actor, patient_id: int, photo_id: int) -> PhotoRecord:
        with self._tx() as s:
            p, d = _get_photo(s, actor, patient_id, photo_id)
            return _photo_rec(p, d)

    def photo_path(self, actor: Actor, patient_id: int, photo_id: int) -> Path:
        """Path of the photo's file (read-only: never write to it); not for encrypted stores (use photo_bytes)."""
        rec = self.photo(actor, patient_id, photo_id)
        if self.blobs.encrypted:
            raise StorageError("photo files are encrypted at rest; read the photo with photo_bytes, not its path")
        path = self.blobs.path(rec.sha256, rec.content_type)
        if not path.is_file():
            raise StorageError(
                f"the file of photo {photo_id} is missing from {self.blobs.root}; restore the photos folder "
                "from a backup"
            )
        return path

    def photo_bytes(self, actor: Actor, patient_id: int, photo_id: int) -> bytes:
        """The photo's bytes as stored (as uploaded minus metadata; decrypted), checked against their SHA-256."""
        rec = self.photo(actor, patient_id, photo_id)
        try:
            return self.blobs.read(rec.sha256, rec.content_type)
        except FileNotFoundError:
            raise StorageError(
                f"the file of photo {photo_id} is missing from {self.blobs.root}; restore the photos folder "
                "from a backup"
            ) from None
        except ValueError as err:
            raise StorageError(f"{err}; restore the photos folder from a backup") from None

    def regions(self, actor: Actor, patient_id: int) -> list[str]:
        """Regions photographed for this patient, alphabetically."""
        with self._tx() as s:
            patient_in_scope(s, actor, patient_id)
            out = list(
                s.scalars(select(Photo.region).where(Photo.patient_id == patient_id).distinct().order_by(Photo.region))
            )
            return out

    def baseline_photo(self, actor: Actor, patient_id: int, region: str) -> PhotoRecord | None:
        """The region's baseline: the photo that counts (:func:`_counting_photos`) of the earliest visit whose
        photo is measurable, or ``None``.

        A photo whose measurements all came out unmeasurable (kept despite failing the quality gate: black,
        blank, all glare) is skipped: it must not become the reference every later visit is compared with.
        """
        with self._tx() as s:
            patient_in_scope(s, actor, patient_id)
            counting = _counting_photos(Photo.patient_id == patient_id, Photo.region == region)
            row = s.execute(
                select(Photo, Visit.date)
                .join(counting, counting.c.photo_id == Photo.id)
                .join(Visit, Visit.id == Photo.visit_id)
                .where(~counting.c.unmeasurable)
                .order_by(Visit.date, Visit.id)
                .limit(1)
            ).first()
            if row is None:
                return None
            return _photo_rec(*row)

    def gc_orphans(self, *, grace_s: float = 3600.0) -> list[Path]:
        """Remove photo files that no row refers to, and leftover ``.tmp-*`` files.

        Only files older than ``grace_s`` seconds are removed, so a save in progress elsewhere (files
        written, rows not yet committed) is safe. Returns the removed paths.
        """
        with self._tx() as s:
            referenced = set(s.scalars(select(Photo.sha256).distinct()))
        return self.blobs.sweep(referenced, grace_s=grace_s)

    def _remove_unreferenced(self, files: set[tuple[str, str]]) -> None:
        """After a delete: remove the files among ``(sha256, content_type)`` that no row uses any more."""
        if not files:
            return
        with self._tx() as s:
            still = set(s.scalars(select(Photo.sha256).where(Photo.sha256.in_({sha for sha, _ in files}))))
        for sha, ctype in files:
            if sha not in still:
                self.blobs.discard(sha, ctype)

    # --------------------------------------------------------------------------------- measurements
    def get_measurement(
        self, actor: Actor, patient_id: int, photo_id: int, algorithm_version: str
    ) -> MeasurementRecord | None:
        """The stored measurement of a photo by one algorithm version, or ``None``."""
        with self._tx() as s:
            patient_in_scope(s, actor, patient_id)
            m = s.scalar(
                select(Measurement).where(
                    Measurement.patient_id == patient_id,
                    Measurement.photo_id == photo_id,
                    Measurement.algorithm_version == algorithm_version,
                )
            )
            if m is None:
                _photo_of(s, patient_id, photo_id)
                return None
            return _measurement_rec(m)

    def save_measurement(
        self,
        actor: Actor,
        patient_id: int,
        photo_id: int,
        algorithm_version: str,
        *,
        roughness_index: float,
        metrics: Mapping[str, Any],
        scars: Sequence[Any] = (),
        px_per_mm: float | None = None,
        scale_source: str = "",
        quality: Mapping[str, Any] | None = None,
    ) -> MeasurementRecord:
        """Store (or replace) the measurement of a photo for one algorithm version; ``quality`` goes on the
        photo."""
        m = _as_new_measurement(dict(
            algorithm_version=algorithm_version, roughness_index=roughness_index, metrics=metrics,
            scars=scars, px_per_mm=px_per_mm, scale_source=scale_source, quality=quality,
        ))
        return self._put_measurement(actor, patient_id, photo_id, m, replace=True)

    def measurement_for(
        self,
        actor: Actor,
        patient_id: int,
        photo_id: int,
        algorithm_version: str,
        compute: Callable[[], NewMeasurement | Mapping[str, Any]],
    ) -> MeasurementRecord:
        """The photo's measurement by ``algorithm_version``, computing and storing it on first use.

        ``compute()`` is called only when none is stored for this (photo, version) — so once per photo, and
        again after the library's version changes. It returns a :class:`NewMeasurement` or a dict with its
        fields (``algorithm_version`` may be left out). It runs outside any transaction; if two processes
        compute at once, the first stored result wins and is returned to both.
        """
        found = self.get_measurement(actor, patient_id, photo_id, algorithm_version)
        if found is not None:
            return found
        m = _as_new_measurement(compute(), default_version=algorithm_version)
        if m.algorithm_version != algorithm_version:
            raise OptionError(
                f"compute() returned a measurement by version {m.algorithm_version!r} where "
                f"{algorithm_version!r} was asked; pass the library's ALGORITHM_VERSION to both"
            )
        return self._put_measurement(actor, patient_id, photo_id, m, replace=False)

    def _put_measurement(
        self, actor: Actor, patient_id: int, photo_id: int, m: NewMeasurement, *, replace: bool
    ) -> MeasurementRecord:
        # Replacing a result is an edit; filling the cache for a new algorithm version is not.
        right = WRITE if replace else READ

        def write(s):
            photo, _ = _get_photo(s, actor, patient_id, photo_id, right)
            row = s.scalar(
                select(Measurement).where(
                    Measurement.photo_id == photo_id, Measurement.algorithm_version == m.algorithm_version
                )
            )
            if row is not None and not replace:
                return _measurement_rec(row)
            if row is None:
                row = _measurement_row(patient_id, photo_id, m)
                s.add(row)
            else:
                _fill_measurement(row, m)
            if m.quality is not None:
                photo.quality = _json(dict(m.quality))
            s.flush()
            return _measurement_rec(row)

        return self._write_unique(write)

    def _write_unique(self, write):
        """Run ``write(session)`` in a transaction, once more if it lost an insert race.

        Measurements and comparisons are unique per (photos, algorithm version). When another writer inserted
        the same row between our read and our insert, the database refuses ours (IntegrityError); the second
        run then finds that row.
        """
        try:
            with self._tx() as s:
                return write(s)
        except IntegrityError:
            with self._tx() as s:
                return write(s)

    # ---------------------------------------------------------------------------------- comparisons
    def get_comparison(
        self, actor: Actor, patient_id: int, baseline_photo_id: int, followup_photo_id: int, algorithm_version: str
    ) -> ComparisonRecord | None:
        """The stored comparison of two photos by one algorithm version, or ``None``."""
        with self._tx() as s:
            patient_in_scope(s, actor, patient_id)
            c = s.scalar(
                select(Comparison).where(
                    Comparison.patient_id == patient_id,
                    Comparison.baseline_photo_id == baseline_photo_id,
                    Comparison.followup_photo_id == followup_photo_id,
                    Comparison.algorithm_version == algorithm_version,
                )
            )
            if c is None:
                _photo_of(s, patient_id, baseline_photo_id)
                _photo_of(s, patient_id, followup_photo_id)
                return None
            return _comparison_rec(c)

    def save_comparison(
        self,
        actor: Actor,
        patient_id: int,
        baseline_photo_id: int,
        followup_photo_id: int,
        algorithm_version: str,
        *,
        change_pct: float,
        ci_low: float,
        ci_high: float,
        mdc_pct: float,
        significant: bool,
        result: Mapping[str, Any] | None = None,
    ) -> ComparisonRecord:
        """Store (or replace) a comparison; both photos must be this patient's. The region is the
        follow-up photo's."""
        values = _comparison_values(dict(
            change_pct=change_pct, ci_low=ci_low, ci_high=ci_high, mdc_pct=mdc_pct,
            significant=significant, result=result,
        ))
        return self._put_comparison(
            actor, patient_id, baseline_photo_id, followup_photo_id, algorithm_version, values, replace=True
        )

    def comparison_for(
        self,
        actor: Actor,
        patient_id: int,
        baseline_photo_id: int,
        followup_photo_id: int,
        algorithm_version: str,
        compute: Callable[[], Mapping[str, Any]],
    ) -> ComparisonRecord:
        """Like :meth:`measurement_for` for comparisons: ``compute()`` returns a dict with ``change_pct,
        ci_low, ci_high, mdc_pct, significant`` and optionally ``result`` (the full JSON)."""
        found = self.get_comparison(actor, patient_id, baseline_photo_id, followup_photo_id, algorithm_version)
        if found is not None:
            return found
        values = _comparison_values(compute())
        return self._put_comparison(
            actor, patient_id, baseline_photo_id, followup_photo_id, algorithm_version, values, replace=False
        )

    def _put_comparison(
        self, actor: Actor, patient_id: int, baseline_id: int, followup_id: int, version: str, values: dict,
        *, replace: bool
    ) -> ComparisonRecord:
        if baseline_id == followup_id:
            raise OptionError("baseline and follow-up are the same photo; pick a photo from a later visit")
        right = WRITE if replace else READ

        def write(s):
            patient_in_scope(s, actor, patient_id, right)
            _photo_of(s, patient_id, baseline_id)
            followup, _ = _photo_of(s, patient_id, followup_id)
            row = s.scalar(
                select(Comparison).where(
                    Comparison.baseline_photo_id == baseline_id,
                    Comparison.followup_photo_id == followup_id,
                    Comparison.algorithm_version == version,
                )
            )
            if row is not None and not replace:
                return _comparison_rec(row)
            if row is None:
                row = Comparison(
                    patient_id=patient_id, region=followup.region, baseline_photo_id=baseline_id,
                    followup_photo_id=followup_id, algorithm_version=version, created_at=utcnow(),
                )
                s.add(row)
            for k, v in values.items():
                setattr(row, k, v)
            s.flush()
            audit.record(s, actor, "compare", patient_id=patient_id,
                         detail=f"photo {baseline_id} -> {followup_id}: " + (
                             "n/a" if row.change_pct is None else f"{row.change_pct:+.1f} %"))
            return _comparison_rec(row)

        return self._write_unique(write)

    # ------------------------------------------------------------------------------------- progress
    def progress(
        self, actor: Actor, patient_id: int, region: str, *, algorithm_version: str | None = None
    ) -> list[ProgressPoint]:
        """One point per visit that has a photo of ``region``, oldest first — three queries in all.

        Parameters
        ----------
        algorithm_version : str, optional
            Which stored measurements/comparisons to read; default the library's current
            ``ALGORITHM_VERSION``. Visits whose photo has none for that version come with ``None`` values.

        Notes
        -----
        Each visit is represented by the photo that counts for it (:func:`_counting_photos`: its first uploaded
        measurable photo of the region), the same photo the patients list, the reports and the New-visit page
        use. The baseline is :meth:`baseline_photo`; visits before it (only unmeasurable photos) have no
        change. ``weeks_since_first_treatment`` counts from the patient's earliest treatment (``None`` without
        treatments; negative before it).
        """
        version = algorithm_version or _current_version()
        with self._tx() as s:
            patient_in_scope(s, actor, patient_id)
            first_tx = (
                select(func.min(Treatment.date)).where(Treatment.patient_id == patient_id).scalar_subquery()
            )
            counting = _counting_photos(Photo.patient_id == patient_id, Photo.region == region)
            rows = s.execute(
                select(
                    Visit.id, Visit.date, counting.c.photo_id, counting.c.unmeasurable,
                    Measurement.roughness_index, Measurement.metrics, Measurement.id.label("m_id"),
                    first_tx.label("first_tx"),
                )
                .join(counting, counting.c.visit_id == Visit.id)
                .outerjoin(
                    Measurement,
                    and_(Measurement.photo_id == counting.c.photo_id, Measurement.algorithm_version == version),
                )
                .where(Visit.patient_id == patient_id)
                .order_by(Visit.date, Visit.id)
            ).all()
            if not rows:
                return []
            base = next((r for r in rows if not r.unmeasurable), None)
            baseline_id = base.photo_id if base is not None else None
            comps = {
                c.followup_photo_id: c
                for c in s.scalars(
                    select(Comparison).where(
                        Comparison.patient_id == patient_id,
                        Comparison.baseline_photo_id == baseline_id,
                        Comparison.algorithm_version == version,
                    )
                )
            }
        base_date = (base or rows[0]).date
        first_tx_date = rows[0].first_tx
        if isinstance(first_tx_date, str):  # SQLite returns an aggregate of dates as text
            first_tx_date = dt.date.fromisoformat(first_tx_date)
        points = []
        for r in rows:
            c = comps.get(r.photo_id)
            if r.photo_id == baseline_id:
                change = dict(change_pct=0.0, ci_low=None, ci_high=None, significant=False)
            elif c is not None:
                change = dict(change_pct=_nan(c.change_pct), ci_low=_nan(c.ci_low), ci_high=_nan(c.ci_high),
                              significant=bool(c.significant))
            else:
                change = dict(change_pct=None, ci_low=None, ci_high=None, significant=None)
            measured = r.m_id is not None
            points.append(
                ProgressPoint(
                    visit_id=r.id, date=r.date, photo_id=r.photo_id,
                    days_since_baseline=(r.date - base_date).days,
                    weeks_since_first_treatment=(
                        None if first_tx_date is None else (r.date - first_tx_date).days / 7.0
                    ),
                    is_baseline=r.photo_id == baseline_id,
                    roughness_index=_nan(r.roughness_index) if measured else None,
                    metrics=_metrics_out(r.metrics) if measured else None,
                    **change,
                )
            )
        return points


# ======================================================================================== helpers
def _current_version() -> str:
    from analyzer.registry import ALGORITHM_VERSION

    return ALGORITHM_VERSION


def _refuse_saved_again(s: Session, patient_id: int, stored: Mapping[str, tuple]) -> None:
    """The very same photo (same bytes once stripped) saved at another visit of this patient is a mistake (an
    upload box not emptied, the wrong file picked): it would read "no change" at the later date."""
    if not stored:
        return
    again = s.execute(
        select(Photo.sha256, Photo.region, Visit.date)
        .join(Visit, Visit.id == Photo.visit_id)
        .where(Photo.patient_id == patient_id, Photo.sha256.in_(list(stored)))
        .order_by(Visit.date, Photo.id)
        .limit(1)
    ).first()
    if again is not None:
        ph = stored[again.sha256][0]
        name = os.path.basename(str(ph.filename or "")) or "this photo"
        raise Conflict(f"{name} was saved already at the visit of {again.date:%d %b %Y} ({again.region}) — "
                       "upload the photo taken at this visit")


def _counting_photos(*where, correlate=None):
    """The photo that counts for each (visit, region): its first uploaded photo that is not known to be
    unmeasurable (else its first photo), with ``unmeasurable`` telling which. One rule for the progress chart,
    the baseline, the patients list and the reports: a visit with two photos of a region (a retake, or the same
    region chosen twice) must not show one number on one page and another on the next.

    Columns: ``photo_id``, ``visit_id``, ``region``, ``unmeasurable``. A photo is unmeasurable when it has
    measurements and none of them gave a value (black, blank, all glare, kept despite the quality gate); one not
    yet measured counts as measurable.
    """
    def measured(has_value: bool):
        value = Measurement.roughness_index
        return (select(Measurement.id)
                .where(Measurement.photo_id == Photo.id, value.is_not(None) if has_value else value.is_(None))
                .exists())

    unmeasurable = and_(measured(False), ~measured(True))
    rank = func.row_number().over(partition_by=(Photo.visit_id, Photo.region),
                                  order_by=(case((unmeasurable, 1), else_=0), Photo.id))
    q = select(Photo.id.label("photo_id"), Photo.visit_id, Photo.region,
               unmeasurable.label("unmeasurable"), rank.label("rank")).where(*where)
    if correlate is not None:
        q = q.correlate(correlate)
    inner = q.subquery()
    return select(inner.c.photo_id, inner.c.visit_id, inner.c.region, inner.c.unmeasurable) \
        .where(inner.c.rank == 1).subquery()


def _escape_like(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _code_conflict(code: str | None) -> Conflict:
    return Conflict(f"a patient with code {code!r} already exists; use another code or open that patient")


def _require_clinical_consent(s: Session, patient_id: int, photos: Sequence[Any], visit_date: dt.date) -> None:
    """Photos need the patient's consent to clinical photography in force, given on or before the visit's day."""
    if not photos:
        return
    newest = consent.status_of(s, int(patient_id)).clinical
    if newest is None:
        raise ConsentRequired("record the patient's consent to clinical photography (patient page) before "
                              "saving photos")
    if not newest.granted:
        raise ConsentRequired(f"the patient withdrew consent to clinical photography on {newest.date:%d %b %Y}: "
                              "no new photo can be saved (record a new consent if the patient gives it again)")
    if visit_date < newest.date:
        raise ConsentRequired(f"the visit of {visit_date:%d %b %Y} is before the consent to clinical photography "
                              f"({newest.date:%d %b %Y}) — check the visit's date, or record the day the patient "
                              "actually consented")


def _get_photo(s: Session, actor: Actor, patient_id: int, photo_id: int, right: str = READ
               ) -> tuple[Photo, dt.date]:
    """The photo and its visit's date, after the actor's access to the patient is checked."""
    patient_in_scope(s, actor, patient_id, right)
    return _photo_of(s, patient_id, photo_id)


def _photo_of(s: Session, patient_id: int, photo_id: int) -> tuple[Photo, dt.date]:
    """The patient's photo (for callers that have checked the patient with ``patient_in_scope`` already)."""
    row = s.execute(
        select(Photo, Visit.date)
        .join(Visit, Visit.id == Photo.visit_id)
        .where(Photo.id == photo_id, Photo.patient_id == patient_id)
    ).first()
    if row is None:
        raise NotFound(f"photo {photo_id!r} is not one of this patient's photos; pick a photo from their visits")
    return row[0], row[1]


def _to_date(value: Any, what: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise OptionError(f"{what} {value!r} is not a date; give a datetime.date or 'YYYY-MM-DD'")


def _patient_values(**fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "name" in fields:
        name = str(fields["name"] or "").strip()
        if not name:
            raise OptionError("the patient's name is empty; type a name")
        out["name"] = name  # (longer than the column: refused by fields.guard_text, never cut)
    if "code" in fields:
        code = fields["code"]
        out["code"] = (str(code).strip() or None) if code is not None else None
    if "birth_date" in fields:
        b = fields["birth_date"]
        out["birth_date"] = None if b in (None, "") else _to_date(b, "birth date")
    if "notes" in fields:
        out["notes"] = str(fields["notes"] or "")
    return out


def _treatment_values(**f: Any) -> dict[str, Any]:
    depth = f.get("needle_depth_mm")
    if depth is not None:
        try:
            depth = float(depth)
        except (TypeError, ValueError):
            depth = float("nan")
        if not (0.0 <= depth <= 10.0):
            raise OptionError(
                f"needle depth {f.get('needle_depth_mm')!r} mm is impossible; give the depth in mm (e.g. 1.5)"
            )
    procedure = str(f.get("procedure") or "micro-needling").strip()
    return dict(
        date=_to_date(f["date"], "treatment date"), procedure=procedure, needle_depth_mm=depth,
        area=str(f.get("area") or ""), notes=str(f.get("notes") or ""),
    )


def _json(obj: Any) -> Any:
    """A JSON-safe copy: non-finite floats -> None, numpy scalars/arrays -> Python, tuples -> lists."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_json(v) for v in obj]
    if isinstance(obj, (dt.date, dt.datetime)):
        return obj.isoformat()
    if hasattr(obj, "tolist"):  # numpy scalar or array
        return _json(obj.tolist())
    if hasattr(obj, "item"):
        return _json(obj.item())
    raise OptionError(f"cannot store a {type(obj).__name__} as JSON; convert it to numbers, text, lists or dicts")


def _float_in(x: Any) -> float | None:
    """Value for a nullable float column: NaN/inf/None are stored as NULL."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _nan(x: float | None) -> float:
    return float("nan") if x is None else float(x)


def _metrics_out(metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: (float("nan") if v is None else v) for k, v in (metrics or {}).items()}


def _as_new_measurement(obj: Any, default_version: str | None = None) -> NewMeasurement:
    if isinstance(obj, NewMeasurement):
        return obj
    if not isinstance(obj, Mapping):
        raise OptionError(
            f"a measurement must be a storage.NewMeasurement or a dict, not {type(obj).__name__}; "
            "convert the library's result first"
        )
    unknown = set(obj) - set(_MEASUREMENT_FIELDS)
    if unknown:
        raise OptionError(
            f"unknown measurement field {', '.join(sorted(unknown))}; use {', '.join(_MEASUREMENT_FIELDS)}"
        )
    d = dict(obj)
    d.setdefault("algorithm_version", default_version)
    if not d.get("algorithm_version"):
        raise OptionError("the measurement has no algorithm_version; pass analyzer.ALGORITHM_VERSION")
    if "roughness_index" not in d:
        raise OptionError("the measurement has no roughness_index; pass the library's headline number (NaN if none)")
    return NewMeasurement(**d)


def _fill_measurement(row: Measurement, m: NewMeasurement) -> None:
    row.roughness_index = _float_in(m.roughness_index)
    row.metrics = _json(dict(m.metrics or {}))
    row.scars = _json(list(m.scars or []))
    row.px_per_mm = _float_in(m.px_per_mm)
    row.scale_source = str(m.scale_source or "")[:40]


def _measurement_row(patient_id: int, photo_id: int, m: NewMeasurement) -> Measurement:
    row = Measurement(
        patient_id=patient_id, photo_id=photo_id, algorithm_version=str(m.algorithm_version)[:40],
        created_at=utcnow(),
    )
    _fill_measurement(row, m)
    return row


def _comparison_values(obj: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(obj, Mapping):
        raise OptionError(f"a comparison must be a dict, not {type(obj).__name__}; convert the library's result first")
    unknown = set(obj) - set(_COMPARISON_FIELDS)
    if unknown:
        raise OptionError(f"unknown comparison field {', '.join(sorted(unknown))}; use {', '.join(_COMPARISON_FIELDS)}")
    missing = {"change_pct", "ci_low", "ci_high", "mdc_pct", "significant"} - set(obj)
    if missing:
        raise OptionError(f"the comparison lacks {', '.join(sorted(missing))}; pass every field (NaN if unknown)")
    return dict(
        change_pct=_float_in(obj["change_pct"]), ci_low=_float_in(obj["ci_low"]),
        ci_high=_float_in(obj["ci_high"]), mdc_pct=_float_in(obj["mdc_pct"]),
        significant=bool(obj["significant"]), result=_json(dict(obj.get("result") or {})),
    )


@functools.cache
def _pil_image():
    """Pillow's Image module with the HEIC/HEIF opener registered (once)."""
    from PIL import Image

    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except Exception:  # HEIC sizes then stay unknown; nothing else depends on it
        pass
    return Image


def _stored_filename(ph: NewPhoto) -> str:
    """The photo's file name as stored: without folders, at most 255 characters."""
    return os.path.basename(str(ph.filename or ""))[:255]


def _image_size(data: bytes) -> tuple[int | None, int | None]:
    """Displayed (EXIF-rotated) width and height read from the file header; ``(None, None)`` if unknown.

    Only the header is parsed (no pixel decoding); the storage never judges whether a photo is usable.
    """
    try:
        with _pil_image().open(io.BytesIO(data)) as im:
            w, h = im.size
            try:
                orientation = im.getexif().get(0x0112, 1)
            except Exception:
                orientation = 1
        if orientation in (5, 6, 7, 8):
            w, h = h, w
        return int(w), int(h)
    except Exception:
        return None, None


def _patient_rec(p: Patient) -> PatientRecord:
    return PatientRecord(
        id=p.id, name=p.name, code=p.code, birth_date=p.birth_date, notes=p.notes or "",
        created_at=as_utc(p.created_at),
    )


def _treatment_rec(t: Treatment) -> TreatmentRecord:
    return TreatmentRecord(
        id=t.id, patient_id=t.patient_id, date=t.date, procedure=t.procedure,
        needle_depth_mm=t.needle_depth_mm, area=t.area or "", notes=t.notes or "",
    )


def _photo_rec(p: Photo, visit_date: dt.date) -> PhotoRecord:
    return PhotoRecord(
        id=p.id, patient_id=p.patient_id, visit_id=p.visit_id, visit_date=visit_date, region=p.region,
        sha256=p.sha256, filename=p.filename, content_type=p.content_type, width=p.width, height=p.height,
        capture=dict(p.capture or {}), quality=None if p.quality is None else dict(p.quality),
        created_at=as_utc(p.created_at),
    )


def _visit_rec(v: Visit, photos: Sequence[Photo]) -> VisitRecord:
    return VisitRecord(
        id=v.id, patient_id=v.patient_id, date=v.date, notes=v.notes or "", created_at=as_utc(v.created_at),
        photos=tuple(_photo_rec(p, v.date) for p in photos),
    )


def _measurement_rec(m: Measurement) -> MeasurementRecord:
    return MeasurementRecord(
        id=m.id, patient_id=m.patient_id, photo_id=m.photo_id, algorithm_version=m.algorithm_version,
        roughness_index=_nan(m.roughness_index), metrics=_metrics_out(m.metrics), scars=list(m.scars or []),
        px_per_mm=m.px_per_mm, scale_source=m.scale_source or "", created_at=as_utc(m.created_at),
    )


def _comparison_rec(c: Comparison) -> ComparisonRecord:
    return ComparisonRecord(
        id=c.id, patient_id=c.patient_id, region=c.region, baseline_photo_id=c.baseline_photo_id,
        followup_photo_id=c.followup_photo_id, algorithm_version=c.algorithm_version,
        change_pct=_nan(c.change_pct), ci_low=_nan(c.ci_low), ci_high=_nan(c.ci_high),
        mdc_pct=_nan(c.mdc_pct), significant=bool(c.significant), result=dict(c.result or {}),
        created_at=as_utc(c.created_at),
    )
