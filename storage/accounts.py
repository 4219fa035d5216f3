"""Clinics and accounts: passwords (Argon2id), sign-in with throttling and lock-out, account administration.

Sign-in policy (constants below):

* passwords have at least :data:`MIN_PASSWORD_LENGTH` characters and are stored only as Argon2id hashes
  (``argon2-cffi``'s defaults: 64 MiB, 3 passes); they are never logged;
* after :data:`FREE_FAILURES` consecutive failures every further attempt must wait 2, 4, 8 … seconds (attempts
  in the wait are refused unchecked); the :data:`LOCK_AFTER`-th consecutive failure locks the account for
  :data:`LOCK_MINUTES` minutes; a successful sign-in resets the count;
* every refusal — unknown name, wrong password, disabled, throttled or locked — has the same message
  (:data:`SIGN_IN_FAILED`), and an unknown name costs the same hash computation as a known one.

Single sign-on (:meth:`Accounts.sign_in_sso`): the identity provider has already checked the person; the e-mail
it vouches for (verified) must belong, compared without regard to case, to exactly one enabled account, whose
:class:`Actor` it becomes. Any other case is refused with the same :data:`SIGN_IN_FAILED` message. Password
throttling does not apply (no password is tried); every attempt is one audit row (``sign_in``, detail
``single sign-on``). An account without a password (:meth:`Accounts.remove_password`, or created without one)
signs in only that way: with a provider that asks for a second factor, that is two-factor sign-in, and nobody can
get past it with a password.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from . import audit, links
from .access import ADMIN, ROLES, Actor, credential_stamp, require
from .errors import AccessDenied, Conflict, NotFound, OptionError, SignInFailed
from .models import Account, Clinic, Patient, PatientLink, as_utc, utcnow

__all__ = ["Accounts", "AccountRecord", "MIN_PASSWORD_LENGTH", "FREE_FAILURES", "LOCK_AFTER", "LOCK_MINUTES",
           "SIGN_IN_FAILED", "check_password"]

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
FREE_FAILURES = 2
LOCK_AFTER = 6
LOCK_MINUTES = 15
SIGN_IN_FAILED = ("sign-in failed: wrong user name or password, or too many attempts — wait a moment and try "
                  "again, or ask your clinic's admin")
_NO_WAY_IN = ("an account without a password signs in only through single sign-on: give it the e-mail address "
              "the identity provider reports for the person")
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_CLINIC_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,39}$")
_hasher = PasswordHasher()  # Argon2id
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def _masked(name: str) -> str:
    """An unknown user name as the audit log keeps it: only its length. What people type into the user-name box
    by mistake is often their password, of which nothing is to be logged."""
    return f"(unknown user name of {len(name)} characters)"


@dataclass(frozen=True)
class AccountRecord:
    id: int
    username: str
    role: str
    clinic_code: str
    email: str | None
    disabled: bool
    must_change_password: bool
    #: False: the account signs in only through single sign-on (it has no password).
    has_password: bool
    locked_until: dt.datetime | None
    last_sign_in: dt.datetime | None
    created_at: dt.datetime


def check_password(password: object) -> str:
    """The password if it is acceptable, else an :class:`OptionError` that says what is needed."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise OptionError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters; a phrase of several "
                          "words is easy to remember")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise OptionError(f"the password is longer than {MAX_PASSWORD_LENGTH} characters; choose a shorter one")
    if password.strip() != password:
        raise OptionError("the password starts or ends with a space; remove it")
    return password


def _check_username(name: object) -> str:
    if not isinstance(name, str) or not _USERNAME.fullmatch(name):
        raise OptionError("a user name has 1-100 letters, digits, '.', '_', '@' or '-' and starts with a letter "
                          "or digit")
    return name


def email_key(email: str) -> str:
    """The form in which e-mail addresses are compared (``Account.email_key``): stripped and case-folded, so
    ``Dr.Sso@Clinic.example`` and ``dr.sso@CLINIC.example`` are one address, by one rule in every place."""
    return email.strip().casefold()


def _check_email(email: object) -> str | None:
    """An account's e-mail (used to match single sign-on), stripped; ``None`` for none."""
    if email is None or (isinstance(email, str) and not email.strip()):
        return None
    # (case folding never shortens a string, so the key's length bounds both columns)
    if not isinstance(email, str) or len(email_key(email)) > 255 or not _EMAIL.fullmatch(email.strip()):
        raise OptionError("an e-mail address looks like name@clinic.example (one '@', no spaces)")
    return email.strip()


def _count_attempt(s: Session, which, now: dt.datetime):
    """Count one password attempt on the account ``which`` selects, *before* its password is checked: one atomic
    update, refused while the account waits or is locked (simultaneous attempts are serialised by the row's lock).
    Sets the wait after too many failures. Returns the row (id, failed_attempts, password_hash, clinic_id,
    disabled), or None when the account waits, is locked, has no password or does not exist."""
    row = s.execute(
        update(Account)
        .where(which, Account.password_hash.is_not(None),
               or_(Account.locked_until.is_(None), Account.locked_until <= now))
        .values(failed_attempts=Account.failed_attempts + 1)
        .returning(Account.id, Account.failed_attempts, Account.password_hash, Account.clinic_id, Account.disabled)
    ).first()
    if row is not None:
        n = row.failed_attempts  # this attempt counted as failed until its password proves right
        if n >= LOCK_AFTER:
            wait = dt.timedelta(minutes=LOCK_MINUTES)
        elif n > FREE_FAILURES:
            wait = dt.timedelta(seconds=2 ** (n - FREE_FAILURES))
        else:
            wait = None
        if wait is not None:
            s.execute(update(Account).where(Account.id == row.id).values(locked_until=now + wait))
    return row


class Accounts:
    """Accounts and clinics. ``clock`` is injectable so tests can pass time instead of sleeping."""

    def __init__(self, sessions: sessionmaker, clock: Callable[[], dt.datetime] = utcnow):
        self._sessions = sessions
        self.clock = clock

    # ----------------------------------------------------------------------------------- bootstrap
    def ensure_first_admin(self, password: str | None = None) -> str | None:
        """On a store without an admin, create the account ``admin`` (role admin, clinic ``MAIN``).

        With ``password`` (the app passes ``RELIEF_ADMIN_PASSWORD``) that is its password. Without, a random
        one-time password is generated, returned (the caller prints it once) and must be changed at the first
        sign-in. Returns ``None`` when accounts already exist or the password was given.
        """
        one_time = password is None
        pw = secrets.token_urlsafe(12) if one_time else check_password(password)
        try:
            with self._sessions() as s, s.begin():
                if s.scalar(select(func.count(Account.id)).where(Account.role == "admin")):
                    return None
                clinic = self._clinic(s, "MAIN", create=True)
                s.add(Account(username="admin", clinic_id=clinic.id, role="admin", password_hash=_hasher.hash(pw),
                              disabled=False, must_change_password=one_time, failed_attempts=0,
                              created_at=self.clock()))
                audit.record(s, None, "account_created", account="system", clinic_id=clinic.id,
                             detail="first admin 'admin'")
        except IntegrityError:  # another process created it at the same moment
            return None
        return pw if one_time else None

    def first_start_pending(self) -> bool:
        """Whether the first admin still holds the one-time password printed at the first start (nobody has
        completed a first sign-in yet). Tells nothing about any patient."""
        with self._sessions() as s:
            return bool(s.scalar(select(func.count(Account.id)).where(
                Account.username == "admin", Account.must_change_password.is_(True),
                Account.last_sign_in.is_(None))))

    @staticmethod
    def _clinic(s: Session, code: str, *, create: bool = False) -> Clinic:
        code = str(code or "").strip().upper()
        if not _CLINIC_CODE.fullmatch(code):
            raise OptionError("a clinic code has 1-40 letters, digits, '_' or '-' (e.g. MAIN)")
        c = s.scalar(select(Clinic).where(Clinic.code == code))
        if c is None:
            if not create:
                raise NotFound(f"no clinic {code}; check the code")
            c = Clinic(code=code, name=code, created_at=utcnow())
            s.add(c)
            s.flush()
        return c

    def clinic_actor(self, code: str) -> Actor:
        """The server command line acting within clinic ``code`` (for reports and exports)."""
        with self._sessions() as s:
            c = self._clinic(s, code)
            return Actor.system(c.id, c.code)

    # -------------------------------------------------------------------------------------- sign-in
    def sign_in(self, username: str, password: str) -> Actor:
        """Check a user name and password; the signed-in :class:`Actor`, or :class:`SignInFailed`.

        The attempt is counted *before* its password is checked, by one atomic update of the account's row that
        is refused while the account waits or is locked: attempts sent at the same moment are serialised by
        the row's lock, so a burst gets no more checks than attempts one after the other (reading the count,
        checking for 0.1 s and writing it back let 11 simultaneous wrong passwords through with a count of 1).
        A right password then resets the count.
        """
        now = self.clock()
        name = str(username or "").strip()[:100]
        pw = str(password or "")
        try:
            with self._sessions() as s, s.begin():
                row = _count_attempt(s, Account.username == name, now) if name else None
                if row is None:
                    acc = s.scalar(select(Account).where(Account.username == name)) if name else None
                    audit.record(s, None, "sign_in", outcome="failed",
                                 account=_masked(name) if acc is None else name,
                                 clinic_id=None if acc is None else acc.clinic_id,
                                 detail="unknown user name" if acc is None else "throttled or locked"
                                 if acc.password_hash is not None else "no password: single sign-on only")
            if row is None:
                _verify(_DUMMY_HASH, pw)  # same cost as a real check: the delay tells nothing
                raise SignInFailed(SIGN_IN_FAILED)
            ok = _verify(row.password_hash, pw)
            actor = None  # (a refusal is raised after the commit, so that its audit row stays)
            # Each transaction starts with its write: on SQLite a read first would make the write fail at once
            # ("database is locked") when another attempt committed meanwhile, instead of waiting its turn.
            with self._sessions() as s, s.begin():
                if not ok:
                    audit.record(s, None, "sign_in", outcome="failed", account=name, clinic_id=row.clinic_id,
                                 detail=f"wrong password ({row.failed_attempts})")
                else:
                    # (the count is reset by a right password, as before the rewrite; a disabled account keeps it)
                    s.execute(update(Account).where(Account.id == row.id, Account.disabled.is_(False))
                              .values(failed_attempts=0, locked_until=None))
                    acc = s.get(Account, row.id)
                    if acc.password_hash != row.password_hash:
                        # Deleted or reset between the check and now: the password checked is no longer the
                        # account's, and a session begun with it would outlive the change.
                        audit.record(s, None, "sign_in", outcome="failed", account=name, clinic_id=acc.clinic_id,
                                     detail="the password changed during the sign-in")
                    elif acc.disabled:
                        s.execute(update(Account).where(Account.id == row.id)
                                  .values(failed_attempts=Account.failed_attempts - 1))  # (a right password)
                        audit.record(s, None, "sign_in", outcome="failed", account=name, clinic_id=acc.clinic_id,
                                     detail="disabled")
                    else:
                        acc.last_sign_in = now
                        actor = self._actor(s, acc)
                        audit.record(s, actor, "sign_in")
        except OperationalError:  # the database busy or gone: refused like any failure, in one line
            raise SignInFailed(SIGN_IN_FAILED) from None
        if actor is None:
            raise SignInFailed(SIGN_IN_FAILED)
        return actor

    def sign_in_sso(self, email: str, *, verified: bool) -> Actor:
        """Sign in the account whose e-mail an identity provider (single sign-on) has vouched for.

        Parameters
        ----------
        email : str
            The ``email`` claim of the identity provider's ID token; matched to :attr:`Account.email` without
            regard to case.
        verified : bool
            Whether the provider says the address is verified (its ``email_verified`` claim; ``True`` when the
            provider sends no such claim). An unverified address signs in nobody.

        Returns
        -------
        Actor
            The account's actor, never required to change its password (it did not use one).

        Raises
        ------
        SignInFailed
            With :data:`SIGN_IN_FAILED`, when the address is unverified, empty, belongs to no account, to a
            disabled account, or to more than one account. Each attempt leaves one ``sign_in`` audit row.
        """
        now = self.clock()
        addr = str(email or "").strip()
        shown = addr[:100]
        actor = None
        with self._sessions() as s, s.begin():
            # By the unique key; plus, in a database from before revision 0004, the second holder of an address
            # (its key left empty), so that such an address still signs in nobody.
            key = email_key(addr)
            accs = list(s.scalars(select(Account).where(or_(
                Account.email_key == key,
                Account.email_key.is_(None) & (func.lower(Account.email) == addr.lower()))))) if addr else []
            if not addr or not verified:
                audit.record(s, None, "sign_in", outcome="failed", account=shown,
                             detail="single sign-on: e-mail missing or not verified by the identity provider")
            elif not accs:
                audit.record(s, None, "sign_in", outcome="failed", account=shown,
                             detail="single sign-on: no account with this e-mail")
            elif len(accs) > 1:
                audit.record(s, None, "sign_in", outcome="failed", account=shown,
                             clinic_id=accs[0].clinic_id if len({a.clinic_id for a in accs}) == 1 else None,
                             detail=f"single sign-on: {len(accs)} accounts have this e-mail")
            elif accs[0].disabled:
                audit.record(s, None, "sign_in", outcome="failed", account=accs[0].username,
                             clinic_id=accs[0].clinic_id, detail="single sign-on: disabled")
            else:
                acc = accs[0]
                acc.last_sign_in = now
                actor = replace(self._actor(s, acc), must_change_password=False)
                audit.record(s, actor, "sign_in", detail="single sign-on")
        if actor is None:
            raise SignInFailed(SIGN_IN_FAILED)
        return actor

    def actor(self, account_id: int, *, single_sign_on: bool = False, stamp: str | None = None) -> Actor:
        """The current :class:`Actor` of a signed-in account (checked again on every page run, so disabling
        an account or changing its role takes effect at once). ``single_sign_on``: the session was opened by
        :meth:`sign_in_sso`, so a pending password change does not apply to it. ``stamp``: the
        :attr:`Actor.credential_stamp` the session began with; once the password has been changed or reset, or the
        account disabled, since, the session has ended (whoever knew the old password is out)."""
        with self._sessions() as s:
            acc = s.get(Account, int(account_id)) if isinstance(account_id, int) else None
            if acc is None or acc.disabled:
                raise SignInFailed("your session has ended; sign in again")
            actor = self._actor(s, acc)
            if stamp is not None and stamp != actor.credential_stamp:
                raise SignInFailed("the password of this account has been changed, or the account was disabled "
                                   "meanwhile; sign in again")
            return replace(actor, must_change_password=False) if single_sign_on else actor

    @staticmethod
    def _actor(s: Session, acc: Account) -> Actor:
        clinic = s.get(Clinic, acc.clinic_id)
        return Actor(kind="account", name=acc.username, role=acc.role, clinic_id=acc.clinic_id,
                     clinic_code=clinic.code if clinic else "", account_id=acc.id,
                     must_change_password=bool(acc.must_change_password), credential_stamp=credential_stamp(acc))

    def sign_out(self, actor: Actor) -> None:
        with self._sessions() as s, s.begin():
            audit.record(s, require(actor), "sign_out")

    def change_password(self, actor: Actor, old_password: str, new_password: str) -> Actor:
        """The signed-in account changes its own password (required after a one-time password).

        The current password is checked like a sign-in: each attempt counts towards the same waits and lock-out,
        and a wrong one is audited (a session left open must not let its holder guess the password at full speed).
        """
        require(actor)
        check_password(new_password)
        if new_password == old_password:
            raise OptionError("choose a new password different from the current one")
        now = self.clock()
        # Each transaction starts with its write (as in sign_in): on SQLite a read first would make the write fail
        # at once ("database is locked") when another one committed meanwhile.
        right = False  # the current password proved right (then a database error is not held against them)
        try:
            with self._sessions() as s, s.begin():
                row = _count_attempt(s, Account.id == actor.account_id, now) if actor.account_id else None
                if row is None:
                    audit.record(s, actor, "password_changed", outcome="failed", detail="throttled or locked")
            if row is None:
                raise SignInFailed("too many wrong passwords: wait a moment and try again (after "
                                   f"{LOCK_AFTER} in a row, {LOCK_MINUTES} minutes)")
            ok = _verify(row.password_hash, str(old_password or "")) and not row.disabled
            if not ok:
                with self._sessions() as s, s.begin():
                    audit.record(s, actor, "password_changed", outcome="failed", detail="disabled" if row.disabled
                                 else f"wrong current password ({row.failed_attempts})")
                raise SignInFailed("the current password is not right; type it again")
            right = True
            new_hash = _hasher.hash(new_password)  # (before the transaction: it takes a tenth of a second)
            with self._sessions() as s, s.begin():
                s.execute(update(Account).where(Account.id == row.id).values(
                    password_hash=new_hash, must_change_password=False, failed_attempts=0, locked_until=None))
                new_actor = self._actor(s, s.get(Account, row.id))
                audit.record(s, new_actor, "password_changed")
                return new_actor
        except OperationalError:  # the database busy or gone: one line; a right password's attempt is uncounted
            if right:
                with contextlib.suppress(OperationalError), self._sessions() as s, s.begin():
                    s.execute(update(Account).where(Account.id == actor.account_id, Account.failed_attempts > 0)
                              .values(failed_attempts=Account.failed_attempts - 1))
            raise SignInFailed("the database is busy; try again in a moment") from None

    # ------------------------------------------------------------------------------- administration
    def _scope(self, s: Session, actor: Actor, username: str) -> Account:
        require(actor, ADMIN, s=s)
        q = select(Account).where(Account.username == str(username))
        if actor.clinic_id is not None:
            q = q.where(Account.clinic_id == actor.clinic_id)
        acc = s.scalar(q)
        if acc is None:  # (a name that cannot be a user name is not echoed: it may hold line breaks or markup)
            shown = username if isinstance(username, str) and _USERNAME.fullmatch(username) else "of that name"
            raise NotFound(f"no account {shown}; see the account list")
        return acc

    def add(self, actor: Actor, username: str, *, role: str, password: str | None, clinic: str | None = None,
            email: str | None = None, must_change_password: bool = False) -> AccountRecord:
        """Create an account. An admin creates accounts in their own clinic; the server CLI in any clinic
        (a new clinic code creates the clinic)."""
        require(actor, ADMIN)
        _check_username(username)
        if role not in ROLES:
            raise OptionError(f"role must be one of {', '.join(ROLES)}")
        if password is not None:
            check_password(password)
        email = _check_email(email)
        if password is None and email is None:
            raise OptionError(_NO_WAY_IN)
        try:
            with self._sessions() as s, s.begin():
                if actor.clinic_id is not None:
                    if clinic and str(clinic).strip().upper() != actor.clinic_code:
                        raise AccessDenied("you can create accounts only in your own clinic")
                    c = s.get(Clinic, actor.clinic_id)
                else:
                    if not clinic:
                        raise OptionError("give the account's clinic with --clinic CODE")
                    c = self._clinic(s, clinic, create=True)
                # One account per e-mail address, across clinics, held by the unique email_key: single sign-on
                # refuses an address that two accounts hold, so a second holder (another clinic's admin could add
                # one) would lock the first out.
                acc = Account(username=username, clinic_id=c.id, role=role, email=email,
                              email_key=email_key(email) if email else None,
                              password_hash=_hasher.hash(password) if password is not None else None,
                              disabled=False, must_change_password=bool(must_change_password), failed_attempts=0,
                              created_at=self.clock())
                s.add(acc)
                s.flush()
                require(actor, ADMIN, s=s)  # (still in force: refused here, the insert is rolled back)
                audit.record(s, actor, "account_created", clinic_id=c.id, detail=f"{username} ({role})")
                return self._rec(s, acc)
        except IntegrityError as err:
            # Which unique key was taken (the database's message differs between engines)?
            with self._sessions() as s:
                name_taken = s.scalar(select(func.count(Account.id)).where(Account.username == username))
                email_taken = bool(email) and s.scalar(
                    select(func.count(Account.id)).where(Account.email_key == email_key(email)))
            if name_taken:
                raise Conflict(f"the user name {username} is taken; choose another") from err
            if email_taken:
                raise Conflict("that e-mail address is already given to an account; single sign-on needs one "
                               "account per address — leave it empty or use the person's own address") from err
            raise Conflict("another change was saved at the same moment (e.g. the same new clinic); nothing was "
                           "created — try again") from err

    def list(self, actor: Actor) -> list[AccountRecord]:
        require(actor, ADMIN)
        with self._sessions() as s:
            require(actor, ADMIN, s=s)
            q = select(Account).order_by(Account.username)
            if actor.clinic_id is not None:
                q = q.where(Account.clinic_id == actor.clinic_id)
            return [self._rec(s, a) for a in s.scalars(q)]

    def set_disabled(self, actor: Actor, username: str, disabled: bool = True) -> AccountRecord:
        """Disable (or enable again) an account of the admin's clinic. Disabling ends its sessions at their next
        page and revokes every patient link it issued that is still open, in the same transaction (each audited
        ``link_revoked``): a leaver's or a stolen account's links stop with it. Enabling it again brings back
        neither: the person signs in again (a session kept open meanwhile stays ended: its credential stamp
        changed), and the patient gets a new link."""
        with self._sessions() as s, s.begin():
            acc = self._scope(s, actor, username)
            if disabled and actor.account_id == acc.id:
                raise OptionError("you cannot disable your own account; ask another admin")
            if disabled and not acc.disabled:
                acc.session_epoch = (acc.session_epoch or 0) + 1  # (ends every session for good; see the docstring)
            acc.disabled = bool(disabled)
            audit.record(s, actor, "account_disabled" if disabled else "account_enabled", clinic_id=acc.clinic_id,
                         detail=acc.username)
            if disabled:
                self._revoke_links(s, actor, acc, "was disabled")
            return self._rec(s, acc)

    @staticmethod
    def _issued_by(acc: Account) -> tuple:
        """Clauses selecting the patient links ``acc`` issued (in its clinic)."""
        return PatientLink.created_by == acc.username, Patient.clinic_id == acc.clinic_id

    def _revoke_links(self, s: Session, actor: Actor, acc: Account, why: str) -> int:
        """Revoke every open patient link ``acc`` issued, in the caller's transaction (each audited)."""
        return links.revoke_open(s, actor, *self._issued_by(acc), now=self.clock(),
                                 reason=f"its issuer {acc.username} {why}")

    def open_links(self, actor: Actor, username: str) -> int:
        """How many patient links an account of the admin's clinic issued that are still open (for the page that
        offers to revoke them with a password reset)."""
        with self._sessions() as s:
            return links.count_open(s, *self._issued_by(self._scope(s, actor, username)), now=self.clock())

    def remove_password(self, actor: Actor, username: str, *, revoke_links: bool = False) -> AccountRecord:
        """Make an account of the admin's clinic *single sign-on only*: its password is deleted, so it signs in
        only through the clinic's identity provider (and that provider's second factor, if it asks for one). Its
        sessions end at their next page (their credential stamp changes; a single sign-on one signs in again).
        :meth:`reset_password` gives it a password again.

        ``revoke_links``: also revoke every open patient link the account issued, in the same transaction (as
        disabling does) — for a password that may have been stolen: the links a thief issued would outlive it."""
        with self._sessions() as s, s.begin():
            acc = self._scope(s, actor, username)
            if actor.account_id == acc.id:
                raise OptionError("you cannot remove your own password; ask another admin")
            if acc.email is None:
                raise OptionError(_NO_WAY_IN)
            if acc.password_hash is not None:
                acc.password_hash = None
                acc.must_change_password = False
                acc.failed_attempts = 0
                acc.locked_until = None
                audit.record(s, actor, "password_removed", clinic_id=acc.clinic_id,
                             detail=f"{acc.username}: single sign-on only")
            if revoke_links:
                self._revoke_links(s, actor, acc, "lost its password")
            return self._rec(s, acc)

    def reset_password(self, actor: Actor, username: str, password: str, *, must_change: bool = True,
                       revoke_links: bool = False) -> AccountRecord:
        """Set a new password (and unlock). From the app the user must change it at the next sign-in.

        ``revoke_links``: also revoke every open patient link the account issued, in the same transaction (as
        disabling does) — when the old password may have been stolen: the links a thief issued would outlive it.
        A forgotten password leaves them (the patients' links go on working)."""
        check_password(password)
        with self._sessions() as s, s.begin():
            acc = self._scope(s, actor, username)
            acc.password_hash = _hasher.hash(password)
            acc.must_change_password = bool(must_change)
            acc.failed_attempts = 0
            acc.locked_until = None
            audit.record(s, actor, "password_reset", clinic_id=acc.clinic_id, detail=acc.username)
            if revoke_links:
                self._revoke_links(s, actor, acc, "had its password reset")
            return self._rec(s, acc)

    @staticmethod
    def _rec(s: Session, a: Account) -> AccountRecord:
        clinic = s.get(Clinic, a.clinic_id)
        return AccountRecord(id=a.id, username=a.username, role=a.role, clinic_code=clinic.code if clinic else "",
                             email=a.email, disabled=bool(a.disabled),
                             must_change_password=bool(a.must_change_password),
                             has_password=a.password_hash is not None, locked_until=as_utc(a.locked_until),
                             last_sign_in=as_utc(a.last_sign_in),
                             created_at=as_utc(a.created_at))


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
