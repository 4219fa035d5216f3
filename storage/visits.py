"""Visits, their photos and treatments: saving a visit all-or-nothing, reading photos (one aggregate of
:class:`storage.Store`, whose methods of the same names call these)."""
from __future__ import annotations

import datetime as dt
import functools
import io
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from . import audit, consent
from .access import WRITE, Actor, patient_in_scope, sees_clinical
from .aggregate import Aggregate, _counting_photos, _get_photo, _json, _past_date
from .errors import Conflict, ConsentRequired, NotFound, OptionError, StorageError
from .fields import check_text
from .models import Photo, Treatment, Visit, as_utc, utcnow
from .photo_privacy import PhotoFormatError
from .records import (
    NewMeasurement,
    NewPhoto,
    PhotoRecord,
    TreatmentRecord,
    VisitRecord,
)
from .results import _as_new_measurement, _measurement_row

Analyse = Callable[[NewPhoto], "NewMeasurement | Mapping[str, Any] | None"]

_TREATMENT_FIELDS = ("date", "procedure", "needle_depth_mm", "area", "notes")


class Visits(Aggregate):
    """A patient's treatments, visits and photos (and the photo files)."""

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
            patient_id = patient_in_scope(s, actor, patient_id, WRITE).id
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
            patient_id = patient_in_scope(s, actor, patient_id).id
            ts = s.scalars(
                select(Treatment).where(Treatment.patient_id == patient_id).order_by(Treatment.date, Treatment.id)
            )
            return [_treatment_rec(t, actor) for t in ts]

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
        visit_date = _past_date(date, "visit date", "enter the day the photos were taken")
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
            patient_id = patient_in_scope(s, actor, patient_id, WRITE).id
            _require_clinical_consent(s, patient_id, photos, visit_date)

        # (2) files first: a crash after this point leaves only content-addressed orphans; a failure removes
        # the files this call wrote (those no row uses).
        stored: dict[str, tuple[NewPhoto, str, tuple[int | None, int | None]]] = {}
        created: set[tuple[str, str]] = set()
        try:
            for ph in photos:
                sha, ctype, new = self._put(ph)
                if new:
                    created.add((sha, ctype))
                if sha not in stored:
                    stored[sha] = (ph, ctype, _image_size(ph.data))
            return self._save_visit_rows(actor, patient_id, visit_date, notes, tx_values, photos, stored, analyse,
                                         created)
        except BaseException:
            self._remove_unreferenced(created)
            raise

    def _put(self, ph: NewPhoto) -> tuple[str, str, bool]:
        """Store one photo's file: ``(sha256, content_type, created)``; one-line errors."""
        try:  # metadata stripped (and encrypted with a key) inside put; sha is of the stored photo
            sha, ctype, _path, new = self.blobs.put_new(ph.data)
        except PhotoFormatError as err:
            raise PhotoFormatError(f"{os.path.basename(str(ph.filename or 'photo'))}: {err}") from None
        except OSError as err:  # (a full disk, a folder that cannot be written)
            raise StorageError(f"the photos folder cannot be written ({err.strerror or type(err).__name__}) — "
                               "nothing was saved; free space on the server or fix the folder's permissions, "
                               "then save again") from None
        return sha, ctype, new

    def _save_visit_rows(self, actor, patient_id, visit_date, notes, tx_values, photos, stored, analyse, created):
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
        # (4) one transaction for every row, committed under the files' guard: a file found already there in
        # step (2) may have been removed since by a deletion or another save's clean-up that saw no row using it
        # (nothing here was committed yet), so each is checked and written again if it went.
        with self.blobs.guard(), self._tx() as s:
            patient_id = patient_in_scope(s, actor, patient_id, WRITE).id
            _require_clinical_consent(s, patient_id, photos, visit_date)
            _refuse_saved_again(s, patient_id, stored)
            for sha, (ph, ctype, _) in stored.items():
                if not self.blobs.path(sha, ctype).is_file() and self._put(ph)[2]:
                    created.add((sha, ctype))  # (removed again should the commit fail)
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
            patient_id = patient_in_scope(s, actor, patient_id).id
            vs = s.scalars(
                select(Visit)
                .where(Visit.patient_id == patient_id)
                .order_by(Visit.date, Visit.id)
                .options(selectinload(Visit.photos))
            ).all()
            return [_visit_rec(v, v.photos, actor) for v in vs]

    def visit(self, actor: Actor, patient_id: int, visit_id: int) -> VisitRecord:
        with self._tx() as s:
            patient_id = patient_in_scope(s, actor, patient_id).id
            v = s.scalar(
                select(Visit)
                .where(Visit.id == visit_id, Visit.patient_id == patient_id)
                .options(selectinload(Visit.photos))
            )
            if v is None:
                raise NotFound(f"visit {visit_id} is not one of this patient's visits; pick one from the visit list")
            return _visit_rec(v, v.photos, actor)

    def delete_visit(self, actor: Actor, patient_id: int, visit_id: int) -> None:
        """Delete one visit with its photos and results (and photo files no other row uses)."""
        with self._tx() as s:
            patient_id = patient_in_scope(s, actor, patient_id, WRITE).id
            v = s.scalar(select(Visit).where(Visit.id == visit_id, Visit.patient_id == patient_id))
            if v is None:
                raise NotFound(f"visit {visit_id} is not one of this patient's visits; pick one from the visit list")
            files = {(r.sha256, r.content_type) for r in s.execute(
                select(Photo.sha256, Photo.content_type).where(Photo.visit_id == visit_id))}
            s.execute(delete(Visit).where(Visit.id == visit_id))
            audit.record(s, actor, "delete_visit", patient_id=patient_id, detail=f"visit of {v.date.isoformat()}")
        self._remove_unreferenced(files)
        self._forget()

    def photos(self, actor: Actor, patient_id: int, *, region: str | None = None) -> list[PhotoRecord]:
        """The patient's photos (optionally of one region), by visit date."""
        with self._tx() as s:
            patient_id = patient_in_scope(s, actor, patient_id).id
            q = (
                select(Photo, Visit.date)
                .join(Visit, Visit.id == Photo.visit_id)
                .where(Photo.patient_id == patient_id)
                .order_by(Visit.date, Visit.id, Photo.id)
            )
            if region is not None:
                q = q.where(Photo.region == region)
            rows = s.execute(q).all()
            return [_photo_rec(p, d, actor) for p, d in rows]

    def photo(self, actor: Actor, patient_id: int, photo_id: int) -> PhotoRecord:
        with self._tx() as s:
            p, d = _get_photo(s, actor, patient_id, photo_id)
            return _photo_rec(p, d, actor)

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
            patient_id = patient_in_scope(s, actor, patient_id).id
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
            patient_id = patient_in_scope(s, actor, patient_id).id
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
            return _photo_rec(*row, actor)

    def gc_orphans(self, *, grace_s: float = 3600.0) -> list[Path]:
        """Remove photo files that no row refers to, and leftover ``.tmp-*`` files.

        Only files older than ``grace_s`` seconds are removed, so a save in progress elsewhere (files
        written, rows not yet committed) is safe. Returns the removed paths.
        """
        with self.blobs.guard():  # (as every removal: a save committing meanwhile finds its file or rewrites it)
            with self._tx() as s:
                referenced = set(s.scalars(select(Photo.sha256).distinct()))
            return self.blobs.sweep(referenced, grace_s=grace_s)


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


def _require_clinical_consent(s: Session, patient_id: int, photos: Sequence[Any], visit_date: dt.date) -> None:
    """Photos need the patient's consent to clinical photography in force, given on or before the visit's day."""
    if not photos:
        return
    status = consent.status_of(s, int(patient_id))
    newest = status.clinical
    if newest is None:
        raise ConsentRequired("record the patient's consent to clinical photography (patient page) before "
                              "saving photos")
    if not newest.granted:
        raise ConsentRequired(f"the patient withdrew consent to clinical photography on {newest.date:%d %b %Y}: "
                              "no new photo can be saved (record a new consent if the patient gives it again)")
    then = status.on("clinical", visit_date)  # in force on the visit's day, too (not withdrawn in between)
    if then is None:
        first = min(r.date for r in status.history if r.kind == "clinical" and r.granted)
        raise ConsentRequired(f"the visit of {visit_date:%d %b %Y} is before the consent to clinical photography "
                              f"({first:%d %b %Y}) — check the visit's date, or record the day the patient "
                              "actually consented")
    if not then.granted:
        raise ConsentRequired(f"on {visit_date:%d %b %Y} the patient's consent to clinical photography was withdrawn "
                              f"(since {then.date:%d %b %Y}) — check the visit's date")


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
        date=_past_date(f["date"], "treatment date", "enter the day of the treatment"), procedure=procedure,
        needle_depth_mm=depth, area=str(f.get("area") or ""), notes=str(f.get("notes") or ""),
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


# Records read for an actor without the clinical right (a patient link) leave out the clinic's own text: notes and
# upload file names (which often carry a name); ``actor=None`` (records just written by staff) keeps everything.
def _treatment_rec(t: Treatment, actor: Actor | None = None) -> TreatmentRecord:
    clinical = actor is None or sees_clinical(actor)
    return TreatmentRecord(
        id=t.id, patient_id=t.patient_id, date=t.date, procedure=t.procedure,
        needle_depth_mm=t.needle_depth_mm, area=t.area or "", notes=(t.notes or "") if clinical else "",
    )


def _photo_rec(p: Photo, visit_date: dt.date, actor: Actor | None = None) -> PhotoRecord:
    clinical = actor is None or sees_clinical(actor)
    return PhotoRecord(
        id=p.id, patient_id=p.patient_id, visit_id=p.visit_id, visit_date=visit_date, region=p.region,
        sha256=p.sha256, filename=p.filename if clinical else "photo", content_type=p.content_type,
        width=p.width, height=p.height,
        capture=dict(p.capture or {}), quality=None if p.quality is None else dict(p.quality),
        created_at=as_utc(p.created_at),
    )


def _visit_rec(v: Visit, photos: Sequence[Photo], actor: Actor | None = None) -> VisitRecord:
    clinical = actor is None or sees_clinical(actor)
    return VisitRecord(
        id=v.id, patient_id=v.patient_id, date=v.date, notes=(v.notes or "") if clinical else "",
        created_at=as_utc(v.created_at), photos=tuple(_photo_rec(p, v.date, actor) for p in photos),
    )
