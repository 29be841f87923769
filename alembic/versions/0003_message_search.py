"""Full-text search over messages and chat titles.

Revision ID: 0003
Revises: 0002

The database keeps the index current itself, with triggers; search.py reads it. Every
indexed row carries its owner, so a search intersects the caller's rows with a term's
inside the index instead of walking every user's matches. Names all start with
"search_" (or "ix_search_"), which alembic/env.py leaves out of `alembic check`.

SQLite: FTS5 tables without stored content (messages and chats already hold it). Words
go to a unicode61 index; text with CJK characters also goes to a trigram index, because
unicode61 keeps a run of CJK characters as one token. The triggers of each table name the
other, so a later migration that recreates `messages` or `chats` on SQLite (batch "move
and copy") fails at its RENAME until it drops these triggers first, and must create them
again after (with `_sqlite_index` below as the model).

PostgreSQL: a `search_document` tsvector column on each table, set by a trigger, with a
GIN index: the words, the owner, and every CJK character and pair of characters.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Kept in step with search.py: the indexed prefix of each text, and the CJK characters.
WORD_CHARS = 100_000
CJK_CHARS = 20_000
CJK_GLOB = "*[぀-ヿ㐀-䶿一-鿿가-힯豈-﫿]*"
CJK_REGEX = "[぀-ヿ㐀-䶿一-鿿가-힯豈-﫿]+"

# (table, text column, the owner of a row as SQL over `row`)
SOURCES = (
    ("messages", "content", "(SELECT owner_id FROM chats WHERE id = {row}.chat_id)"),
    ("chats", "title", "{row}.owner_id"),
)


def _sqlite_index(table: str, column: str, owner: str, cjk: bool) -> list[str]:
    fts = f"search_{table}" + ("_cjk" if cjk else "")
    tokenizer = "trigram" if cjk else "unicode61 remove_diacritics 0"
    chars = CJK_CHARS if cjk else WORD_CHARS

    def row(name: str, delete: bool) -> str:
        command = f"'delete', {name}.id" if delete else f"{name}.id"
        only_cjk = f" WHERE {name}.{column} GLOB '{CJK_GLOB}'" if cjk else ""
        # The owner is written ".42.": a trigram match is a substring match.
        owned = f"'.' || {owner.format(row=name)} || '.'"
        target = f"{fts}({fts}, rowid, owner, body)" if delete else f"{fts}(rowid, owner, body)"
        return f"INSERT INTO {target} SELECT {command}, {owned}, substr({name}.{column}, 1, {chars}){only_cjk};"

    return [
        f"CREATE VIRTUAL TABLE {fts} USING fts5(owner, body, content='', tokenize='{tokenizer}')",
        f"INSERT INTO {fts}(rowid, owner, body) SELECT id, '.' || {owner.format(row=table)} || '.', "
        f"substr({column}, 1, {chars}) FROM {table}" + (f" WHERE {column} GLOB '{CJK_GLOB}'" if cjk else ""),
        f"CREATE TRIGGER {fts}_insert AFTER INSERT ON {table} BEGIN {row('new', False)} END",
        f"CREATE TRIGGER {fts}_delete AFTER DELETE ON {table} BEGIN {row('old', True)} END",
        f"CREATE TRIGGER {fts}_update AFTER UPDATE OF {column} ON {table} "
        f"BEGIN {row('old', True)} {row('new', False)} END",
    ]


def _sqlite_upgrade() -> None:
    for table, column, owner in SOURCES:
        for cjk in (False, True):
            for statement in _sqlite_index(table, column, owner, cjk):
                op.execute(statement)
    # A message's index entry is removed with its owner, read from its chat: delete a
    # chat's messages while the chat (also when a user's deletion cascades to it) still exists.
    op.execute(
        "CREATE TRIGGER search_chats_delete_messages BEFORE DELETE ON chats "
        "BEGIN DELETE FROM messages WHERE chat_id = old.id; END"
    )


def _sqlite_downgrade() -> None:
    op.execute("DROP TRIGGER search_chats_delete_messages")
    for table, _column, _owner in SOURCES:
        for suffix in ("", "_cjk"):
            fts = f"search_{table}{suffix}"
            for event in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER {fts}_{event}")
            op.execute(f"DROP TABLE {fts}")


# Punctuation becomes a space first, so that "example.com" or "a/b" index the words
# a query names ("example", "com"), as unicode61 does on SQLite.
DOCUMENT_FUNCTION = f"""
CREATE FUNCTION search_document(body text, owner_id bigint) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_tsvector('simple', regexp_replace(left(body, {WORD_CHARS}), '[^[:alnum:]]+', ' ', 'g'))
        || array_to_tsvector(ARRAY['owner=' || owner_id])
        || array_to_tsvector(ARRAY(
            SELECT DISTINCT substr(run[1], i, width)
            FROM regexp_matches(left(body, {CJK_CHARS}), '{CJK_REGEX}', 'g') AS run,
                 generate_series(1, char_length(run[1])) AS i,
                 (VALUES (1), (2)) AS widths(width)
            WHERE i + width - 1 <= char_length(run[1])
        ))
$$
"""


def _postgresql_upgrade() -> None:
    op.execute(DOCUMENT_FUNCTION)
    for table, column, owner in SOURCES:
        op.execute(f"ALTER TABLE {table} ADD COLUMN search_document tsvector")
        op.execute(f"UPDATE {table} SET search_document = search_document({column}, {owner.format(row=table)})")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN search_document SET NOT NULL")
        op.execute(f"CREATE INDEX ix_search_{table} ON {table} USING gin (search_document)")
        op.execute(f"""
            CREATE FUNCTION search_{table}_document() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                NEW.search_document := search_document(NEW.{column}, {owner.format(row="NEW")});
                RETURN NEW;
            END
            $$
        """)
        op.execute(
            f"CREATE TRIGGER search_{table}_document BEFORE INSERT OR UPDATE OF {column} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION search_{table}_document()"
        )


def _postgresql_downgrade() -> None:
    for table, _column, _owner in SOURCES:
        op.execute(f"DROP TRIGGER search_{table}_document ON {table}")
        op.execute(f"DROP FUNCTION search_{table}_document()")
        op.execute(f"DROP INDEX ix_search_{table}")
        op.execute(f"ALTER TABLE {table} DROP COLUMN search_document")
    op.execute("DROP FUNCTION search_document(text, bigint)")


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
