"""Patient links: a read-only view of one patient's progress, opened without an account.

A link carries a random token of 256 bits (``secrets.token_urlsafe(32)``); the database keeps only its SHA-256,
so a copy of the database does not contain working links. A link expires (by default at the end of the day it
was issued, server time) and can be revoked; issuing, using and revoking are audited. No link is issued or opens
while the patient's consent to clinical photography is withdrawn (a withdrawal also revokes the open ones). The old
``/?mode=visit&patient=<id>`` form carries no token and opens nothing.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import sessionmaker

from . import audit, consent
from .access import INVALID_LINK, WRITE, Actor, link_in_force, patient_in_scope
from .errors import ConsentRequired, NotFound, OptionError
from .models import Patient, PatientLink, as_utc, utcnow

__all__ = ["PatientLinks", "LinkRecord", "INVALID_LINK", "NO_LINK_WITHOUT_CONSENT", "end_of_today", "revoke_open"]

NO_LINK_WITHOUT_CONSENT = ("the patient has withdrawn consent to clinical photography, and a link shows the photos: "
                           "record the patient's consent again before giving them a link")
#: A link ends at the latest at the end of the 90th day after the day it is issued (README: at most 90 days).
_MAX_DAYS = 90


@dataclass(frozen=True)
class LinkRecord:
    id: int
    patient_id: int
    created_by: str
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None

    def active(self, now: dt.datetime | None = None) -> bool:
        now = now or utcnow()
        return self.revoked_at is None and now < self.expires_at


def end_of_today(now: dt.datetime | None = None) -> dt.datetime:
    """23:59:59 of today in the server's local time zone, as an aware datetime."""
    local = (now or utcnow()).astimezone()
    return local.replace(hour=23, minute=59, second=59, microsecond=0)


def token_hash(token: str) -> str:
    return hashlib.sha256(str(token).encode("utf-8", "replace")).hexdigest()


def _open(columns, *conditions, now: dt.datetime):
    """``SELECT columns`` of the links still open at ``now`` (neither revoked nor expired) that ``conditions``
    select (clauses on :class:`PatientLink` and :class:`Patient`)."""
    return (select(*columns).select_from(PatientLink).join(Patient, Patient.id == PatientLink.patient_id)
            .where(*conditions, PatientLink.revoked_at.is_(None), PatientLink.expires_at > now))


def count_open(s, *conditions, now: dt.datetime) -> int:
    """How many links still open ``conditions`` select (as :func:`revoke_open` would revoke them)."""
    return int(s.scalar(_open([func.count(PatientLink.id)], *conditions, now=now)) or 0)


def revoke_open(s, actor: Actor, *conditions, now: dt.datetime, reason: str) -> int:
    """Revoke, in the caller's transaction, every link still open (neither revoked nor expired) that
    ``conditions`` select (clauses on :class:`PatientLink` and :class:`Patient`), with one ``link_revoked`` audit
    row each (detail ``link #<id>: <reason>``, in the patient's clinic). The caller has checked ``actor``'s right
    to do so. Returns how many were revoked."""
    rows = s.execute(_open([PatientLink.id, PatientLink.patient_id, Patient.clinic_id], *conditions, now=now)).all()
    done = 0
    for link_id, patient_id, clinic_id in rows:
        # (only if nobody revoked it meanwhile: one revocation, one audit row)
        if s.execute(update(PatientLink).where(PatientLink.id == link_id, PatientLink.revoked_at.is_(None))
                     .values(revoked_at=now)).rowcount == 1:
            audit.record(s, actor, "link_revoked", clinic_id=clinic_id, patient_id=patient_id,
                         detail=f"link #{link_id}: {reason}")
            done += 1
    return done


def _rec(link: PatientLink) -> LinkRecord:
    return LinkRecord(id=link.id, patient_id=link.patient_id, created_by=link.created_by,
                      created_at=as_utc(link.created_at), expires_at=as_utc(link.expires_at),
                      revoked_at=as_utc(link.revoked_at), last_used_at=as_utc(link.last_used_at))


class PatientLinks:
    def __init__(self, sessions: sessionmaker, clock=utcnow):
        self._sessions = sessions
        self.clock = clock

    def issue(self, actor: Actor, patient_id: int, *, expires_at: dt.datetime | dt.date | None = None
              ) -> tuple[str, LinkRecord]:
        """A new link for the patient: ``(token, record)``. The token is shown once and never stored.

        ``expires_at``: a datetime, or a date (meaning the end of that day); default the end of today.
        """
        now = self.clock()
        if expires_at is None:
            expires = end_of_today(now)
        elif isinstance(expires_at, dt.datetime):
            expires = expires_at if expires_at.tzinfo else expires_at.astimezone()
        elif isinstance(expires_at, dt.date):
            expires = dt.datetime.combine(expires_at, dt.time(23, 59, 59)).astimezone()
        else:
            raise OptionError("the link's expiry must be a date or a date and time")
        if expires <= now:
            raise OptionError("the link's expiry is in the past; choose a later date")
        # by local calendar days: a fixed offset plus 90 days crossed a change of summer time by an hour
        if expires.astimezone().date() > now.astimezone().date() + dt.timedelta(days=_MAX_DAYS):
            raise OptionError(f"a link can last at most {_MAX_DAYS} days; choose an earlier date")
        token = secrets.token_urlsafe(32)
        with self._sessions() as s, s.begin():
            patient_id = patient_in_scope(s, actor, patient_id, WRITE).id
            if consent.status_of(s, patient_id).clinical_withdrawn:
                raise ConsentRequired(NO_LINK_WITHOUT_CONSENT)
            link = PatientLink(patient_id=patient_id, token_hash=token_hash(token), created_by=actor.name,
                               created_at=now, expires_at=expires)
            s.add(link)
            s.flush()
            audit.record(s, actor, "link_issued", patient_id=patient_id,
                         detail=f"link #{link.id} until {expires.isoformat(timespec='minutes')}")
            return token, _rec(link)

    def _resolve(self, s, token: object) -> tuple[PatientLink, Patient] | None:
        if not isinstance(token, str) or not (20 <= len(token) <= 100):
            return None
        row = s.execute(select(PatientLink, Patient).join(Patient, Patient.id == PatientLink.patient_id)
                        .where(PatientLink.token_hash == token_hash(token))).first()
        if row is None:
            return None
        link, patient = row
        if not link_in_force(s, link, self.clock()):  # (revoked, expired, or consent to the photos withdrawn)
            return None
        return link, patient

    @staticmethod
    def _actor(link: PatientLink, patient: Patient) -> Actor:
        return Actor(kind="link", name=f"link #{link.id}", role="link", clinic_id=patient.clinic_id,
                     patient_id=patient.id, link_id=link.id)

    def open(self, token: str) -> Actor:
        """Use a link (audited ``link_used``): the read-only actor for its one patient, or :class:`NotFound`."""
        actor = None
        with self._sessions() as s, s.begin():  # a failed use is committed (audited) too, then refused
            found = self._resolve(s, token)
            if found is None:
                audit.record(s, None, "link_used", outcome="failed", account="link")
            else:
                link, patient = found
                link.last_used_at = self.clock()
                actor = self._actor(link, patient)
                audit.record(s, actor, "link_used", patient_id=patient.id)
        if actor is None:
            raise NotFound(INVALID_LINK)
        return actor

    def actor(self, token: str) -> Actor:
        """Check an opened link again (every page run, so revocation and expiry take effect at once)."""
        with self._sessions() as s:
            found = self._resolve(s, token)
            if found is None:
                raise NotFound(INVALID_LINK)
            return self._actor(*found)

    def list(self, actor: Actor, patient_id: int) -> list[LinkRecord]:
        """The patient's links, newest first."""
        with self._sessions() as s:
            patient_id = patient_in_scope(s, actor, patient_id, WRITE).id
            return [_rec(x) for x in s.scalars(select(PatientLink).where(PatientLink.patient_id == patient_id)
                                                .order_by(PatientLink.id.desc()))]

    def revoke(self, actor: Actor, patient_id: int, link_id: int) -> LinkRecord:
        with self._sessions() as s, s.begin():
            patient_id = patient_in_scope(s, actor, patient_id, WRITE).id
            link = s.scalar(select(PatientLink).where(PatientLink.id == int(link_id),
                                                      PatientLink.patient_id == patient_id))
            if link is None:
                raise NotFound("no such link for this patient")
            if link.revoked_at is None:
                link.revoked_at = self.clock()
                audit.record(s, actor, "link_revoked", patient_id=patient_id, detail=f"link #{link.id}")
            return _rec(link)
