"""End an account's sessions for good when it is disabled.

A session is checked against its account's credential stamp (``storage.access.credential_stamp``), which changed
only with the password. Disabling refused the account's sessions while it stayed disabled, but enabling it again let
a session that had made no request meanwhile (a tab left open, an actor kept by a script) go on. ``accounts.
session_epoch`` counts the times the account was disabled and is part of the stamp.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:  # (SQLite drops a column by copying the table)
        batch.drop_column("session_epoch")
