"""chat and message metadata, pinned, archived, idempotency keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 04:45:44.187509
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("owner_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_idempotency_keys_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("owner_id", "key", name=op.f("pk_idempotency_keys")),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idempotency_keys_created_at"), ["created_at"], unique=False)

    with op.batch_alter_table("chats", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pinned", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("archived", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("metadata", sa.JSON(), server_default="{}", nullable=False))
        batch_op.drop_index(batch_op.f("ix_chats_owner_recent"))
        batch_op.create_index("ix_chats_owner_recent", ["owner_id", "pinned", "updated_at", "id"], unique=False)
        batch_op.create_index(
            "ix_chats_owner_list", ["owner_id", "archived", "pinned", "updated_at", "id"], unique=False
        )

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("model", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("metadata", sa.JSON(), server_default="{}", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("metadata")
        batch_op.drop_column("model")
        batch_op.drop_column("name")

    with op.batch_alter_table("chats", schema=None) as batch_op:
        batch_op.drop_index("ix_chats_owner_list")
        batch_op.drop_index("ix_chats_owner_recent")
        batch_op.create_index(batch_op.f("ix_chats_owner_recent"), ["owner_id", "updated_at", "id"], unique=False)
        batch_op.drop_column("metadata")
        batch_op.drop_column("archived")
        batch_op.drop_column("pinned")

    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_keys_created_at"))

    op.drop_table("idempotency_keys")
