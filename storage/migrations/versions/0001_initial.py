"""Initial schema: patients, treatments, visits, photos, measurements, comparisons.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _pk(table: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}"))


def _patient_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["patient_id"], ["patients.id"], name=op.f(f"fk_{table}_patient_id_patients"), ondelete="CASCADE"
    )


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        _created_at(),
        _pk("patients"),
        sa.UniqueConstraint("code", name=op.f("uq_patients_code")),
    )
    op.create_table(
        "treatments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("procedure", sa.String(length=100), nullable=False),
        sa.Column("needle_depth_mm", sa.Float(), nullable=True),
        sa.Column("area", sa.String(length=200), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        _created_at(),
        _patient_fk("treatments"),
        _pk("treatments"),
    )
    op.create_index(op.f("ix_treatments_patient_id_date"), "treatments", ["patient_id", "date"])

    op.create_table(
        "visits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        _created_at(),
        _patient_fk("visits"),
        _pk("visits"),
    )
    op.create_index(op.f("ix_visits_patient_id_date"), "visits", ["patient_id", "date"])

    op.create_table(
        "photos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("visit_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(length=100), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("capture", sa.JSON(), nullable=False),
        sa.Column("quality", sa.JSON(), nullable=True),
        _created_at(),
        _patient_fk("photos"),
        sa.ForeignKeyConstraint(
            ["visit_id"], ["visits.id"], name=op.f("fk_photos_visit_id_visits"), ondelete="CASCADE"
        ),
        _pk("photos"),
        sa.UniqueConstraint("visit_id", "sha256", name=op.f("uq_photos_visit_id_sha256")),
    )
    op.create_index(op.f("ix_photos_patient_id_region"), "photos", ["patient_id", "region"])
    op.create_index(op.f("ix_photos_sha256"), "photos", ["sha256"])
    op.create_index(op.f("ix_photos_visit_id"), "photos", ["visit_id"])

    op.create_table(
        "measurements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("algorithm_version", sa.String(length=40), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("roughness_index", sa.Float(), nullable=True),
        sa.Column("scars", sa.JSON(), nullable=False),
        sa.Column("px_per_mm", sa.Float(), nullable=True),
        sa.Column("scale_source", sa.String(length=40), nullable=False),
        _created_at(),
        _patient_fk("measurements"),
        sa.ForeignKeyConstraint(
            ["photo_id"], ["photos.id"], name=op.f("fk_measurements_photo_id_photos"), ondelete="CASCADE"
        ),
        _pk("measurements"),
        sa.UniqueConstraint(
            "photo_id", "algorithm_version", name=op.f("uq_measurements_photo_id_algorithm_version")
        ),
    )
    op.create_index(op.f("ix_measurements_patient_id"), "measurements", ["patient_id"])

    op.create_table(
        "comparisons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(length=100), nullable=False),
        sa.Column("baseline_photo_id", sa.Integer(), nullable=False),
        sa.Column("followup_photo_id", sa.Integer(), nullable=False),
        sa.Column("algorithm_version", sa.String(length=40), nullable=False),
        sa.Column("change_pct", sa.Float(), nullable=True),
        sa.Column("ci_low", sa.Float(), nullable=True),
        sa.Column("ci_high", sa.Float(), nullable=True),
        sa.Column("mdc_pct", sa.Float(), nullable=True),
        sa.Column("significant", sa.Boolean(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        _created_at(),
        _patient_fk("comparisons"),
        sa.ForeignKeyConstraint(
            ["baseline_photo_id"], ["photos.id"],
            name=op.f("fk_comparisons_baseline_photo_id_photos"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["followup_photo_id"], ["photos.id"],
            name=op.f("fk_comparisons_followup_photo_id_photos"), ondelete="CASCADE",
        ),
        _pk("comparisons"),
        sa.UniqueConstraint(
            "baseline_photo_id", "followup_photo_id", "algorithm_version",
            name=op.f("uq_comparisons_pair_version"),
        ),
    )
    op.create_index(op.f("ix_comparisons_followup_photo_id"), "comparisons", ["followup_photo_id"])
    op.create_index(op.f("ix_comparisons_patient_id_region"), "comparisons", ["patient_id", "region"])


def downgrade() -> None:
    for table in ("comparisons", "measurements", "photos", "visits", "treatments", "patients"):
        op.drop_table(table)
