"""The database schema: users own chats, chats hold messages."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql import false, text

from service.rules import (
    CHANGE_KINDS,
    EMAIL_MAX,
    METADATA_KEY_MAX,
    METADATA_VALUE_MAX,
    MODEL_MAX,
    NAME_MAX,
    ROLES,
    TITLE_MAX,
    USERNAME_MAX,
)

# 64-bit ids on PostgreSQL; SQLite's INTEGER PRIMARY KEY is already 64-bit (the rowid).
Id = BigInteger().with_variant(Integer(), "sqlite")


class Timestamp(TypeDecorator[datetime]):
    """A UTC time. SQLite hands back naive datetimes and PostgreSQL ones in the
    session's time zone; every value read is made aware and UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, _dialect: Any) -> datetime | None:
        if value is None or value.tzinfo is UTC:
            return value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX), unique=True)
    username: Mapped[str] = mapped_column(String(USERNAME_MAX), unique=True)
    hashed_password: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(Timestamp())
    # Access tokens name the generation they were issued in; bumping it revokes them all.
    token_generation: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # The sequence number of the user's last recorded change (see Change), and the last
    # one pruned from the log: a sync cursor below it is too old to follow.
    change_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    pruned_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")


# Client-defined string pairs. JSON, not JSONB: it keeps the client's text as sent.
Metadata = JSON()


class Chat(Base):
    __tablename__ = "chats"
    __table_args__ = (
        # A user's chats, pinned first, then most recently active: with the archived
        # ones left out (the default list), and with them.
        Index("ix_chats_owner_list", "owner_id", "archived", "pinned", "updated_at", "id"),
        Index("ix_chats_owner_recent", "owner_id", "pinned", "updated_at", "id"),
        # Only the trash, for the purge: small, and of no use to a planner looking for live chats.
        Index(
            "ix_chats_trashed_at",
            "trashed_at",
            postgresql_where=text("trashed_at IS NOT NULL"),
            sqlite_where=text("trashed_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    pinned: Mapped[bool] = mapped_column(Boolean, server_default=false())
    archived: Mapped[bool] = mapped_column(Boolean, server_default=false())
    meta: Mapped[dict[str, str]] = mapped_column("metadata", Metadata, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(Timestamp())
    updated_at: Mapped[datetime] = mapped_column(Timestamp())
    # The leaf the chat shows: the end of the path GET /v1/chats/{id} reads (null when empty).
    current_message_id: Mapped[int | None] = mapped_column(Id)
    # Whether any message ever had a sibling: until then the path shown is every message
    # in id order, read without walking parents.
    branched: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # Raised by every change to the chat or its messages: its ETag.
    version: Mapped[int] = mapped_column(BigInteger, server_default="1")
    # Set while the chat is in the trash: then it is found by nothing but the trash's own routes.
    trashed_at: Mapped[datetime | None] = mapped_column(Timestamp())


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        # A chat's messages in order.
        Index("ix_messages_chat_order", "chat_id", "id"),
        # An owner's messages, newest first: where a search starts.
        Index("ix_messages_owner_recent", "owner_id", "id"),
        # A message's children (its parent's, for its siblings), in order.
        Index("ix_messages_chat_parent", "chat_id", "parent_id", "id"),
        CheckConstraint(f"role IN {ROLES}", name="role"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    # The chat's owner, written with the message.
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # Null for a root. A plain column, not a foreign key: a 10,000-message line deleted
    # with its chat must not cascade 10,000 levels deep. Always an earlier message of the
    # same chat, so ids rise along every path from a root.
    parent_id: Mapped[int | None] = mapped_column(Id)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(String(NAME_MAX))
    model: Mapped[str | None] = mapped_column(String(MODEL_MAX))
    meta: Mapped[dict[str, str]] = mapped_column("metadata", Metadata, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(Timestamp())
    # Raised by every change to the message (its content, metadata or parent): its ETag.
    version: Mapped[int] = mapped_column(BigInteger, server_default="1")


class ChatMetadata(Base):
    """A chat's metadata, one row a key, written with the chat: what a list filtered by
    `metadata.<key>=<value>` finds through its index."""

    __tablename__ = "chat_metadata"
    # SQLite: WITHOUT ROWID, so that the rows are the primary key's b-tree: one lookup, not two.
    __table_args__ = (
        Index("ix_chat_metadata_owner_pair", "owner_id", "key", "value", "chat_id"),
        {"sqlite_with_rowid": False},
    )

    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(METADATA_KEY_MAX), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    value: Mapped[str] = mapped_column(String(METADATA_VALUE_MAX))


class Change(Base):
    """What changed in a user's chats and messages, in the order it happened, for sync.
    `seq` counts per owner, taken from the owner's row in the same transaction as the
    change, so a reader never sees a later change without every earlier one. Deletions
    are kept as tombstones; rows older than TRASH_DAYS are pruned."""

    __tablename__ = "changes"
    # SQLite: WITHOUT ROWID, so that a page of an owner's log is a run of the primary
    # key's own leaves, however long the log.
    __table_args__ = (CheckConstraint(f"kind IN {CHANGE_KINDS}", name="kind"), {"sqlite_with_rowid": False})

    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(8))
    object_id: Mapped[int] = mapped_column(Id)
    chat_id: Mapped[int] = mapped_column(Id)
    change: Mapped[str] = mapped_column(String(8))
    at: Mapped[datetime] = mapped_column(Timestamp(), index=True)


class ApiKey(Base):
    """A personal API key: `chk_<secret>`, of which only the SHA-256 is kept."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # "read" or "read write"
    scopes: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(Timestamp())
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp())
    last_used_at: Mapped[datetime | None] = mapped_column(Timestamp())


class IdempotencyKey(Base):
    """The first answer to a creating POST sent with an Idempotency-Key, replayed to retries."""

    __tablename__ = "idempotency_keys"

    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int]
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp(), index=True)


class AuthSession(Base):
    """A login: its refresh token, rotated at every use, is `<id>.<secret>`; only the
    secret's SHA-256 is kept. The row is the token family: deleting it ends the session."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp())
    expires_at: Mapped[datetime] = mapped_column(Timestamp())


class SpentRefreshToken(Base):
    """A refresh secret that was issued for a session and has since been rotated away:
    presenting it again is reuse, which ends the session. A secret never issued is not
    here, so guessing one changes nothing."""

    __tablename__ = "spent_refresh_tokens"

    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
