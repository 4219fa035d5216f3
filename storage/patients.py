"""Patients: create, edit, find and delete them, with the patients list's latest change (one aggregate of
:class:`storage.Store`, whose methods of the same names call these)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, func, or_, select, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import audit
from .access import WRITE, Actor, patient_in_scope, patients_in_scope, require, sees_clinical
from .aggregate import Aggregate, _counting_photos, _current_version, _nan, _past_date
from .errors import Conflict, OptionError
from .models import AuditEvent, Comparison, Patient, Photo, Visit, as_utc, utcnow
from .results import comparison_caveats
from .records import (
    PatientRecord,
    PatientSummary,
)

_PATIENT_FIELDS = ("name", "code", "birth_date", "notes")


class Patients(Aggregate):
    """The clinic's patients."""

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
                # (checked after the insert, in its transaction: on SQLite a transaction that reads first fails at
                # once when another write commits meanwhile; a refusal rolls the insert back)
                require(actor, WRITE, s=s)
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
            return _patient_rec(patient_in_scope(s, actor, patient_id), actor)

    def open_patient(self, actor: Actor, patient_id: int) -> PatientRecord:
        """:meth:`patient`, recorded in the audit log as ``view_patient`` (call it once when a patient is
        opened, not on every redraw)."""
        with self._tx() as s:
            p = patient_in_scope(s, actor, patient_id)
            audit.record(s, actor, "view_patient", patient_id=p.id)
            return _patient_rec(p, actor)

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
                .where(patients_in_scope(s, actor))
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
                        id=p.id, name=p.name, code=p.code, birth_date=p.birth_date if sees_clinical(actor) else None,
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
                Comparison.id, Comparison.change_pct, Comparison.ci_low, Comparison.ci_high, Comparison.significant,
                rank,
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
        # (the result JSON, for the consistency check, read for the one comparison per patient only)
        rows = s.execute(select(inner, Comparison.result).join(Comparison, Comparison.id == inner.c.id)
                         .where(inner.c.rank == 1)).all()
        for r in rows:
            out[r.patient_id] = dict(
                change_region=r.region, change_date=r.date, change_pct=_nan(r.change_pct),
                change_ci_low=_nan(r.ci_low), change_ci_high=_nan(r.ci_high),
                change_significant=bool(r.significant), change_caveats=comparison_caveats(r.result),
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
        self._forget()


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



def _escape_like(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _code_conflict(code: str | None) -> Conflict:
    return Conflict(f"a patient with code {code!r} already exists; use another code or open that patient")


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
        out["birth_date"] = None if b in (None, "") else _past_date(b, "birth date",
                                                                     "enter the patient's date of birth")
    if "notes" in fields:
        out["notes"] = str(fields["notes"] or "")
    return out


def _patient_rec(p: Patient, actor: Actor | None = None) -> PatientRecord:
    """The record; read for an actor without the clinical right (a patient link), without notes and birth date."""
    clinical = actor is None or sees_clinical(actor)
    return PatientRecord(
        id=p.id, name=p.name, code=p.code, birth_date=p.birth_date if clinical else None,
        notes=(p.notes or "") if clinical else "", created_at=as_utc(p.created_at),
    )
