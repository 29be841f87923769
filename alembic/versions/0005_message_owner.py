"""Messages carry their owner; PostgreSQL's search index keeps each owner's words apart.

Revision ID: 0005
Revises: 0004

`messages.owner_id` is the owner of the message's chat, written with the message. With
the index on (owner_id, id), a search walks the caller's own newest messages, however
many other users wrote since.

PostgreSQL: every lexeme of a search document is prefixed with its owner ("42:okapi"),
so a word's entries in the GIN index are the owner's alone. A search then reads as many
entries as the caller has matches, not the word's entries of every user intersected
with the owner's hundred thousand messages. Lexemes over 2,000 bytes are left out (the
prefix must fit in tsvector's 2,047), and a document over tsvector's 1 MB limit is built
from less of the text, halving it until it fits, rather than failing the write.

SQLite: adding a NOT NULL column and a foreign key rebuilds `messages`, which drops its
search triggers; they are made again from 0003's, reading the owner from the row. The
trigger that deleted a chat's messages before the chat, so that their owner could still
be read, is no longer needed: the foreign key's cascade fires the messages' own triggers.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# A message's owner as SQL over `row`: read from its chat (as 0003 does), then from the row.
CHATS_OWNER = "(SELECT owner_id FROM chats WHERE id = {row}.chat_id)"
ROW_OWNER = "{row}.owner_id"
MAX_LEXEME_BYTES = 2_000
MAX_DOCUMENT_BYTES = 1_000_000  # tsvector's limit is 1,048,575


def _search_0003():
    return op.get_context().script.get_revision("0003").module


def _sqlite_search_triggers(owner: str) -> None:
    for cjk in (False, True):
        # 0003's statements for messages: the index table, its first fill, then the triggers.
        for statement in _search_0003()._sqlite_index("messages", "content", owner, cjk)[2:]:
            op.execute(statement)


def _sqlite_upgrade() -> None:
    op.execute("DROP TRIGGER search_chats_delete_messages")
    with op.batch_alter_table("messages") as batch_op:
        batch_op.add_column(sa.Column("owner_id", Id, nullable=True))
    op.execute(f"UPDATE messages SET owner_id = {CHATS_OWNER.format(row='messages')}")
    with op.batch_alter_table("messages") as batch_op:
        batch_op.alter_column("owner_id", existing_type=Id, nullable=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_messages_owner_id_users"), "users", ["owner_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_index("ix_messages_owner_recent", ["owner_id", "id"])
    _sqlite_search_triggers(ROW_OWNER)
    # The words of the message index, read by search.py to turn a prefix into words.
    op.execute("CREATE VIRTUAL TABLE search_messages_words USING fts5vocab(search_messages, row)")


def _sqlite_downgrade() -> None:
    op.execute("DROP TABLE search_messages_words")
    with op.batch_alter_table("messages") as batch_op:
        batch_op.drop_index("ix_messages_owner_recent")
        batch_op.drop_constraint("fk_messages_owner_id_users", type_="foreignkey")
        batch_op.drop_column("owner_id")
    _sqlite_search_triggers(CHATS_OWNER)
    op.execute(
        "CREATE TRIGGER search_chats_delete_messages BEFORE DELETE ON chats "
        "BEGIN DELETE FROM messages WHERE chat_id = old.id; END"
    )


def _postgresql_messages_trigger(owner: str) -> None:
    op.execute(f"""
        CREATE OR REPLACE FUNCTION search_messages_document() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.search_document := search_document(NEW.content, {owner.format(row="NEW")});
            RETURN NEW;
        END
        $$
    """)


def _postgresql_upgrade() -> None:
    search = _search_0003()
    op.execute("DROP INDEX ix_search_messages")
    op.execute("DROP INDEX ix_search_chats")
    # Word lexemes keep their positions (phrases need them), so the document is written
    # out as tsvector text: lexemes are letters and digits, and need no escaping. Each
    # entry's text is at least its binary size less 8 bytes, so the sum bounds the size.
    op.execute(f"""
        CREATE OR REPLACE FUNCTION search_document(body text, owner_id bigint) RETURNS tsvector
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT CASE
                WHEN coalesce(sum(octet_length(entry) + 8), 0) < {MAX_DOCUMENT_BYTES}
                    THEN coalesce(string_agg(entry, ' '), '')::tsvector
                ELSE search_document(left(body, least(char_length(body), {search.WORD_CHARS}) / 2), owner_id)
            END
            FROM (
                SELECT format('''%s:%s'':%s', owner_id, lexeme, array_to_string(positions, ',')) AS entry
                FROM unnest(to_tsvector('simple',
                    regexp_replace(left(body, {search.WORD_CHARS}), '[^[:alnum:]]+', ' ', 'g')))
                WHERE octet_length(lexeme) <= {MAX_LEXEME_BYTES}
                UNION ALL
                SELECT DISTINCT format('''%s:%s''', owner_id, substr(run[1], i, width))
                FROM regexp_matches(left(body, {search.CJK_CHARS}), '{search.CJK_REGEX}', 'g') AS run,
                     generate_series(1, char_length(run[1])) AS i,
                     (VALUES (1), (2)) AS widths(width)
                WHERE i + width - 1 <= char_length(run[1])
            ) AS entries
        $$
    """)
    op.add_column("messages", sa.Column("owner_id", Id, nullable=True))
    op.execute(f"UPDATE messages SET owner_id = {CHATS_OWNER.format(row='messages')}")
    op.execute("UPDATE messages SET search_document = search_document(content, owner_id)")
    op.execute("UPDATE chats SET search_document = search_document(title, owner_id)")
    op.alter_column("messages", "owner_id", existing_type=Id, nullable=False)
    op.create_foreign_key(
        op.f("fk_messages_owner_id_users"), "messages", "users", ["owner_id"], ["id"], ondelete="CASCADE"
    )
    op.create_index("ix_messages_owner_recent", "messages", ["owner_id", "id"])
    _postgresql_messages_trigger(ROW_OWNER)
    # Without a pending list: a search would read all of it, and between two vacuums it
    # holds up to 4 MB of entries. Each insert updates the index itself instead.
    for table in ("messages", "chats"):
        op.execute(f"CREATE INDEX ix_search_{table} ON {table} USING gin (search_document) WITH (fastupdate = off)")


def _postgresql_downgrade() -> None:
    search = _search_0003()
    for table in ("messages", "chats"):
        op.execute(f"DROP INDEX ix_search_{table}")
    _postgresql_messages_trigger(CHATS_OWNER)
    op.drop_index("ix_messages_owner_recent", table_name="messages")
    op.drop_constraint("fk_messages_owner_id_users", "messages", type_="foreignkey")
    op.drop_column("messages", "owner_id")
    op.execute("DROP FUNCTION search_document(text, bigint)")
    op.execute(search.DOCUMENT_FUNCTION)
    for table, column, owner in search.SOURCES:
        op.execute(f"UPDATE {table} SET search_document = search_document({column}, {owner.format(row=table)})")
        op.execute(f"CREATE INDEX ix_search_{table} ON {table} USING gin (search_document)")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_upgrade()
    else:
        _postgresql_upgrade()


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_downgrade()
    else:
        _postgresql_downgrade()
