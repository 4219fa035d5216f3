"""Consent: clinical photography (required before the first photo is saved) and, separately and optionally,
use for teaching and marketing. Every decision is a row; of each kind, the latest by the date the patient decided is
in force, so withdrawing is recorded (with date and who recorded it) rather than erasing the grant."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from . import audit, links
from .access import CLINICAL, WRITE, Actor, patient_in_scope, patients_in_scope, require
from .aggregate import _past_date
from .errors import OptionError
from .models import Consent, Patient, PatientLink, as_utc, utcnow

__all__ = ["Consents", "ConsentRecord", "ConsentStatus", "KINDS", "status_of"]

KINDS = ("clinical", "marketing")


@dataclass(frozen=True)
class ConsentRecord:
    kind: str
    granted: bool
    date: dt.date
    recorded_by: str
    created_at: dt.datetime


@dataclass(frozen=True)
class ConsentStatus:
    """What is in force now, and every decision (oldest first, by the date the patient decided)."""

    clinical: ConsentRecord | None
    marketing: ConsentRecord | None
    history: tuple[ConsentRecord, ...]

    @property
    def clinical_granted(self) -> bool:
        return self.clinical is not None and self.clinical.granted

    @property
    def clinical_withdrawn(self) -> bool:
        """Consent to clinical photography was given and is withdrawn now (not: never recorded)."""
        return self.clinical is not None and not self.clinical.granted

    @property
    def marketing_granted(self) -> bool:
        return self.marketing is not None and self.marketing.granted

    def on(self, kind: str, day: dt.date) -> ConsentRecord | None:
        """The decision of ``kind`` that was in force on ``day``: the latest one dated on or before it (None: none
        yet). A consent recorded today can be joined by the paper one the patient signed before an earlier visit."""
        before = [r for r in self.history if r.kind == kind and r.date <= day]
        return before[-1] if before else None


def status_of(s: Session, patient_id: int) -> ConsentStatus:
    """What is in force for one patient (inside a transaction that has checked access).

    The decision in force is the one the patient made last (by the date entered; of two on one day, the one
    recorded last), not the row typed in last: a paper consent of January filed after a withdrawal of March
    joins the history and does not undo the withdrawal.
    """
    rows = [_rec(c) for c in s.scalars(select(Consent).where(Consent.patient_id == patient_id)
                                       .order_by(Consent.date, Consent.id))]
    last = {r.kind: r for r in rows}
    return ConsentStatus(clinical=last.get("clinical"), marketing=last.get("marketing"), history=tuple(rows))


def _rec(c: Consent) -> ConsentRecord:
    return ConsentRecord(kind=c.kind, granted=bool(c.granted), date=c.date, recorded_by=c.recorded_by,
                         created_at=as_utc(c.created_at))


class Consents:
    def __init__(self, sessions: sessionmaker, clock=utcnow):
        self._sessions = sessions
        self.clock = clock

    def record(self, actor: Actor, patient_id: int, kind: str, *, granted: bool,
               date: dt.date | None = None) -> ConsentStatus:
        """Record that the patient gave (``granted=True``) or withdrew consent of ``kind`` on ``date``.

        A withdrawal of consent to clinical photography that is in force (not one dated before a later consent)
        revokes every patient link of the patient that is still open, in the same transaction (each audited
        ``link_revoked``): a link shows the photos, and one handed out earlier (a QR code on a phone, a forwarded
        message) must not outlive the withdrawal. Giving consent again does not bring them back; the clinic issues
        a new link if the patient asks for one."""
        if kind not in KINDS:
            raise OptionError(f"consent kind must be one of {', '.join(KINDS)}")
        day = date or dt.date.today()
        if not isinstance(day, dt.date):
            raise OptionError("the consent date must be a date")
        day = _past_date(day, "consent date", "enter the day the patient signed")
        with self._sessions() as s, s.begin():
            patient_id = patient_in_scope(s, actor, patient_id, WRITE).id
            s.add(Consent(patient_id=patient_id, kind=kind, granted=bool(granted), date=day,
                          recorded_by=actor.name, created_at=utcnow()))
            audit.record(s, actor, "consent", patient_id=patient_id,
                         detail=f"{kind} {'given' if granted else 'withdrawn'} on {day.isoformat()}")
            s.flush()
            now = status_of(s, patient_id)
            if kind == "clinical" and not granted and now.clinical_withdrawn:  # (this withdrawal is in force)
                links.revoke_open(s, actor, PatientLink.patient_id == patient_id, now=self.clock(),
                                  reason="consent to clinical photography withdrawn")
            return now

    def last_change(self, actor: Actor) -> int:
        """A number that changes whenever a consent decision is recorded for any patient ``actor`` sees (the newest
        decision row's id; 0 for none): what a clinic export prepared earlier is checked against."""
        actor = require(actor)
        with self._sessions() as s:
            return int(s.scalar(select(func.max(Consent.id)).join(Patient, Patient.id == Consent.patient_id)
                                .where(patients_in_scope(s, actor))) or 0)

    def status(self, actor: Actor, patient_id: int) -> ConsentStatus:
        with self._sessions() as s:
            patient_id = patient_in_scope(s, actor, patient_id, CLINICAL).id
            return status_of(s, patient_id)
