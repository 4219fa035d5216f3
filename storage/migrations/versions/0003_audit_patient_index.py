"""Index the audit log by patient.

A privacy officer's question "who saw or exported this patient?" filters the audit log by patient, and a new
patient's id on SQLite is chosen past every id the log has seen (``storage.patients._unused_patient_id``): both
read ``audit_events.patient_id``, which without an index is a scan of the whole log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_audit_events_patient_id"), "audit_events", ["patient_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_events_patient_id"), table_name="audit_events")
