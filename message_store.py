"""A chat's messages, kept as a tree: the SQL, and the functions that each run in one
transaction (see database.py). Every message has a parent (null for a root), always an
earlier message of its chat, so ids rise along every path from a root; the chat shows one
leaf (`current_message_id`), and the path from the root to it is the conversation as shown.

Every function is scoped to the owner through the chat: another user's chat or message is
ChatNotFound or MessageNotFound, exactly like one that does not exist. Functions return
rows (dicts with `sibling_ids`); the routes shape them."""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    Connection,
    RowMapping,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    select,
    true,
    union_all,
    update,
)

from account_store import Owner, check_current
from chat_store import (
    CHANGES,
    CHAT_COLUMNS,
    CHATS,
    OWNED,
    USERS,
    Entry,
    add_chat,
    check_version,
    owned_chat,
    record,
    update_chat,
)
from database import one_statement
from models import Message
from service.errors import ChatNotFound, MessageNotFound, Unprocessable, VersionMismatch
from service.rules import MAX_ID

MESSAGES = Message.__table__
MESSAGE_COLUMNS = tuple(
    MESSAGES.c[name]
    for name in ("id", "chat_id", "parent_id", "role", "content", "name", "model", "metadata", "created_at", "version")
)
# Not named after the columns: an UPDATE reserves those names for the values it sets.
THE_CHAT, THE_MESSAGE = bindparam("the_chat"), bindparam("the_message")

# Writes to one chat queue on its row lock (a no-op on SQLite, whose writers are serial
# anyway), so message ids and created_at times rise together.
LOCK_CHAT = select(CHATS.c.current_message_id).where(*OWNED).with_for_update()
TOUCH_CHAT = (
    update(CHATS).where(CHATS.c.id == THE_CHAT).values(updated_at=bindparam("now"), version=CHATS.c.version + 1)
)
SHOW_LEAF = TOUCH_CHAT.values(current_message_id=bindparam("leaf"))
SHOW_LEAF_OF_BRANCH = SHOW_LEAF.values(branched=True)
# The chat as the API shows it, and whether it has branches.
CHAT_VIEW = select(*CHAT_COLUMNS, CHATS.c.branched).where(*OWNED)
# The hot statements check the owner's token themselves (see account_store.Owner): its user
# still exists at the generation it names. No row then means a revoked token or no chat.
GENERATION = bindparam("generation", type_=USERS.c.token_generation.type)
READER_CURRENT = exists().where(USERS.c.id == bindparam("owner_id"), USERS.c.token_generation == GENERATION)
CURRENT_CHAT_VIEW = CHAT_VIEW.where(READER_CURRENT)
# PostgreSQL: the chat as CHAT_VIEW has it, and (when it has no branches, so that they are
# its one path) its first `limit` messages, a row each (one row, the message's columns null,
# when there are none): a chat read in one round trip.
_FIRST = (
    select(*MESSAGE_COLUMNS)
    .where(MESSAGES.c.chat_id == bindparam("chat_id"))
    .order_by(MESSAGES.c.id)
    .limit(bindparam("limit"))
    .subquery("first")
)
CHAT_WITH_LINE = (
    select(*CHAT_VIEW.selected_columns, *_FIRST.c)
    .select_from(CHATS.outerjoin(_FIRST, (_FIRST.c.chat_id == CHATS.c.id) & ~CHATS.c.branched))
    .where(*OWNED, READER_CURRENT)
    .order_by(_FIRST.c.id)
)
LAST_MESSAGES = (
    select(*MESSAGE_COLUMNS)
    .where(MESSAGES.c.chat_id == bindparam("chat_id"), MESSAGES.c.id < bindparam("before"))
    .order_by(MESSAGES.c.id.desc())
    .limit(bindparam("limit"))
)
ADD_MESSAGES = insert(MESSAGES).returning(*MESSAGE_COLUMNS, sort_by_parameter_order=True)
SET_PARENT = update(MESSAGES).where(MESSAGES.c.id == THE_MESSAGE).values(parent_id=bindparam("parent"))
MESSAGE_IN_CHAT = (MESSAGES.c.id == THE_MESSAGE, MESSAGES.c.chat_id == THE_CHAT)
READ_MESSAGE = select(*MESSAGE_COLUMNS).where(*MESSAGE_IN_CHAT)
PARENT_OF = select(MESSAGES.c.parent_id, MESSAGES.c.version).where(*MESSAGE_IN_CHAT)
REATTACH_CHILDREN = (
    update(MESSAGES)
    .where(MESSAGES.c.chat_id == THE_CHAT, MESSAGES.c.parent_id == THE_MESSAGE)
    .values(parent_id=bindparam("parent"), version=MESSAGES.c.version + 1)
    .returning(MESSAGES.c.id)
)
DELETE_MESSAGES = delete(MESSAGES).where(MESSAGES.c.id.in_(bindparam("ids", expanding=True)))
# Unordered on purpose: sorted by id, SQLite may walk the chat's whole (chat_id, id) index
# rather than look each parent up in (chat_id, parent_id, id); the lists are sorted here.
CHILDREN_OF = select(MESSAGES.c.parent_id, MESSAGES.c.id).where(
    MESSAGES.c.chat_id == bindparam("chat_id"), MESSAGES.c.parent_id.in_(bindparam("parents", expanding=True))
)
ROOTS = (
    select(MESSAGES.c.id)
    .where(MESSAGES.c.chat_id == bindparam("chat_id"), MESSAGES.c.parent_id.is_(None))
    .order_by(MESSAGES.c.id)
)
NEWEST_IN_CHAT = select(func.max(MESSAGES.c.id)).where(MESSAGES.c.chat_id == bindparam("chat_id"))
MESSAGES_AFTER = (
    select(*MESSAGE_COLUMNS)
    .where(MESSAGES.c.chat_id == bindparam("chat_id"), MESSAGES.c.id > bindparam("after"))
    .order_by(MESSAGES.c.id)
    .limit(bindparam("limit"))
)
# A page between two ids (low excluded, high included), in either direction.
MESSAGES_BETWEEN = {
    ascending: select(*MESSAGE_COLUMNS)
    .where(
        MESSAGES.c.chat_id == bindparam("chat_id"),
        MESSAGES.c.id > bindparam("low"),
        MESSAGES.c.id <= bindparam("high"),
    )
    .order_by(MESSAGES.c.id.asc() if ascending else MESSAGES.c.id.desc())
    .limit(bindparam("limit"))
    for ascending in (True, False)
}
MESSAGES_BY_ID = (
    select(*MESSAGE_COLUMNS).where(MESSAGES.c.id.in_(bindparam("ids", expanding=True))).order_by(MESSAGES.c.id)
)


# `start` and its ancestors, newest first, at most `limit` of them: one index lookup each,
# so a page deep in a long path costs what the first one does.
_UP = (
    select(MESSAGES.c.id, MESSAGES.c.parent_id, literal_column("1").label("n"))
    .where(MESSAGES.c.id == bindparam("start"), MESSAGES.c.chat_id == bindparam("chat_id"))
    .cte("path", recursive=True)
)
_UP = _UP.union_all(
    select(MESSAGES.c.id, MESSAGES.c.parent_id, _UP.c.n + 1).where(
        MESSAGES.c.id == _UP.c.parent_id, _UP.c.n < bindparam("limit")
    )
)
ANCESTORS = select(_UP.c.id, _UP.c.parent_id)
_PATH = ANCESTORS.subquery()
# The messages of the path ending at `start` (at most `limit` of them), oldest first.
PATH_MESSAGES = select(*MESSAGE_COLUMNS).join(_PATH, _PATH.c.id == MESSAGES.c.id).order_by(MESSAGES.c.id)
# `start` and every message below it.
_DOWN = (
    select(MESSAGES.c.id)
    .where(MESSAGES.c.id == bindparam("start"), MESSAGES.c.chat_id == bindparam("chat_id"))
    .cte("subtree", recursive=True)
)
_DOWN = _DOWN.union_all(
    select(MESSAGES.c.id).where(MESSAGES.c.chat_id == bindparam("chat_id"), MESSAGES.c.parent_id == _DOWN.c.id)
)
DESCENDANTS = select(_DOWN.c.id)
# The newest message below (or at) `start` is a leaf: a child would be newer still.
NEWEST_BELOW = select(func.max(DESCENDANTS.subquery().c.id))


# A message appended below the chat's current leaf. Its values are bound by other names
# than the columns': in an UPDATE, SQLAlchemy would set any column a value is named after.
OWNER = bindparam("owner", type_=MESSAGES.c.owner_id.type)
_OWNED_BY_OWNER = (
    CHATS.c.id == THE_CHAT,
    CHATS.c.owner_id == OWNER,
    CHATS.c.trashed_at.is_(None),
    exists().where(USERS.c.id == OWNER, USERS.c.token_generation == GENERATION),
)
_NEW_COLUMNS = ["chat_id", "owner_id", "parent_id", "role", "content", "name", "model", "metadata", "created_at"]
_NEW_VALUES = [
    bindparam(f"new_{name}", type_=MESSAGES.c[name].type) for name in ("role", "content", "name", "model", "metadata")
]
# SQLite: the chat's leaf read and the message inserted in one statement (its writers are
# serial: the transaction holds the database); then the chat shows it (SHOW_LEAF).
ADD_BELOW_LEAF = (
    insert(MESSAGES)
    .from_select(
        _NEW_COLUMNS,
        select(CHATS.c.id, OWNER, CHATS.c.current_message_id, *_NEW_VALUES, bindparam("now")).where(*_OWNED_BY_OWNER),
    )
    .returning(*MESSAGE_COLUMNS)
)
# PostgreSQL: all of it in one statement, sync log included. The chat's row lock is taken
# first (`chat`), so ids and `created_at` (read from the clock once the lock is held, not
# before) rise together, as on the other path; the owner's change counter (`seq`) is locked
# after it, as `record` does. No row: no chat.
_CHAT = select(CHATS.c.id, CHATS.c.current_message_id).where(*_OWNED_BY_OWNER).with_for_update().cte("chat")
_ADDED = (
    insert(MESSAGES)
    .from_select(
        _NEW_COLUMNS, select(_CHAT.c.id, OWNER, _CHAT.c.current_message_id, *_NEW_VALUES, func.clock_timestamp())
    )
    .returning(*MESSAGE_COLUMNS)
    .cte("added")
)
_SHOWN = (
    update(CHATS)
    .where(CHATS.c.id == _ADDED.c.chat_id)
    .values(current_message_id=_ADDED.c.id, updated_at=_ADDED.c.created_at, version=CHATS.c.version + 1)
    .cte("shown")
)
_SEQ = (
    update(USERS)
    .where(USERS.c.id == OWNER, select(_ADDED.c.id).exists())
    .values(change_seq=USERS.c.change_seq + 2)
    .returning(USERS.c.change_seq)
    .cte("seq")
)
_LOGGED = (
    insert(CHANGES)
    .from_select(
        ["owner_id", "seq", "kind", "object_id", "chat_id", "change", "at"],
        union_all(
            *(
                select(
                    OWNER,
                    _SEQ.c.change_seq - back,
                    literal(kind),
                    key,
                    _ADDED.c.chat_id,
                    literal(change),
                    _ADDED.c.created_at,
                ).select_from(_SEQ.join(_ADDED, true()))
                for back, kind, key, change in (
                    (1, "message", _ADDED.c.id, "created"),
                    (0, "chat", _ADDED.c.chat_id, "updated"),
                )
            )
        ),
    )
    .cte("logged")
)
APPEND_TO_LEAF = select(*_ADDED.c).add_cte(_SHOWN, _LOGGED)


class Default:
    """A parent left out: the chat's current leaf."""


DEFAULT = Default()


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to store: its columns, and where it hangs. `parent` is a message id, or
    ("new", i) for the i-th message of the same call."""

    columns: Mapping[str, Any]
    parent: int | tuple[str, int] | None


def with_siblings(conn: Connection, chat_id: int, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows, each with `sibling_ids`: the ids of the messages with its parent, itself included."""
    rows = list(rows)
    parents = {row["parent_id"] for row in rows}
    children: dict[int | None, list[int]] = defaultdict(list)
    if known := [parent for parent in parents if parent is not None]:
        for parent, child in conn.execute(CHILDREN_OF, {"chat_id": chat_id, "parents": known}):
            children[parent].append(child)
        for siblings in children.values():
            siblings.sort()
    if None in parents:
        children[None] = list(conn.execute(ROOTS, {"chat_id": chat_id}).scalars())
    return [{**row, "sibling_ids": children[row["parent_id"]]} for row in rows]


def _lock_chat(conn: Connection, owner_id: int, chat_id: int) -> int | None:
    """Locks the owner's chat for a change to its messages; the leaf it shows."""
    row = conn.execute(LOCK_CHAT, {"chat_id": chat_id, "owner_id": owner_id}).one_or_none()
    if row is None:
        raise ChatNotFound()
    return row.current_message_id


def _in_chat(conn: Connection, chat_id: int, message_id: int, field: tuple[str | int, ...]) -> int:
    """`message_id`, if it is a message of the chat; else a 422 naming `field`."""
    if conn.execute(PARENT_OF, {"the_chat": chat_id, "the_message": message_id}).first() is None:
        raise Unprocessable(field, "must be the id of a message of this chat")
    return message_id


def _insert(
    conn: Connection, owner_id: int, chat_id: int, messages: Sequence[NewMessage], now: datetime
) -> list[dict[str, Any]]:
    """Inserts the messages in order, in one statement, then links those whose parent is
    one of them: ids rise in the order given, so parents must come first."""
    owned = {"chat_id": chat_id, "owner_id": owner_id}
    values = [
        {
            "created_at": now,
            **message.columns,
            **owned,
            "parent_id": None if isinstance(message.parent, tuple) else message.parent,
        }
        for message in messages
    ]
    rows = [dict(row) for row in conn.execute(ADD_MESSAGES, values).mappings()]
    links = []
    for row, message in zip(rows, messages, strict=True):
        if isinstance(message.parent, tuple):
            row["parent_id"] = rows[message.parent[1]]["id"]
            links.append({"the_message": row["id"], "parent": row["parent_id"]})
    if links:
        conn.execute(SET_PARENT, links)
    return rows


def _show_added(
    conn: Connection,
    owner_id: int,
    chat_id: int,
    rows: Sequence[Mapping[str, Any]],
    now: datetime,
    branches: bool = False,
) -> None:
    """The chat shows the last of the messages just added, and the change log has them."""
    conn.execute(
        SHOW_LEAF_OF_BRANCH if branches else SHOW_LEAF, {"the_chat": chat_id, "leaf": rows[-1]["id"], "now": now}
    )
    entries: list[Entry] = [("message", row["id"], chat_id, "created") for row in rows]
    record(conn, owner_id, [*entries, ("chat", chat_id, chat_id, "updated")], now)


def add_messages(
    conn: Connection,
    owner_id: int,
    chat_id: int,
    messages: Sequence[Mapping[str, Any]],
    parent: int | Default | None = DEFAULT,
) -> list[dict[str, Any]]:
    """Appends a line of messages (dicts of their columns) below `parent`, the chat's
    current leaf when left out, None for a new root; the last becomes the current leaf."""
    current = _lock_chat(conn, owner_id, chat_id)
    follows_leaf = isinstance(parent, Default) or (parent is not None and parent == current)
    if isinstance(parent, Default):
        parent = current
    elif parent is not None:
        _in_chat(conn, chat_id, parent, ("body", "parent_id"))
    line = [NewMessage(columns, parent if i == 0 else ("new", i - 1)) for i, columns in enumerate(messages)]
    now = datetime.now(UTC)
    rows = _insert(conn, owner_id, chat_id, line, now)
    # A message that does not follow the leaf, or a second root, makes a branch.
    _show_added(
        conn, owner_id, chat_id, rows, now, branches=not follows_leaf and (parent is not None or current is not None)
    )
    if follows_leaf and parent is not None:
        # The current leaf had no children: each new message is its parent's only child.
        return [{**row, "sibling_ids": [row["id"]]} for row in rows]
    return [*with_siblings(conn, chat_id, rows[:1]), *({**row, "sibling_ids": [row["id"]]} for row in rows[1:])]


def add_message(
    conn: Connection, owner_id: int, chat_id: int, message: Mapping[str, Any], parent: int | Default | None = DEFAULT
) -> dict[str, Any]:
    return add_messages(conn, owner_id, chat_id, [message], parent)[0]


@one_statement
def append_to_leaf(conn: Connection, owner: Owner, chat_id: int, message: Mapping[str, Any]) -> dict[str, Any]:
    """`add_message` with the parent left out: below the chat's current leaf, if the owner's
    token is still good. One statement on PostgreSQL, so it needs no transaction around it."""
    values = {f"new_{name}": value for name, value in message.items()}
    values |= {"owner": owner.id, "generation": owner.generation, "the_chat": chat_id}
    if conn.dialect.name == "postgresql":
        row = conn.execute(APPEND_TO_LEAF, values).mappings().one_or_none()
    else:
        now = datetime.now(UTC)
        row = conn.execute(ADD_BELOW_LEAF, {**values, "now": now}).mappings().one_or_none()
        if row is not None:
            _show_added(conn, owner.id, chat_id, [row], now)
    if row is None:
        check_current(conn, owner)
        raise ChatNotFound()
    # The current leaf had no children: the new message is its only child (or the only root).
    return {**row, "sibling_ids": [row["id"]]}


def add_chat_with_tree(
    conn: Connection,
    owner_id: int,
    chat: Mapping[str, Any],
    messages: Sequence[NewMessage],
    current: int | None = None,
) -> RowMapping:
    """A new chat (title, metadata, and optionally created_at and updated_at) with its
    messages; `current` is the index of the message it shows, else the last one."""
    now = datetime.now(UTC)
    created = add_chat(conn, owner_id, chat["title"], chat["metadata"], chat.get("created_at", now))
    if not messages:
        record(conn, owner_id, [("chat", created["id"], created["id"], "created")], now)
        return created
    rows = _insert(conn, owner_id, created["id"], messages, chat.get("created_at", now))
    entries: list[Entry] = [("chat", created["id"], created["id"], "created")]
    record(conn, owner_id, [*entries, *(("message", row["id"], created["id"], "created") for row in rows)], now)
    leaf = rows[-1]["id"] if current is None else newest_below(conn, created["id"], rows[current]["id"])
    updated_at = chat.get("updated_at", now)
    # A line lists each message right after its parent; anything else has branches.
    line = all(message.parent == (("new", i - 1) if i else None) for i, message in enumerate(messages))
    conn.execute(
        SHOW_LEAF if line else SHOW_LEAF_OF_BRANCH, {"the_chat": created["id"], "leaf": leaf, "now": updated_at}
    )
    return {**created, "current_message_id": leaf, "updated_at": updated_at, "version": created["version"] + 1}


def newest_below(conn: Connection, chat_id: int, message_id: int) -> int:
    """The most recently created leaf at or below the message."""
    return conn.execute(NEWEST_BELOW, {"chat_id": chat_id, "start": message_id}).scalar_one()


def shown_leaf(conn: Connection, chat_id: int, message_id: int, field: tuple[str | int, ...]) -> int:
    """The leaf that showing `message_id` shows: its newest leaf; a 422 naming `field`
    when it is no message of the chat."""
    return newest_below(conn, chat_id, _in_chat(conn, chat_id, message_id, field))


def path_ids(conn: Connection, chat_id: int, leaf: int | None, limit: int = MAX_ID) -> list[int]:
    """The ids of the path from the root to `leaf`, at most the last `limit` of them, oldest first."""
    if leaf is None:
        return []
    rows = conn.execute(ANCESTORS, {"chat_id": chat_id, "start": leaf, "limit": limit}).all()
    return [row.id for row in reversed(rows)]


def messages_by_id(conn: Connection, chat_id: int, ids: Sequence[int]) -> list[dict[str, Any]]:
    if not ids:
        return []
    return with_siblings(conn, chat_id, conn.execute(MESSAGES_BY_ID, {"ids": list(ids)}).mappings())


def _chat_view(conn: Connection, owner_id: int, chat_id: int) -> RowMapping:
    chat = conn.execute(CHAT_VIEW, {"chat_id": chat_id, "owner_id": owner_id}).mappings().one_or_none()
    if chat is None:
        raise ChatNotFound()
    return chat


def _current_chat_view(conn: Connection, owner: Owner, chat_id: int) -> RowMapping:
    """`_chat_view`, if the owner's token is still good."""
    owned = {"chat_id": chat_id, "owner_id": owner.id, "generation": owner.generation}
    chat = conn.execute(CURRENT_CHAT_VIEW, owned).mappings().one_or_none()
    if chat is None:
        check_current(conn, owner)
        raise ChatNotFound()
    return chat


def _alone(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows of a chat without branches: each message is its parent's only child."""
    return [{**row, "sibling_ids": [row["id"]]} for row in rows]


def _first_messages(conn: Connection, chat_id: int, limit: int) -> Sequence[RowMapping] | None:
    """The chat's messages in id order, if it has at most `limit` of them."""
    rows = conn.execute(MESSAGES_AFTER, {"chat_id": chat_id, "after": 0, "limit": limit + 1}).mappings().all()
    return rows if len(rows) <= limit else None


def _chat_and_line(
    conn: Connection, owner: Owner, chat_id: int, limit: int
) -> tuple[Mapping[str, Any], Sequence[Mapping[str, Any]] | None]:
    """The chat, and its messages when it has no branches and at most `limit` of them."""
    if conn.dialect.name != "postgresql":
        # In-process, a second statement costs less than the chat's columns repeated on
        # every message's row.
        chat = _current_chat_view(conn, owner, chat_id)
        return chat, None if chat["branched"] else _first_messages(conn, chat_id, limit)
    owned = {"chat_id": chat_id, "owner_id": owner.id, "generation": owner.generation}
    rows = conn.execute(CHAT_WITH_LINE, {**owned, "limit": limit + 1}).all()
    if not rows:
        check_current(conn, owner)
        raise ChatNotFound()
    width = len(CHAT_VIEW.selected_columns)
    chat = dict(zip(CHAT_VIEW.selected_columns.keys(), rows[0][:width], strict=True))
    if chat["branched"] or len(rows) > limit:
        return chat, None
    keys = [column.name for column in MESSAGE_COLUMNS]
    return chat, [dict(zip(keys, row[width:], strict=True)) for row in rows if row[width] is not None]


def chat_with_path(
    conn: Connection, owner: Owner, chat_id: int, through: int | None, limit: int
) -> tuple[Mapping[str, Any], list[int] | None, list[dict[str, Any]]]:
    """The chat and the path it shows (or the path through `through`, to its newest
    leaf), if the owner's token is still good: the whole path's messages when it has at
    most `limit`, else the ids of the path and the messages of the first `limit` of them.
    A chat without branches is one path, every message in id order."""
    if through is None:
        chat, line = _chat_and_line(conn, owner, chat_id, limit)
    else:
        chat, line = _current_chat_view(conn, owner, chat_id), None
        if not chat["branched"]:
            _in_chat(conn, chat_id, through, ("query", "message_id"))
            line = _first_messages(conn, chat_id, limit)
    if line is not None:
        return chat, None, _alone(line)
    if through is None or not chat["branched"]:
        leaf = chat["current_message_id"]
    else:
        leaf = shown_leaf(conn, chat_id, through, ("query", "message_id"))
    if leaf is None:
        return chat, None, []
    rows = conn.execute(PATH_MESSAGES, {"chat_id": chat_id, "start": leaf, "limit": limit + 1}).mappings().all()
    if len(rows) <= limit:
        return chat, None, with_siblings(conn, chat_id, rows)
    ids = path_ids(conn, chat_id, leaf)
    return chat, ids, messages_by_id(conn, chat_id, ids[:limit])


def path_page(
    conn: Connection,
    owner_id: int,
    chat_id: int,
    through: int | None,
    limit: int,
    before: int | None,
    after: int | None,
) -> tuple[list[dict[str, Any]], bool]:
    """A page of the path through `through` (default: the one the chat shows), oldest
    first, and whether more follow the way it was read: toward the root with `before`
    (or no cursor: the page that ends at the leaf), toward the leaf with `after`."""
    chat = _chat_view(conn, owner_id, chat_id)
    if not chat["branched"]:
        return _line_page(conn, chat_id, through, limit, before, after)
    if before is not None:
        start = conn.execute(PARENT_OF, {"the_chat": chat_id, "the_message": before}).one_or_none()
        if start is None:
            raise Unprocessable(("query", "before"), "must be the id of a message of this chat")
        return _page_ending_at(conn, chat_id, start.parent_id, limit)
    leaf = (
        chat["current_message_id"] if through is None else shown_leaf(conn, chat_id, through, ("query", "message_id"))
    )
    if after is None:
        return _page_ending_at(conn, chat_id, leaf, limit)
    ids = path_ids(conn, chat_id, leaf)
    if after not in ids:
        raise Unprocessable(("query", "after"), "must be the id of a message on this path")
    following = ids[ids.index(after) + 1 :]
    return messages_by_id(conn, chat_id, following[:limit]), len(following) > limit


def _line_page(
    conn: Connection, chat_id: int, through: int | None, limit: int, before: int | None, after: int | None
) -> tuple[list[dict[str, Any]], bool]:
    """path_page for a chat without branches: its messages in id order."""
    for name, cursor in (("message_id", through), ("before", before), ("after", after)):
        if cursor is not None:
            _in_chat(conn, chat_id, cursor, ("query", name))
    if after is not None and before is None:
        rows = conn.execute(MESSAGES_AFTER, {"chat_id": chat_id, "after": after, "limit": limit + 1}).mappings().all()
        return _alone(rows[:limit]), len(rows) > limit
    bound = {"chat_id": chat_id, "before": before or MAX_ID, "limit": limit + 1}
    rows = conn.execute(LAST_MESSAGES, bound).mappings().all()
    return _alone(reversed(rows[:limit])), len(rows) > limit


def _page_ending_at(conn: Connection, chat_id: int, last: int | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The `limit` messages of the path ending at `last`, and whether more lie before them."""
    if last is None:
        return [], False
    rows = conn.execute(PATH_MESSAGES, {"chat_id": chat_id, "start": last, "limit": limit + 1}).mappings().all()
    return with_siblings(conn, chat_id, rows[-limit:]), len(rows) > limit


def messages_after(conn: Connection, chat_id: int, after: int, limit: int) -> list[dict[str, Any]]:
    """The chat's messages of every branch, by id."""
    rows = conn.execute(MESSAGES_AFTER, {"chat_id": chat_id, "after": after, "limit": limit}).mappings()
    return with_siblings(conn, chat_id, rows)


def message_page(
    conn: Connection,
    owner_id: int,
    chat_id: int,
    limit: int,
    after: int | None,
    before: int | None,
    order: Literal["asc", "desc"],
) -> list[dict[str, Any]]:
    """Up to limit + 1 of the chat's messages of every branch by id, OpenAI-style, in the
    order asked for: `after` and `before` are ids that bound the page in that order. With
    only `before`, the page is the one just before it (walking backwards)."""
    owned_chat(conn, owner_id, chat_id)
    ascending = order == "asc"
    lower, upper = (after, before) if ascending else (before, after)
    backwards = before is not None and after is None
    bounds = {"low": lower or 0, "high": upper - 1 if upper else MAX_ID}
    rows = conn.execute(MESSAGES_BETWEEN[ascending != backwards], {"chat_id": chat_id, **bounds, "limit": limit + 1})
    page = with_siblings(conn, chat_id, rows.mappings())
    if backwards:
        # The one extra row read tells whether more follow; it stays at the far end.
        return [*reversed(page[:limit]), *page[limit:]]
    return page


def _check_message(conn: Connection, chat_id: int, message_id: int, expected: frozenset[int] | None) -> Any:
    """The message's parent and version (its chat locked), checked against `expected` (None: any)."""
    found = conn.execute(PARENT_OF, {"the_chat": chat_id, "the_message": message_id}).one_or_none()
    if found is None:
        raise MessageNotFound()
    if expected is not None and found.version not in expected:
        raise VersionMismatch(found.version)
    return found


def update_message(
    conn: Connection,
    owner_id: int,
    chat_id: int,
    message_id: int,
    changes: dict[str, Any],
    expected: frozenset[int] | None = None,
) -> dict[str, Any]:
    """Sets the given columns (content, metadata) of a message; its chat counts as updated."""
    _lock_chat(conn, owner_id, chat_id)
    _check_message(conn, chat_id, message_id, expected)
    ids = {"the_message": message_id, "the_chat": chat_id}
    if not changes:
        return with_siblings(conn, chat_id, [conn.execute(READ_MESSAGE, ids).mappings().one()])[0]
    now = datetime.now(UTC)
    conn.execute(TOUCH_CHAT, {"the_chat": chat_id, "now": now})
    values = {**changes, "version": MESSAGES.c.version + 1}
    updated = conn.execute(update(MESSAGES).where(*MESSAGE_IN_CHAT).values(values).returning(*MESSAGE_COLUMNS), ids)
    row = updated.mappings().one()
    record(conn, owner_id, [("message", message_id, chat_id, "updated"), ("chat", chat_id, chat_id, "updated")], now)
    return with_siblings(conn, chat_id, [row])[0]


# Expanding lists are sent in slices, well under SQLite's limit on bound variables.
SLICE = 10_000


def delete_message(
    conn: Connection,
    owner_id: int,
    chat_id: int,
    message_id: int,
    subtree: bool,
    expected: frozenset[int] | None = None,
) -> None:
    """Removes the message, and either its descendants too or (so that a line stays a
    line) re-attaches its children to its parent. A removed current leaf moves to the
    newest surviving leaf below the removed message's parent."""
    current = _lock_chat(conn, owner_id, chat_id)
    found = _check_message(conn, chat_id, message_id, expected)
    moved: list[int] = []
    if subtree:
        removed = list(conn.execute(DESCENDANTS, {"chat_id": chat_id, "start": message_id}).scalars())
    else:
        removed = [message_id]
        reattach = {"the_chat": chat_id, "the_message": message_id, "parent": found.parent_id}
        moved = list(conn.execute(REATTACH_CHILDREN, reattach).scalars())
    for start in range(0, len(removed), SLICE):
        conn.execute(DELETE_MESSAGES, {"ids": removed[start : start + SLICE]})
    leaf = current
    if current in removed:
        if found.parent_id is None:
            leaf = conn.execute(NEWEST_IN_CHAT, {"chat_id": chat_id}).scalar_one()
        else:
            leaf = newest_below(conn, chat_id, found.parent_id)
    now = datetime.now(UTC)
    conn.execute(SHOW_LEAF, {"the_chat": chat_id, "leaf": leaf, "now": now})
    entries: list[Entry] = [("message", m, chat_id, "deleted") for m in removed]
    entries += [("message", m, chat_id, "updated") for m in moved]
    record(conn, owner_id, [*entries, ("chat", chat_id, chat_id, "updated")], now)


class Follows:
    """A parent left out in a list of new messages: the message before it."""


FOLLOWS = Follows()


def tree_of(
    items: Sequence[tuple[Mapping[str, Any], int | None, int | Follows | None]], current: int | None, where: str
) -> tuple[list[NewMessage], int | None]:
    """New messages from (columns, the item's own id, the id of its parent) as an export
    writes them, and the index of the item whose id is `current`. Ids name items of the
    same list only, earlier ones for parents; a parent left out is the item before."""
    index: dict[int, int] = {}
    messages = []
    for i, (columns, key, parent) in enumerate(items):
        if key is not None:
            if key in index:
                raise Unprocessable(("body", where, i, "id"), "must be unique within the list")
            index[key] = i
        if isinstance(parent, Follows):
            messages.append(NewMessage(columns, ("new", i - 1) if i else None))
        elif parent is None:
            messages.append(NewMessage(columns, None))
        elif parent in index and index[parent] < i:
            messages.append(NewMessage(columns, ("new", index[parent])))
        else:
            raise Unprocessable(("body", where, i, "parent_id"), "must be the id of an earlier message of the list")
    if current is not None and current not in index:
        raise Unprocessable(("body", "current_message_id"), "must be the id of one of the messages")
    return messages, None if current is None else index[current]


def edit_chat(
    conn: Connection, owner_id: int, chat_id: int, changes: dict[str, Any], expected: frozenset[int] | None = None
) -> RowMapping:
    """A PATCH of the chat: its columns, with `current_message_id` (if given) moved to the
    newest leaf below the message named."""
    check_version(conn, owner_id, chat_id, expected)
    if "current_message_id" in changes:
        owned_chat(conn, owner_id, chat_id)
        changes["current_message_id"] = shown_leaf(
            conn, chat_id, changes["current_message_id"], ("body", "current_message_id")
        )
    return update_chat(conn, owner_id, chat_id, changes)
