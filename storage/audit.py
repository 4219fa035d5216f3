"""The audit log: who did what to which patient, when, and with what outcome. Append-only.

Rows are written inside the same transaction as the action they record (:func:`record`), so an action that is
rolled back leaves no row and an action that is committed always leaves one. The database refuses ``UPDATE`` and
``DELETE`` on the table (triggers, migration 0002); this module offers no way to change a row.

Actions: ``sign_in``, ``sign_out``, ``password_changed``, ``view_patient``, ``create_patient``, ``edit_patient``,
``delete_patient``, ``add_treatment``, ``consent``, ``upload``, ``delete_visit``, ``compare``, ``export``,
``report``, ``link_issued``, ``link_used``, ``link_revoked``, ``account_created``, ``account_disabled``,
``account_enabled``, ``password_reset``, ``password_removed``. Outcomes: ``ok`` and ``failed`` (a refused sign-in,
link or password change). A call that storage refuses for lack of a right or scope leaves no row: it writes
nothing, and its transaction (the audit row's too) is rolled back.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from .access import ADMIN, CLINICAL, Actor, patient_in_scope, require
from .errors import OptionError
from .models import AuditEvent, as_utc, utcnow

__all__ = ["AuditLog", "AuditRecord", "record", "ACTIONS"]

ACTIONS = (
    "sign_in", "sign_out", "password_changed", "view_patient", "create_patient", "edit_patient",
    "delete_patient", "add_treatment", "consent", "upload", "delete_visit", "compare", "export", "report",
    "link_issued", "link_used", "link_revoked", "account_created", "account_disabled", "account_enabled",
    "password_reset", "password_removed",
)
#: What may be recorded from outside storage (:meth:`AuditLog.log`, :meth:`AuditLog.log_each`): what happens to
#: data once it has left storage. Everything else is recorded by storage itself, in the transaction that does
#: it, so a page (or a viewer's session) cannot add a row that says an account was disabled or a patient deleted.
EXTERNAL_ACTIONS = ("export", "report")


def _external(action: str) -> None:
    if action not in EXTERNAL_ACTIONS:
        raise OptionError(f"{action!r} is recorded by storage itself, not from outside; record one of "
                          f"{', '.join(EXTERNAL_ACTIONS)}")


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: dt.datetime
    account: str
    clinic_id: int | None
    action: str
    patient_id: int | None
    outcome: str
    detail: str


def record(s: Session, actor: Actor | None, action: str, *, patient_id: int | None = None, outcome: str = "ok",
           detail: str = "", account: str | None = None, clinic_id: int | None = None) -> None:
    """Add one audit row to the session's transaction (committed with the action, or not at all)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    s.add(AuditEvent(
        # The audit records what was typed, even unstorable text (a NUL in a user name tried at sign-in).
        at=utcnow(), action=action, patient_id=patient_id, outcome=outcome,
        detail=str(detail)[:2000].replace("\x00", "\ufffd"),
        account=(account if account is not None else (actor.name if actor else ""))[:100].replace("\x00", "\ufffd"),
        clinic_id=clinic_id if clinic_id is not None else (actor.clinic_id if actor else None),
    ))


class AuditLog:
    """Reading the audit log (admins of a clinic see their clinic's rows; the server CLI sees all)."""

    def __init__(self, sessions: sessionmaker):
        self._sessions = sessions

    def log(self, actor: Actor, action: str, *, patient_id: int | None = None, outcome: str = "ok",
            detail: str = "") -> None:
        """Record an action that happens outside storage (an export written, a report downloaded).

        ``patient_id`` must be a patient the actor may see; ``action`` one of :data:`EXTERNAL_ACTIONS`. Only the
        clinic's staff write reports and exports (a patient link cannot add rows that read as data leaving).
        """
        _external(action)
        with self._sessions() as s, s.begin():
            if patient_id is not None:
                patient_id = patient_in_scope(s, actor, patient_id, CLINICAL).id
            else:
                require(actor, CLINICAL)
            record(s, actor, action, patient_id=patient_id, outcome=outcome, detail=detail)
            # (still in force: checked after the write, in its transaction, as in Patients.create_patient — on
            # SQLite a transaction that reads first fails at once when another write commits meanwhile)
            require(actor, CLINICAL, s=s)

    def log_each(self, actor: Actor, action: str, patient_ids, *, detail: str = "") -> None:
        """Record an action that touched several patients (a clinic-wide export): one row per patient, so the
        question "was this patient's record exported?" has an answer; one row without a patient when there were
        none. All patients must be ones the actor may see; the rows are written together or not at all."""
        _external(action)
        with self._sessions() as s, s.begin():
            require(actor, CLINICAL, s=s)
            ids = list(dict.fromkeys(patient_in_scope(s, actor, pid, CLINICAL).id for pid in patient_ids))
            for pid in ids:
                record(s, actor, action, patient_id=pid, detail=detail)
            if not ids:
                record(s, actor, action, detail=detail)

    def events(self, actor: Actor, *, since: dt.datetime | dt.date | None = None, action: str | None = None,
               account: str | None = None, patient_id: int | None = None, limit: int = 1000) -> list[AuditRecord]:
        """Newest first. An admin sees their clinic's rows; the system actor without a clinic sees all."""
        require(actor, ADMIN)
        q = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(max(1, int(limit)))
        if actor.clinic_id is not None:
            q = q.where(AuditEvent.clinic_id == actor.clinic_id)
        if since is not None:
            if not isinstance(since, dt.datetime):
                since = dt.datetime.combine(since, dt.time(), tzinfo=dt.timezone.utc)
            else:
                since = as_utc(since)
            q = q.where(AuditEvent.at >= since)
        if action:
            q = q.where(AuditEvent.action == action)
        if account:
            q = q.where(AuditEvent.account == account)
        if patient_id is not None:
            q = q.where(AuditEvent.patient_id == int(patient_id))
        with self._sessions() as s:
            require(actor, ADMIN, s=s)
            return [
                AuditRecord(id=e.id, at=as_utc(e.at),
                            account=e.account, clinic_id=e.clinic_id, action=e.action, patient_id=e.patient_id,
                            outcome=e.outcome, detail=e.detail)
                for e in s.scalars(q)
            ]
