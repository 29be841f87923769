"""Trash, versions, the change log for sync, API keys, and indexed chat metadata.

Chats get `trashed_at` and `version`, messages `version`; users the counter of their
change log (`change_seq`) and the last sequence number pruned from it (`pruned_seq`).
`chat_metadata` holds each chat's metadata a key a row, filled from today's chats.

Plain ADD COLUMN and CREATE TABLE: a batch rebuild of `chats` or `messages` would drop
the search triggers on SQLite. Downgrade drops all of it (chats in the trash are deleted
first: without the column they would come back).

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("chats", sa.Column("version", sa.BigInteger(), server_default="1", nullable=False))
    op.add_column("chats", sa.Column("trashed_at", TIMESTAMP, nullable=True))
    trash = sa.text("trashed_at IS NOT NULL")
    op.create_index("ix_chats_trashed_at", "chats", ["trashed_at"], postgresql_where=trash, sqlite_where=trash)
    op.add_column("messages", sa.Column("version", sa.BigInteger(), server_default="1", nullable=False))
    op.add_column("users", sa.Column("change_seq", sa.BigInteger(), server_default="0", nullable=False))
    op.add_column("users", sa.Column("pruned_seq", sa.BigInteger(), server_default="0", nullable=False))

    op.create_table(
        "chat_metadata",
        sa.Column("chat_id", ID, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("owner_id", ID, nullable=False),
        sa.Column("value", sa.String(length=512), nullable=False),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chats.id"], name=op.f("fk_chat_metadata_chat_id_chats"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_chat_metadata_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("chat_id", "key", name=op.f("pk_chat_metadata")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_chat_metadata_owner_pair", "chat_metadata", ["owner_id", "key", "value", "chat_id"])
    pairs = (
        "SELECT chats.id, pair.key, chats.owner_id, pair.value FROM chats, json_each(chats.metadata) AS pair"
        if op.get_bind().dialect.name == "sqlite"
        else "SELECT chats.id, pair.key, chats.owner_id, pair.value FROM chats, json_each_text(chats.metadata) AS pair"
    )
    op.execute(f"INSERT INTO chat_metadata (chat_id, key, owner_id, value) {pairs}")

    op.create_table(
        "changes",
        sa.Column("owner_id", ID, nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("object_id", ID, nullable=False),
        sa.Column("chat_id", ID, nullable=False),
        sa.Column("change", sa.String(length=8), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("kind IN ('chat', 'message')", name=op.f("ck_changes_kind")),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_changes_owner_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("owner_id", "seq", name=op.f("pk_changes")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_changes_at", "changes", ["at"])

    op.create_table(
        "api_keys",
        sa.Column("id", ID, nullable=False),
        sa.Column("owner_id", ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.String(length=32), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.Column("last_used_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_api_keys_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index("ix_api_keys_owner_id", "api_keys", ["owner_id"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_owner_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_index("ix_changes_at", table_name="changes")
    op.drop_table("changes")
    op.drop_index("ix_chat_metadata_owner_pair", table_name="chat_metadata")
    op.drop_table("chat_metadata")
    op.execute("DELETE FROM chats WHERE trashed_at IS NOT NULL")
    op.drop_column("users", "pruned_seq")
    op.drop_column("users", "change_seq")
    op.drop_column("messages", "version")
    op.drop_index("ix_chats_trashed_at", table_name="chats")
    op.drop_column("chats", "trashed_at")
    op.drop_column("chats", "version")
