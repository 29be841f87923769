"""Full-text search over a user's chat titles and messages, on the index that migrations
0003 and 0005 build and their triggers keep current (FTS5 on SQLite, tsvector and GIN on
PostgreSQL). The query's words come parsed (service/search_terms.py)."""

from collections.abc import Callable, Sequence
from functools import cache

from sqlalchemy import (
    ColumnElement,
    Connection,
    RowMapping,
    Select,
    String,
    bindparam,
    cast,
    column,
    func,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.dialects.postgresql import TSQUERY

from models import Chat, Message
from service.rules import MAX_ID
from service.search_terms import Terms

# As in migration 0003: how much of each text is indexed.
WORD_CHARS = 100_000
CJK_CHARS = 20_000
MAX_PREFIX_WORDS = 64  # SQLite: more words than that, and the prefix is left to FTS5
RECENT_MESSAGES = 1_000  # PostgreSQL: how many of the caller's newest messages a search reads one by one

# Chats in the trash, and their messages, are found by nothing.
LIVE = Chat.trashed_at.is_(None)

# Statements are built once for each shape of query (which index, how many CJK terms to
# filter by) and take the words as parameters: building one costs more than running it.


def _contains(text: ColumnElement[str], count: int, position: Callable) -> list[ColumnElement[bool]]:
    return [position(text, bindparam(f"term{i}", type_=String)) > 0 for i in range(count)]


# --- SQLite: a unicode61 index for words, a trigram index for rows with CJK characters


def _fts5_phrase(words: tuple[str, ...] | str, prefix: bool = False) -> str:
    text = " ".join(words) if isinstance(words, tuple) else words
    return f'body : "{text}"' + (" *" if prefix else "")


def _fts5_prefix(conn: Connection, source: str, prefix: str) -> str:
    """`prefix *`, or for messages the words of the index that begin with it: FTS5 reads
    their lists lazily, newest first, where `prefix *` merges every user's whole lists
    before the first result (six times as long for `migrat*` over 1,000,000 messages)."""
    if source == "messages":
        following = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        bounds = {"prefix": prefix, "following": following, "most": MAX_PREFIX_WORDS + 1}
        words = conn.scalars(WORDS_OF_PREFIX, bounds).all()
        if 0 < len(words) <= MAX_PREFIX_WORDS:
            return "body : (" + " OR ".join(f'"{word}"' for word in words) + ")"
    return _fts5_phrase(prefix, prefix=True)


def _sqlite_match(conn: Connection, source: str, owner_id: int, terms: Terms) -> tuple[str, str, list[str]]:
    """The FTS5 table suffix, its MATCH expression, and the CJK terms left to filter by."""
    if terms.phrases or terms.prefixes:
        parts = [_fts5_phrase(phrase) for phrase in terms.phrases]
        parts += [_fts5_prefix(conn, source, prefix) for prefix in terms.prefixes]
        return "", " AND ".join([f'owner : "{owner_id}"', *parts]), list(terms.cjk)
    # The trigram index finds substrings of three characters or more; shorter ones are
    # looked for in the caller's texts that have CJK characters, newest first.
    parts = [_fts5_phrase(term) for term in terms.cjk if len(term) >= 3]
    return "_cjk", " AND ".join([f'owner : ".{owner_id}."', *parts]), [t for t in terms.cjk if len(t) < 3]


@cache
def _sqlite_search(source: str, suffix: str, filters: int) -> Select:
    query, key, text = (
        (TITLE_HITS, Chat.id, Chat.title) if source == "chats" else (MESSAGE_HITS, Message.id, Message.content)
    )
    index = table(f"search_{source}{suffix}", column("rowid"))
    # CJK terms the index does not hold are looked for where it would have: in the first CJK_CHARS.
    indexed = func.substr(text, 1, CJK_CHARS)
    # The cursor bounds the index's rowid, not the table's id: FTS5 then starts its walk there.
    return (
        query.join(index, index.c.rowid == key)
        .where(index.c.rowid < bindparam("before"))
        .where(literal_column(index.name).match(bindparam("match")), *_contains(indexed, filters, func.instr))
        .order_by(index.c.rowid.desc())
        .limit(bindparam("limit"))
    )


# The index's words in a range (migration 0005's fts5vocab table over search_messages).
WORDS_OF_PREFIX = text(
    "SELECT term FROM search_messages_words WHERE term >= :prefix AND term < :following ORDER BY term LIMIT :most"
)


# --- PostgreSQL: one tsvector per row, every lexeme prefixed with the row's owner ("42:okapi")


def _tsquery(owner_id: int, terms: Terms) -> str:
    """A tsquery of lexemes as the document holds them (terms are letters and digits only,
    so need no escaping): no parser stands between the query and the index."""
    words = [" <-> ".join(f"'{owner_id}:{word}'" for word in phrase) for phrase in terms.phrases]
    words += [f"'{owner_id}:{prefix}':*" for prefix in terms.prefixes]
    lexemes: list[str] = []
    for term in terms.cjk:
        lexemes += [term] if len(term) <= 2 else [term[i : i + 2] for i in range(len(term) - 1)]
    return " & ".join([*words, *(f"'{owner_id}:{lexeme}'" for lexeme in dict.fromkeys(lexemes))])


def _postgresql_matches(document: ColumnElement, text: ColumnElement[str], filters: int) -> list[ColumnElement[bool]]:
    # Pairs of characters all present do not make the substring: check it.
    tsquery = cast(bindparam("tsquery", type_=String), TSQUERY)
    return [document.bool_op("@@")(tsquery), *_contains(text, filters, func.strpos)]


@cache
def _postgresql_titles(filters: int) -> Select:
    matches = _postgresql_matches(literal_column("chats.search_document"), Chat.title, filters)
    return TITLE_HITS.where(Chat.id < bindparam("before"), *matches).order_by(Chat.id.desc()).limit(bindparam("limit"))


@cache
def _postgresql_recent_messages(filters: int) -> Select:
    """The caller's newest messages, read one by one: a common word fills a page within
    the first few hundred, without reading its every match out of the index."""
    recent = NEWEST_OWNED.add_columns(
        Message.chat_id,
        Message.role,
        Message.content,
        Message.created_at,
        literal_column("messages.search_document").label("search_document"),
    ).subquery("recent")
    # A subquery per hit, not a join: a join could make the planner read the whole window to sort it.
    title = select(Chat.title).where(Chat.id == recent.c.chat_id).scalar_subquery().label("title")
    content = func.substr(recent.c.content, 1, WORD_CHARS).label("content")
    live = select(Chat.id).where(Chat.id == recent.c.chat_id, LIVE).exists()
    return (
        select(recent.c.id, recent.c.chat_id, recent.c.role, content, recent.c.created_at, title)
        .where(*_postgresql_matches(recent.c.search_document, recent.c.content, filters), live)
        .order_by(recent.c.owner_id.desc(), recent.c.id.desc())
        .limit(bindparam("limit"))
    )


@cache
def _postgresql_older_messages(filters: int) -> Select:
    """The matches older than those, out of the GIN index alone: its entries for these
    lexemes are the caller's only. MATERIALIZED, so that the planner never walks the id
    index back through every user's messages looking for a rare word instead."""
    floor = select(func.min(NEWEST_OWNED.subquery().c.id)).scalar_subquery()
    document = literal_column("messages.search_document")
    older = (
        select(Message.id)
        .where(
            Message.id < floor,
            *_postgresql_matches(document, Message.content, filters),
            select(Chat.id).where(Chat.id == Message.chat_id, LIVE).exists(),
        )
        .cte("older")
        .prefix_with("MATERIALIZED")
    )
    page = select(older.c.id).order_by(older.c.id.desc()).limit(bindparam("limit"))
    return MESSAGE_HITS.where(Message.id.in_(page)).order_by(Message.id.desc())


TITLE_HITS = select(Chat.id, Chat.title, Chat.created_at).where(Chat.owner_id == bindparam("owner_id"), LIVE)
MESSAGE_HITS = (
    select(
        Message.id,
        Message.chat_id,
        Message.role,
        func.substr(Message.content, 1, WORD_CHARS).label("content"),
        Message.created_at,
        Chat.title,
    )
    .join(Chat, Chat.id == Message.chat_id)
    .where(Chat.owner_id == bindparam("owner_id"), LIVE)
)

# The caller's newest RECENT_MESSAGES messages before the cursor, newest first. The owner
# is a range of one, not "=": ordered by (owner_id, id), this walk is then one that only
# ix_messages_owner_recent gives. With "=" the planner may prefer the primary key, and
# walk back through every other user's newer messages.
OWNER = bindparam("owner_id")
NEWEST_OWNED = (
    select(Message.id, Message.owner_id)
    .where(Message.owner_id.between(OWNER, OWNER), Message.id < bindparam("before"))
    .order_by(Message.owner_id.desc(), Message.id.desc())
    .limit(RECENT_MESSAGES)
)


def _hits(
    conn: Connection, source: str, owner_id: int, terms: Terms, before: int | None, limit: int
) -> Sequence[RowMapping]:
    params = {"owner_id": owner_id, "before": MAX_ID if before is None else before, "limit": limit}
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        suffix, params["match"], filters = _sqlite_match(conn, source, owner_id, terms)
    else:
        params["tsquery"] = _tsquery(owner_id, terms)
        filters = [term for term in terms.cjk if len(term) > 2]
    params.update((f"term{i}", term) for i, term in enumerate(filters))
    if sqlite:
        statement = _sqlite_search(source, suffix, len(filters))
    elif source == "messages":
        return _postgresql_messages(conn, params, len(filters))
    else:
        statement = _postgresql_titles(len(filters))
    return conn.execute(statement, params).mappings().all()


def _postgresql_messages(conn: Connection, params: dict, filters: int) -> Sequence[RowMapping]:
    rows = conn.execute(_postgresql_recent_messages(filters), params).mappings().all()
    if len(rows) == params["limit"]:
        return rows
    older = conn.execute(_postgresql_older_messages(filters), {**params, "limit": params["limit"] - len(rows)})
    return [*rows, *older.mappings().all()]


def search(
    conn: Connection, owner_id: int, terms: Terms, limit: int, after: tuple[str, int] | None
) -> tuple[Sequence[RowMapping], Sequence[RowMapping]]:
    """Up to limit + 1 hits: chats whose title matches, newest first, then messages that
    match, newest first. `after` is the kind ("c" or "m") and id of the previous page's
    last hit."""
    chats: Sequence[RowMapping] = []
    if after is None or after[0] == "c":
        chats = _hits(conn, "chats", owner_id, terms, after and after[1], limit + 1)
    messages: Sequence[RowMapping] = []
    if len(chats) <= limit:
        before = after[1] if after is not None and after[0] == "m" else None
        messages = _hits(conn, "messages", owner_id, terms, before, limit + 1 - len(chats))
    return chats, messages
