"""One account per e-mail address, held by the database.

Single sign-on finds the account by its e-mail address and refuses an address that two accounts hold, so a second
holder would lock the first out. ``Accounts.add`` refused a taken address by looking first, which two admins adding
accounts at the same moment could both pass. ``accounts.email_key`` (the address case-folded) now carries a unique
index. An address that an older database already holds twice keeps its key on the first account only; single
sign-on goes on refusing it (it matches the address itself) until an admin removes the address from one of them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("email_key", sa.String(length=255), nullable=True))
    accounts = sa.table("accounts", sa.column("id", sa.Integer), sa.column("email", sa.String),
                        sa.column("email_key", sa.String))
    conn = op.get_bind()
    seen: set[str] = set()
    rows = conn.execute(sa.select(accounts.c.id, accounts.c.email).where(accounts.c.email.is_not(None))
                        .order_by(accounts.c.id)).all()
    for account_id, email in rows:
        key = email.strip().casefold()  # as storage.accounts.email_key (kept here: a migration is frozen)
        if not key or key in seen:
            continue
        seen.add(key)
        conn.execute(accounts.update().where(accounts.c.id == account_id).values(email_key=key))
    op.create_index(op.f("ix_accounts_email_key"), "accounts", ["email_key"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_accounts_email_key"), table_name="accounts")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("email_key")
