"""SQLAlchemy 2 declarative models: the database schema of Relief.

The schema is created and changed only by Alembic migrations (``storage/migrations``); these models are
its single description in Python, and a test asserts that the migrated database matches them.

Every row that belongs to a patient carries ``patient_id`` (also where it could be reached through a
join), so each query of the service can be scoped by patient with one ``WHERE``. Deleting a patient or a
visit deletes everything below it through ``ON DELETE CASCADE`` in the database itself.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Base", "Clinic", "Account", "Patient", "Consent", "PatientLink", "AuditEvent", "Treatment", "Visit", "Photo",
    "Measurement", "Comparison", "utcnow",
]

# Deterministic constraint names, identical on SQLite and PostgreSQL, so migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """Timezone-aware current time in UTC (the only clock the storage uses)."""
    return dt.datetime.now(dt.timezone.utc)


def as_utc(t: dt.datetime | None) -> dt.datetime | None:
    """A stored time as timezone-aware UTC (SQLite hands back naive values of what was written in UTC)."""
    return t.replace(tzinfo=dt.timezone.utc) if t is not None and t.tzinfo is None else t


class UTCDateTime(TypeDecorator):
    """A point in time, always written in UTC and read back aware (UTC).

    SQLite keeps no offset: an aware time written in the server's local zone (a patient link's "end of the
    day") was read back as if it were UTC, so on a server at UTC+9 a link opened nine hours after its expiry.
    Converting every value to UTC on the way in makes both databases store and compare the same instant. A naive
    value is taken as UTC (the storage's only clock, :func:`utcnow`, is UTC).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if isinstance(value, dt.datetime):
            return value.astimezone(dt.timezone.utc) if value.tzinfo is not None else value.replace(
                tzinfo=dt.timezone.utc)
        return value

    def process_result_value(self, value, dialect):
        if not isinstance(value, dt.datetime):
            return value
        # (PostgreSQL hands back the session's time zone, SQLite a naive value)
        return value.astimezone(dt.timezone.utc) if value.tzinfo is not None else as_utc(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        dt.datetime: UTCDateTime(),
    }


def _patient_fk() -> Mapped[int]:
    return mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), nullable=False)


class Clinic(Base):
    """A clinic: the unit of data separation. Every account and every patient belongs to exactly one."""

    __tablename__ = "clinics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Account(Base):
    """A person who signs in. ``role`` is ``admin``, ``practitioner`` or ``viewer``."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    #: Argon2id hash (argon2-cffi's encoded form); NULL for accounts that sign in by single sign-on only.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    #: ``email`` stripped and case-folded (``storage.accounts.email_key``): unique, so the database holds one
    #: account per address (single sign-on needs it).
    #: NULL without an address, and for the second holder of an address in a database from before revision 0004.
    email_key: Mapped[str | None] = mapped_column(String(255), unique=True, index=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: No sign-in is evaluated before this time (throttling after failures, then lock-out).
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_sign_in: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: Counts the times the account's sessions were ended without a change of password (disabling): part of its
    #: credential stamp (``storage.access.credential_stamp``), so enabling it again does not revive them.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Patient(Base):
    __tablename__ = "patients"
    __table_args__ = (UniqueConstraint("clinic_id", "code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    #: The clinic's own reference (file number); unique within the clinic when given.
    code: Mapped[str | None] = mapped_column(String(100))
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    visits: Mapped[list[Visit]] = relationship(back_populates="patient", passive_deletes=True)
    treatments: Mapped[list[Treatment]] = relationship(back_populates="patient", passive_deletes=True)


class Consent(Base):
    """One consent decision: ``kind`` is ``clinical`` (photography for care) or ``marketing`` (teaching and
    marketing). A withdrawal is a new row with ``granted = False``; the newest row of a kind is in force."""

    __tablename__ = "consents"
    __table_args__ = (Index(None, "patient_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = _patient_fk()
    kind: Mapped[str] = mapped_column(String(20))
    granted: Mapped[bool] = mapped_column(Boolean)
    #: The day the patient gave (or withdrew) consent.
    date: Mapped[dt.date] = mapped_column(Date)
    recorded_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PatientLink(Base):
    """A read-only link for one patient. Only the SHA-256 of its token is stored."""

    __tablename__ = "patient_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = _patient_fk()
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class AuditEvent(Base):
    """Append-only audit log (database triggers refuse UPDATE and DELETE). No foreign keys: a row outlives
    the account, clinic or patient it names."""

    __tablename__ = "audit_events"
    __table_args__ = (Index(None, "clinic_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    account: Mapped[str] = mapped_column(String(100), default="")
    clinic_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(40))
    patient_id: Mapped[int | None] = mapped_column(Integer, index=True)
    outcome: Mapped[str] = mapped_column(String(20), default="ok")
    detail: Mapped[str] = mapped_column(Text, default="")


class Treatment(Base):
    __tablename__ = "treatments"
    __table_args__ = (Index(None, "patient_id", "date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = _patient_fk()
    date: Mapped[dt.date] = mapped_column(Date)
    procedure: Mapped[str] = mapped_column(String(100), default="micro-needling")
    needle_depth_mm: Mapped[float | None] = mapped_column(Float)
    area: Mapped[str] = mapped_column(String(200), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="treatments")


class Visit(Base):
    """A photo session on one day."""

    __tablename__ = "visits"
    __table_args__ = (Index(None, "patient_id", "date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = _patient_fk()
    date: Mapped[dt.date] = mapped_column(Date)
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="visits")
    photos: Mapped[list[Photo]] = relationship(
        back_populates="visit", passive_deletes=True, order_by="Photo.id"
    )


class Photo(Base):
    """One uploaded photo; its bytes live in the content-addressed store under ``sha256``.

    One row per (visit, sha256): the same bytes uploaded twice in a visit are one photo; the same bytes in
    two visits (or for two patients) are two rows that share one file.
    """

    __tablename__ = "photos"
    __table_args__ = (
        UniqueConstraint("visit_id", "sha256"),
        Index(None, "patient_id", "region"),
        Index(None, "sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id", ondelete="CASCADE"), index=True)
    patient_id: Mapped[int] = _patient_fk()
    region: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255), default="")
    content_type: Mapped[str] = mapped_column(String(100))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    capture: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: ``{ok, warnings, codes, values}`` from the quality gate, or NULL before the first measurement.
    quality: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    visit: Mapped[Visit] = relationship(back_populates="photos")


class Measurement(Base):
    """The library's measurement of one photo by one algorithm version (a cache keyed by both)."""

    __tablename__ = "measurements"
    __table_args__ = (UniqueConstraint("photo_id", "algorithm_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"))
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patients.id", ondelete="CASCADE"), index=True
    )
    algorithm_version: Mapped[str] = mapped_column(String(40))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    roughness_index: Mapped[float | None] = mapped_column(Float)
    scars: Mapped[list[Any]] = mapped_column(default=list)
    px_per_mm: Mapped[float | None] = mapped_column(Float)
    scale_source: Mapped[str] = mapped_column(String(40), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Comparison(Base):
    """Change between a baseline and a follow-up photo of one region, by one algorithm version."""

    __tablename__ = "comparisons"
    __table_args__ = (
        # Named by hand: the conventional name would exceed PostgreSQL's 63-character limit.
        UniqueConstraint(
            "baseline_photo_id", "followup_photo_id", "algorithm_version",
            name="uq_comparisons_pair_version",
        ),
        Index(None, "patient_id", "region"),
        Index(None, "followup_photo_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = _patient_fk()
    region: Mapped[str] = mapped_column(String(100))
    baseline_photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"))
    followup_photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"))
    algorithm_version: Mapped[str] = mapped_column(String(40))
    change_pct: Mapped[float | None] = mapped_column(Float)
    ci_low: Mapped[float | None] = mapped_column(Float)
    ci_high: Mapped[float | None] = mapped_column(Float)
    mdc_pct: Mapped[float | None] = mapped_column(Float)
    significant: Mapped[bool] = mapped_column(Boolean, default=False)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
