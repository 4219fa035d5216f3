"""Who is acting, and what they may do: the one place where access to patient data is decided.

Every method of the storage services takes the acting :class:`Actor` first. Patient rows are reached only
through :func:`patient_in_scope` (one patient) or :func:`patients_in_scope` (a ``WHERE`` clause for lists), which
filter by the actor's clinic — and, for a patient link, by its one patient — *in the query*, so a record of
another clinic is indistinguishable from one that does not exist (:class:`~storage.errors.NotFound` with the same
message). Roles are checked by :func:`require`.

An :class:`Actor` is a snapshot. Both doors, and :func:`require` given the transaction, check it again against the
database in the caller's transaction (:func:`in_force`): an account must still be enabled, in its clinic and role,
with the password it signed in with; a link still open, unexpired, with consent to clinical photography in force.
So a caller that keeps an actor — a long job, a script, a page run that began before an admin disabled the
account — cannot outlive a revocation; the dashboard's per-page check (:mod:`relief_app.auth`) is not the only one.

Roles
-----
==============  ===============================================================================
viewer          reads patients, photos, progress and comparisons of their clinic
practitioner    viewer + creates and edits patients, records consent, uploads, compares, issues links
admin           practitioner + manages the clinic's accounts and reads its audit log
link            (a patient link, not an account) reads one patient's progress: photos, results, visit and
                treatment dates; never notes, birth date, upload file names or consent history (CLINICAL)
system          the server's command line (``python -m storage``, reports); all rights in one clinic,
                or only account administration when no clinic is given
==============  ===============================================================================
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field

import numpy as np

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session

from .errors import AccessDenied, NotFound
from .models import Account, Patient, PatientLink, as_utc, utcnow

__all__ = ["Actor", "ROLES", "READ", "WRITE", "ADMIN", "CLINICAL", "require", "patient_in_scope",
           "patients_in_scope", "sees_clinical", "in_force", "link_in_force", "credential_stamp", "SESSION_ENDED",
           "INVALID_LINK"]

ROLES = ("admin", "practitioner", "viewer")
READ, WRITE, ADMIN = "read", "write", "admin"
#: Reading what only the clinic's staff read: clinical notes, birth date, upload file names, consent history.
CLINICAL = "clinical"
_RIGHTS = {
    "admin": {READ, WRITE, ADMIN, CLINICAL},
    "practitioner": {READ, WRITE, CLINICAL},
    "viewer": {READ, CLINICAL},
    "link": {READ},
    "system": {READ, WRITE, ADMIN, CLINICAL},
}
_VERB = {READ: "see patient data", WRITE: "change patient data (create, upload, edit, delete, compare)",
         ADMIN: "manage accounts or read the audit log", CLINICAL: "read clinical notes and consent records"}

PATIENT_NOT_FOUND = "no such patient; pick one from the patient list"
SESSION_ENDED = "your session has ended; sign in again"
INVALID_LINK = "this link is not valid — it may have expired or been revoked; ask your clinic for a new one"


@dataclass(frozen=True)
class Actor:
    """The account (or patient link, or server command line) on whose behalf storage is used.

    Made by :meth:`storage.Accounts.sign_in` / :meth:`storage.Accounts.actor`, :meth:`storage.PatientLinks.open`
    or :meth:`Actor.system`; pages never build one themselves. Frozen and hashable, so it can be part of a
    cache key.
    """

    kind: str  # "account" | "link" | "system"
    name: str  # user name, "link #<id>" or "system"
    role: str  # a ROLES entry, "link" or "system"
    clinic_id: int | None
    clinic_code: str = ""
    account_id: int | None = None
    patient_id: int | None = None  # a link's one patient
    link_id: int | None = None  # a link's row
    must_change_password: bool = False
    #: Changes whenever the account's password does (:meth:`storage.Accounts.actor` compares it): a session
    #: opened before a password change or reset ends. Not part of ``==``; Streamlit's caches, which hash the
    #: fields, miss once after a password change.
    credential_stamp: str = field(default="", compare=False, repr=False)

    @classmethod
    def system(cls, clinic_id: int | None = None, clinic_code: str = "") -> Actor:
        """The server's command line: all rights within ``clinic_id`` (or only account administration)."""
        return cls(kind="system", name="system", role="system", clinic_id=clinic_id, clinic_code=clinic_code)

    def can(self, right: str) -> bool:
        return right in _RIGHTS.get(self.role, ()) and not (self.must_change_password and right != READ)


def require(actor: object, right: str = READ, *, s: Session | None = None) -> Actor:
    """Check that ``actor`` is an :class:`Actor` holding ``right``; return it. Given the caller's transaction
    ``s``, also that the actor is still in force there (:func:`in_force`).

    Raises
    ------
    AccessDenied
        Not an actor (a caller that forgot to pass one), a role without the right, or an account whose session
        has ended.
    NotFound
        A patient link that is no longer valid.
    """
    if not isinstance(actor, Actor):
        raise AccessDenied("sign in first: this needs a signed-in account")
    if right not in _RIGHTS.get(actor.role, ()):
        raise AccessDenied(f"your role ({actor.role}) cannot {_VERB[right]}; ask your clinic's admin")
    if actor.must_change_password and right != READ:
        raise AccessDenied("change your one-time password first")
    if s is not None:
        in_force(s, actor)
    return actor


def credential_stamp(acc: Account) -> str:
    """Changes with every password change, reset or removal (the Argon2 hash has a new random salt each time) and
    every time the account is disabled (its ``session_epoch``): a session made before either has ended for good."""
    return hashlib.sha256(f"{acc.password_hash or ''}\n{acc.session_epoch or 0}".encode()).hexdigest()[:16]


def _now(s: Session) -> dt.datetime:
    # The store's clock (storage.Store puts it in its sessions' info: tests move it), else the time now.
    clock = s.info.get("clock")
    return clock() if clock is not None else utcnow()


def link_in_force(s: Session, link: PatientLink, now: dt.datetime | None = None) -> bool:
    """Whether ``link`` may show its patient at ``now`` (default: the store's clock): not revoked, not expired, and
    the patient's consent to clinical photography not withdrawn (a link shows the photos; also one issued at the
    moment of a withdrawal, or before withdrawals revoked links)."""
    from .consent import status_of  # (storage.consent builds on this module)

    if link.revoked_at is not None or (now or _now(s)) >= as_utc(link.expires_at):
        return False
    return not status_of(s, link.patient_id).clinical_withdrawn


def in_force(s: Session, actor: Actor) -> None:
    """Check, in the caller's transaction, that ``actor`` is still what it was made as.

    An account must exist, be enabled, belong to the same clinic with the same role, and hold the password it
    signed in with (:func:`credential_stamp`); a patient link must be open (:func:`link_in_force`) for the same
    patient. The server's command line (``system``) is not checked.

    Raises
    ------
    AccessDenied
        The account's session has ended (disabled, password changed, reset or removed).
    NotFound
        The link was revoked, has expired, or the patient's consent is withdrawn.
    """
    if actor.kind == "account":
        acc = s.get(Account, actor.account_id) if isinstance(actor.account_id, int) else None
        if (acc is None or acc.disabled or acc.clinic_id != actor.clinic_id or acc.role != actor.role
                or credential_stamp(acc) != actor.credential_stamp):
            raise AccessDenied(SESSION_ENDED)
    elif actor.kind == "link":
        link = s.get(PatientLink, actor.link_id) if isinstance(actor.link_id, int) else None
        if link is None or link.patient_id != actor.patient_id or not link_in_force(s, link):
            raise NotFound(INVALID_LINK)
    elif actor.kind != "system":
        raise AccessDenied("sign in first: this needs a signed-in account")


def patients_in_scope(s: Session, actor: Actor) -> ColumnElement[bool]:
    """``WHERE`` clause on :class:`~storage.models.Patient`: the patients ``actor`` may see (checked to be still in
    force in ``s``, the transaction the clause is for)."""
    in_force(s, actor)
    if actor.clinic_id is None:
        raise AccessDenied("this command needs a clinic; pass --clinic CODE")
    clause = Patient.clinic_id == actor.clinic_id
    if actor.kind == "link":
        clause = and_(clause, Patient.id == actor.patient_id)
    return clause


#: Row ids are 64-bit integers in both databases: a larger number names nothing (and must not reach the driver).
_MAX_ID = 2**63 - 1


def whole_number(value: object) -> int | None:
    """``value`` as an int when it is exactly a positive whole number that fits a row id — an int, a string of
    ASCII digits, or a number of any type equal to its integer part — else None.

    Only whole numbers name a record: ``int(Decimal("1.5"))`` is 1, so 1.5 would pass the check of patient 1 while
    an insert that uses the value as given lands elsewhere (PostgreSQL rounds it to 2). The callers go on with the
    int (the checked row's id), never with the value as given.
    """
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, str):
        n = int(value) if re.fullmatch(r"[0-9]{1,19}", value) else None
    else:
        try:
            n = int(value)  # type: ignore[call-overload]
            if value != n:
                return None
        except Exception:  # (TypeError, ValueError, OverflowError, a type without a defined comparison, ...)
            return None
    return n if n is not None and 0 < n <= _MAX_ID else None


def patient_in_scope(s: Session, actor: object, patient_id: object, right: str = READ) -> Patient:
    """The patient row if ``actor`` may exercise ``right`` on it, else an error.

    A patient of another clinic (or, for a link, any other patient) raises the same :class:`NotFound` as an id
    that does not exist — before the role is checked, so a role error never confirms that a record exists.
    """
    actor = require(actor, READ)
    pid = whole_number(patient_id)
    if pid is None:
        raise NotFound(PATIENT_NOT_FOUND)
    p = s.scalar(select(Patient).where(Patient.id == pid, patients_in_scope(s, actor)))
    if p is None:
        raise NotFound(PATIENT_NOT_FOUND)
    require(actor, right)
    return p


def sees_clinical(actor: Actor) -> bool:
    """Whether records read for ``actor`` keep their clinical fields (notes, birth date, upload file names); a
    patient link gets them blanked, in the record builders of the storage itself, so a page that shows a field
    it should not still has nothing to show. An account that must first change its one-time password does not
    (:meth:`Actor.can`, as for the consent history): whoever holds only that password reads no clinical note."""
    return actor.can(CLINICAL)
