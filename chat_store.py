"""Chats: the SQL, and the functions that each run in one transaction (see database.py).
Every statement is scoped to the owner: another user's chat is ChatNotFound, exactly
like one that does not exist, and so is a chat in the trash (outside the trash's own
functions). Functions return rows; the routes shape them. A chat's messages are in
message_store.py.

Every change to a chat or a message is recorded in the owner's change log (`record`), in
the transaction that makes it, for sync. Its sequence numbers come from the owner's row,
which the recording transaction holds until it commits: a reader can never see a change
without every earlier one. Functions that change several chats lock them in id order
first, so that they never deadlock with one another or with a change to one chat."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    RowMapping,
    Select,
    bindparam,
    delete,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from models import Change, Chat, ChatMetadata, Message, User
from service.errors import ChatNotFound, CursorExpired, VersionMismatch
from service.rules import BATCH_MAX

# The tables, whose column names (`metadata`, not the model's `meta`) are the API's.
CHATS = Chat.__table__
USERS = User.__table__
CHANGES = Change.__table__
CHAT_METADATA = ChatMetadata.__table__
MESSAGES = Message.__table__

CHAT_COLUMNS = tuple(
    CHATS.c[name]
    for name in (
        "id",
        "title",
        "pinned",
        "archived",
        "metadata",
        "current_message_id",
        "created_at",
        "updated_at",
        "version",
    )
)

# Built once: these run on every request, and building a statement costs more than running it.
LIVE = CHATS.c.trashed_at.is_(None)
TRASHED = CHATS.c.trashed_at.is_not(None)
OWNED_ANYWHERE = (CHATS.c.id == bindparam("chat_id"), CHATS.c.owner_id == bindparam("owner_id"))
OWNED = (*OWNED_ANYWHERE, LIVE)
OWNED_CHAT = select(*CHAT_COLUMNS).where(*OWNED)
CHAT_ORDER = (CHATS.c.pinned.desc(), CHATS.c.updated_at.desc(), CHATS.c.id.desc())
LISTED_CHATS = {
    include_archived: select(*CHAT_COLUMNS)
    .where(
        CHATS.c.owner_id == bindparam("owner_id"), LIVE, *([] if include_archived else [CHATS.c.archived.is_(False)])
    )
    .order_by(*CHAT_ORDER)
    .limit(bindparam("limit"))
    .offset(bindparam("skip"))
    for include_archived in (False, True)
}
CHATS_AFTER = (
    select(*CHAT_COLUMNS)
    .where(CHATS.c.owner_id == bindparam("owner_id"), LIVE, CHATS.c.id > bindparam("after"))
    .order_by(CHATS.c.id)
    .limit(bindparam("limit"))
)
TRASH = (
    select(*CHAT_COLUMNS, CHATS.c.trashed_at)
    .where(CHATS.c.owner_id == bindparam("owner_id"), TRASHED)
    .order_by(CHATS.c.trashed_at.desc(), CHATS.c.id.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("skip"))
)
ADD_CHAT = insert(CHATS).returning(*CHAT_COLUMNS)
VERSION_OF = {
    trashed: select(CHATS.c.version).where(*(OWNED_ANYWHERE if trashed else OWNED)).with_for_update()
    for trashed in (False, True)
}
DELETE_CHAT = delete(CHATS).where(*OWNED_ANYWHERE).returning(CHATS.c.trashed_at)
EMPTY_TRASH = delete(CHATS).where(CHATS.c.owner_id == bindparam("owner_id"), TRASHED)
EXPIRED_TRASH = delete(CHATS).where(CHATS.c.trashed_at < bindparam("cutoff"))
MESSAGES_OF = select(MESSAGES.c.id).where(MESSAGES.c.chat_id == bindparam("chat_id")).order_by(MESSAGES.c.id)

TAKE_SEQ = (
    update(USERS)
    .where(USERS.c.id == bindparam("owner"))
    .values(change_seq=USERS.c.change_seq + bindparam("count"))
    .returning(USERS.c.change_seq)
)
ADD_CHANGES = insert(CHANGES)
SYNC_STATE = select(USERS.c.change_seq, USERS.c.pruned_seq).where(USERS.c.id == bindparam("owner_id"))
CHANGES_AFTER = (
    select(CHANGES.c.seq, CHANGES.c.kind, CHANGES.c.object_id, CHANGES.c.chat_id, CHANGES.c.change, CHANGES.c.at)
    .where(CHANGES.c.owner_id == bindparam("owner_id"), CHANGES.c.seq > bindparam("since"))
    .order_by(CHANGES.c.seq)
    .limit(bindparam("limit"))
)
OLD_CHANGES = CHANGES.c.at < bindparam("cutoff")
PRUNE_MARK = (
    update(USERS)
    .where(USERS.c.id.in_(select(CHANGES.c.owner_id).where(OLD_CHANGES)))
    .values(
        pruned_seq=select(func.max(CHANGES.c.seq))
        .where(CHANGES.c.owner_id == USERS.c.id, OLD_CHANGES)
        .scalar_subquery()
    )
)
PRUNE_CHANGES = delete(CHANGES).where(OLD_CHANGES)

CLEAR_METADATA = delete(CHAT_METADATA).where(CHAT_METADATA.c.chat_id == bindparam("chat_id"))
ADD_METADATA = insert(CHAT_METADATA)

# (kind, id, chat id, change): one entry of the change log.
Entry = tuple[str, int, int, str]


def record(conn: Connection, owner_id: int, entries: Sequence[Entry], now: datetime | None = None) -> None:
    """Appends the entries to the owner's change log, in this transaction."""
    if not entries:
        return
    last = conn.execute(TAKE_SEQ, {"owner": owner_id, "count": len(entries)}).scalar_one()
    at = now or datetime.now(UTC)
    first = last - len(entries) + 1
    rows = [
        {"owner_id": owner_id, "seq": first + i, "kind": kind, "object_id": key, "chat_id": chat, "change": change}
        for i, (kind, key, chat, change) in enumerate(entries)
    ]
    for row in rows:
        row["at"] = at
    conn.execute(ADD_CHANGES, rows)


def check_version(
    conn: Connection, owner_id: int, chat_id: int, expected: frozenset[int] | None, trashed: bool = False
) -> None:
    """Locks the chat and checks it is at one of the `expected` versions (None: any)."""
    if expected is None:
        return
    version = conn.execute(VERSION_OF[trashed], {"chat_id": chat_id, "owner_id": owner_id}).scalar_one_or_none()
    if version is None:
        raise ChatNotFound()
    if version not in expected:
        raise VersionMismatch(version)


def owned_chat(conn: Connection, owner_id: int, chat_id: int) -> RowMapping:
    chat = conn.execute(OWNED_CHAT, {"chat_id": chat_id, "owner_id": owner_id}).mappings().one_or_none()
    if chat is None:
        raise ChatNotFound()
    return chat


def set_metadata(conn: Connection, owner_id: int, chat_id: int, metadata: Mapping[str, str], new: bool) -> None:
    """The chat's metadata, a row a key, as the list's metadata filter finds it."""
    if not new:
        conn.execute(CLEAR_METADATA, {"chat_id": chat_id})
    if metadata:
        pairs = [{"chat_id": chat_id, "owner_id": owner_id, "key": k, "value": v} for k, v in metadata.items()]
        conn.execute(ADD_METADATA, pairs)


def add_chat(conn: Connection, owner_id: int, title: str, metadata: dict[str, str], now: datetime) -> RowMapping:
    """A new chat; the caller records it (with its messages) in the change log."""
    values = {"owner_id": owner_id, "title": title, "metadata": metadata, "created_at": now, "updated_at": now}
    created = conn.execute(ADD_CHAT, values).mappings().one()
    set_metadata(conn, owner_id, created["id"], metadata, new=True)
    return created


# A metadata pair that fewer chats than this have is read from its index, and its chats
# sorted; a commoner one is checked chat by chat along the list's own order, where a page
# of 20 then reads about 20 * (owner's chats / matches) chats. Either way a page reads at
# most about this many rows, however many chats the owner has.
METADATA_SCAN = 2000
PAIR = (
    CHAT_METADATA.c.owner_id == bindparam("owner_id"),
    CHAT_METADATA.c.key == bindparam("key"),
    CHAT_METADATA.c.value == bindparam("value"),
)
CHATS_WITH_PAIR = select(CHAT_METADATA.c.chat_id).where(*PAIR).limit(METADATA_SCAN)
PAIR_COUNT = select(func.count()).select_from(CHATS_WITH_PAIR.subquery())


def _metadata_filter(conn: Connection, owner_id: int, metadata: Mapping[str, str]) -> list[ColumnElement[bool]]:
    """The conditions that keep the owner's chats with every pair of `metadata`."""
    if not metadata:
        return []
    counts = {
        key: conn.scalar(PAIR_COUNT, {"owner_id": owner_id, "key": key, "value": value}) or 0
        for key, value in metadata.items()
    }
    rarest = min(counts, key=counts.__getitem__)
    indexed = counts[rarest] < METADATA_SCAN
    conditions: list[ColumnElement[bool]] = []
    if indexed:
        pair = {"owner_id": owner_id, "key": rarest, "value": metadata[rarest]}
        ids = conn.scalars(CHATS_WITH_PAIR, pair).all()
        if conn.dialect.name == "postgresql":
            # One array parameter: a list of 2,000 parameters costs PostgreSQL more to plan than to run.
            conditions.append(CHATS.c.id == func.any(bindparam("pair_ids", list(ids), type_=ARRAY(BigInteger))))
        else:
            conditions.append(CHATS.c.id.in_(ids))
    # A scalar subquery, which no planner turns into a join: one lookup by (chat_id, key) a chat.
    conditions += [
        select(CHAT_METADATA.c.value)
        .where(CHAT_METADATA.c.chat_id == CHATS.c.id, CHAT_METADATA.c.key == key)
        .scalar_subquery()
        == value
        for key, value in metadata.items()
        if not (indexed and key == rarest)
    ]
    return conditions


def listed_chats(
    conn: Connection,
    owner_id: int,
    skip: int,
    limit: int,
    archived: bool,
    metadata: Mapping[str, str] | None = None,
) -> Sequence[RowMapping]:
    query = LISTED_CHATS[archived]
    if metadata:
        query = query.where(*_metadata_filter(conn, owner_id, metadata))
    return conn.execute(query, {"owner_id": owner_id, "skip": skip, "limit": limit}).mappings().all()


def trashed_chats(conn: Connection, owner_id: int, skip: int, limit: int) -> Sequence[RowMapping]:
    return conn.execute(TRASH, {"owner_id": owner_id, "skip": skip, "limit": limit}).mappings().all()


def chats_after(conn: Connection, owner_id: int, after: int, limit: int) -> Sequence[RowMapping]:
    return conn.execute(CHATS_AFTER, {"owner_id": owner_id, "after": after, "limit": limit}).mappings().all()


def update_chat(conn: Connection, owner_id: int, chat_id: int, changes: dict[str, Any]) -> RowMapping:
    """Sets the given columns (title, pinned, archived, metadata, current_message_id);
    none: the chat as it is."""
    if not changes:
        return owned_chat(conn, owner_id, chat_id)
    now = datetime.now(UTC)
    query = (
        update(CHATS)
        .where(CHATS.c.id == chat_id, CHATS.c.owner_id == owner_id, LIVE)
        .values(**changes, updated_at=now, version=CHATS.c.version + 1)
        .returning(*CHAT_COLUMNS)
    )
    updated = conn.execute(query).mappings().one_or_none()
    if updated is None:
        raise ChatNotFound()
    if "metadata" in changes:
        set_metadata(conn, owner_id, chat_id, changes["metadata"], new=False)
    record(conn, owner_id, [("chat", chat_id, chat_id, "updated")], now)
    return updated


def delete_chat(
    conn: Connection, owner_id: int, chat_id: int, permanent: bool, expected: frozenset[int] | None = None
) -> None:
    """Moves the chat to the trash, or (`permanent`) deletes it, from the trash or not."""
    check_version(conn, owner_id, chat_id, expected, trashed=permanent)
    if not permanent:
        if not trash_chats(conn, owner_id, [chat_id]):
            raise ChatNotFound()
        return
    deleted = conn.execute(DELETE_CHAT, {"chat_id": chat_id, "owner_id": owner_id}).one_or_none()
    if deleted is None:
        raise ChatNotFound()
    if deleted.trashed_at is None:
        record(conn, owner_id, [("chat", chat_id, chat_id, "deleted")])


def _lock_chats(conn: Connection, owner_id: int, *conditions: Any, limit: int | None = None) -> list[RowMapping]:
    """Locks the owner's chats that meet the conditions, in id order."""
    query: Select = (
        select(CHATS.c.id, CHATS.c.trashed_at, CHATS.c.pinned, CHATS.c.archived)
        .where(CHATS.c.owner_id == owner_id, *conditions)
        .order_by(CHATS.c.id)
        .limit(limit)
        .with_for_update()
    )
    return list(conn.execute(query).mappings())


def trash_chats(conn: Connection, owner_id: int, ids: Sequence[int] | None = None) -> list[int]:
    """Moves the owner's chats (`ids`, or all of them) to the trash; the ids moved."""
    conditions = [LIVE] if ids is None else [LIVE, CHATS.c.id.in_(ids)]
    moved = [row["id"] for row in _lock_chats(conn, owner_id, *conditions)]
    now = datetime.now(UTC)
    for start in range(0, len(moved), BATCH_MAX):
        part = moved[start : start + BATCH_MAX]
        conn.execute(update(CHATS).where(CHATS.c.id.in_(part)).values(trashed_at=now, version=CHATS.c.version + 1))
    record(conn, owner_id, [("chat", chat, chat, "deleted") for chat in moved], now)
    return moved


def restore_chats(conn: Connection, owner_id: int, ids: Sequence[int]) -> list[int]:
    """Takes the chats out of the trash; to sync they are new again, messages and all."""
    restored = [row["id"] for row in _lock_chats(conn, owner_id, TRASHED, CHATS.c.id.in_(ids))]
    if not restored:
        return []
    now = datetime.now(UTC)
    conn.execute(update(CHATS).where(CHATS.c.id.in_(restored)).values(trashed_at=None, version=CHATS.c.version + 1))
    entries: list[Entry] = []
    for chat in restored:
        entries.append(("chat", chat, chat, "created"))
        entries += [("message", m, chat, "created") for m in conn.execute(MESSAGES_OF, {"chat_id": chat}).scalars()]
    record(conn, owner_id, entries, now)
    return restored


def restore_chat(conn: Connection, owner_id: int, chat_id: int) -> RowMapping:
    if not restore_chats(conn, owner_id, [chat_id]):
        raise ChatNotFound("Chat not found in the trash")
    return owned_chat(conn, owner_id, chat_id)


def delete_all_chats(conn: Connection, owner_id: int) -> int:
    """Moves every chat of the owner to the trash."""
    return len(trash_chats(conn, owner_id))


def empty_trash(conn: Connection, owner_id: int) -> int:
    return conn.execute(EMPTY_TRASH, {"owner_id": owner_id}).rowcount


def purge_expired(conn: Connection, days: int, now: datetime | None = None) -> int:
    """Deletes every chat in the trash for longer than `days`, and prunes the change logs
    of entries as old; the chats deleted."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    purged = conn.execute(EXPIRED_TRASH, {"cutoff": cutoff}).rowcount
    conn.execute(PRUNE_MARK, {"cutoff": cutoff})
    conn.execute(PRUNE_CHANGES, {"cutoff": cutoff})
    return purged


@dataclass
class BulkResult:
    ids: list[int]
    not_found: list[int]


# action: (the chats it applies to, the columns it sets); trash, restore and delete are their own.
BULK_SETS: dict[str, tuple[ColumnElement[bool], dict[str, bool]]] = {
    "archive": (CHATS.c.archived.is_(False), {"archived": True}),
    "unarchive": (CHATS.c.archived.is_(True), {"archived": False}),
    "pin": (CHATS.c.pinned.is_(False), {"pinned": True}),
    "unpin": (CHATS.c.pinned.is_(True), {"pinned": False}),
}


def _bulk_filter(conn: Connection, owner_id: int, action: str, found: Mapping[str, Any]) -> list[ColumnElement[bool]]:
    """The chats a filter selects: those it matches that the action would change."""
    conditions: list[ColumnElement[bool]] = []
    if found.get("archived") is not None:
        conditions.append(CHATS.c.archived.is_(found["archived"]))
    if found.get("older_than") is not None:
        conditions.append(CHATS.c.updated_at < found["older_than"])
    conditions += _metadata_filter(conn, owner_id, found.get("metadata") or {})
    if action in BULK_SETS:
        conditions += [LIVE, BULK_SETS[action][0]]
    elif action == "restore":
        conditions.append(TRASHED)
    elif action == "trash":
        conditions.append(LIVE)
    return conditions


def bulk(
    conn: Connection, owner_id: int, action: str, ids: Sequence[int] | None, chat_filter: Mapping[str, Any] | None
) -> BulkResult:
    """Applies the action to the owner's chats named by `ids` (those not theirs, or not
    where the action applies, are not found) or selected by the filter (at most
    BATCH_MAX of them a call), in this one transaction."""
    if ids is not None:
        wanted = list(dict.fromkeys(ids))
        where = {"restore": TRASHED, "delete": true()}.get(action, LIVE)
        rows = _lock_chats(conn, owner_id, where, CHATS.c.id.in_(wanted))
    else:
        rows = _lock_chats(conn, owner_id, *_bulk_filter(conn, owner_id, action, chat_filter or {}), limit=BATCH_MAX)
        wanted = [row["id"] for row in rows]
    found = {row["id"] for row in rows}
    affected = [chat for chat in wanted if chat in found]
    if action in BULK_SETS:
        column, value = next(iter(BULK_SETS[action][1].items()))
        changing = [row["id"] for row in rows if row[column] != value]
        if changing:
            now = datetime.now(UTC)
            conn.execute(
                update(CHATS)
                .where(CHATS.c.id.in_(changing))
                .values({column: value, "updated_at": now, "version": CHATS.c.version + 1})
            )
            record(conn, owner_id, [("chat", chat, chat, "updated") for chat in changing], now)
    elif action == "trash":
        trash_chats(conn, owner_id, affected)
    elif action == "restore":
        restore_chats(conn, owner_id, affected)
    elif affected:
        conn.execute(delete(CHATS).where(CHATS.c.id.in_(affected)))
        live = [row["id"] for row in rows if row["trashed_at"] is None]
        record(conn, owner_id, [("chat", chat, chat, "deleted") for chat in live])
    return BulkResult(affected, [chat for chat in wanted if chat not in found])


def changes_since(
    conn: Connection, owner_id: int, since: int | None, limit: int
) -> tuple[Sequence[RowMapping], int, bool]:
    """Up to `limit` entries of the owner's change log after `since`, the cursor that
    follows them, and whether more follow. No `since`: none, and the current cursor."""
    state = conn.execute(SYNC_STATE, {"owner_id": owner_id}).one()
    if since is None:
        return [], state.change_seq, False
    if since < state.pruned_seq or since > state.change_seq:
        raise CursorExpired()
    rows = conn.execute(CHANGES_AFTER, {"owner_id": owner_id, "since": since, "limit": limit + 1}).mappings().all()
    page = rows[:limit]
    return page, page[-1]["seq"] if page else since, len(rows) > limit
