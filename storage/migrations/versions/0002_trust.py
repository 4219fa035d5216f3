"""Clinics, accounts, consent, patient links and the append-only audit log; patients belong to a clinic.

Existing patients move to clinic ``MAIN`` (the clinic of the first admin). A patient's code becomes unique
within its clinic (it was unique across the database, which told one clinic about another's codes).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_APPEND_ONLY = "the audit log is append-only"


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "clinics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinics")),
        sa.UniqueConstraint("code", name=op.f("uq_clinics_code")),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("must_change_password", sa.Boolean(), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_sign_in", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinics.id"], name=op.f("fk_accounts_clinic_id_clinics")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("username", name=op.f("uq_accounts_username")),
    )
    op.create_index(op.f("ix_accounts_clinic_id"), "accounts", ["clinic_id"])

    # Existing patients belong to clinic MAIN.
    clinics = sa.table("clinics", sa.column("id", sa.Integer), sa.column("code", sa.String),
                       sa.column("name", sa.String), sa.column("created_at", sa.DateTime(timezone=True)))
    op.execute(clinics.insert().values(id=1, code="MAIN", name="Main clinic", created_at=sa.func.now()))
    if op.get_bind().dialect.name == "postgresql":  # an explicit id does not advance the serial's sequence
        op.execute("SELECT setval(pg_get_serial_sequence('clinics', 'id'), (SELECT MAX(id) FROM clinics))")
    with op.batch_alter_table("patients") as b:
        b.add_column(sa.Column("clinic_id", sa.Integer(), nullable=False, server_default="1"))
        b.drop_constraint("uq_patients_code", type_="unique")
        b.create_unique_constraint(op.f("uq_patients_clinic_id_code"), ["clinic_id", "code"])
        b.create_foreign_key(op.f("fk_patients_clinic_id_clinics"), "clinics", ["clinic_id"], ["id"])
        b.create_index(op.f("ix_patients_clinic_id"), ["clinic_id"])
    with op.batch_alter_table("patients") as b:
        b.alter_column("clinic_id", server_default=None)

    op.create_table(
        "consents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("recorded_by", sa.String(length=100), nullable=False),
        _created_at(),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_consents_patient_id_patients"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    op.create_index(op.f("ix_consents_patient_id_kind"), "consents", ["patient_id", "kind"])

    op.create_table(
        "patient_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        _created_at(),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"],
                                name=op.f("fk_patient_links_patient_id_patients"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_patient_links_token_hash")),
    )

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_clinic_id_at"), "audit_events", ["clinic_id", "at"])

    # Append-only, enforced by the database itself (not only by the absence of an API).
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION relief_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{_APPEND_ONLY}'; END $$"
        )
        op.execute("CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events "
                   "FOR EACH ROW EXECUTE FUNCTION relief_audit_append_only()")
        op.execute("CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
                   "FOR EACH STATEMENT EXECUTE FUNCTION relief_audit_append_only()")
    else:
        for what in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_events_no_{what.lower()} BEFORE {what} ON audit_events "
                       f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_change ON audit_events")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS relief_audit_append_only()")
    op.drop_table("audit_events")
    op.drop_table("patient_links")
    op.drop_table("consents")
    with op.batch_alter_table("patients") as b:
        b.drop_index(op.f("ix_patients_clinic_id"))
        b.drop_constraint(op.f("fk_patients_clinic_id_clinics"), type_="foreignkey")
        b.drop_constraint(op.f("uq_patients_clinic_id_code"), type_="unique")
        b.create_unique_constraint("uq_patients_code", ["code"])
        b.drop_column("clinic_id")
    op.drop_table("accounts")
    op.drop_table("clinics")
