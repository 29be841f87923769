"""Conversations are trees: each message has a parent, each chat shows one leaf.

Today's chats become lines: a message's parent is the previous message of its chat, and
the chat shows its newest message. Downgrade drops both columns (branches become a line
in id order again).

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Plain ADD COLUMN: a batch rebuild of the table would drop the search triggers on SQLite.
    op.add_column("messages", sa.Column("parent_id", ID, nullable=True))
    op.add_column("chats", sa.Column("current_message_id", ID, nullable=True))
    op.add_column("chats", sa.Column("branched", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.execute(
        "UPDATE messages SET parent_id = (SELECT max(earlier.id) FROM messages AS earlier "
        "WHERE earlier.chat_id = messages.chat_id AND earlier.id < messages.id)"
    )
    op.execute("UPDATE chats SET current_message_id = (SELECT max(id) FROM messages WHERE messages.chat_id = chats.id)")
    op.create_index("ix_messages_chat_parent", "messages", ["chat_id", "parent_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_messages_chat_parent", table_name="messages")
    op.drop_column("chats", "branched")
    op.drop_column("chats", "current_message_id")
    op.drop_column("messages", "parent_id")
