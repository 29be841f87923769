"""Bulk actions: one action on many chats, named by ids or chosen by a filter, in one
transaction; ids that are not the caller's are reported as not found and never touched."""

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from conftest import ENGINE as engine
from conftest import Account
from models import Chat
from service.rules import BATCH_MAX, METADATA_KEY_MAX, METADATA_KEYS_MAX, METADATA_VALUE_MAX


def new_chats(client: TestClient, account: Account, count: int, **body: object) -> list[int]:
    made = []
    for i in range(count):
        response = client.post("/v1/chats/", json={"title": f"chat {i}", **body}, headers=account.headers)
        assert response.status_code == 201
        made.append(response.json()["id"])
    return made


def bulk(client: TestClient, account: Account, **body: object) -> dict:
    response = client.post("/v1/chats/bulk", json=body, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()


def listed(client: TestClient, account: Account, query: str = "archived=true") -> dict[int, dict]:
    return {chat["id"]: chat for chat in client.get(f"/v1/chats/?{query}&limit=100", headers=account.headers).json()}


def test_archive_and_pin_by_ids_reports_others_as_not_found(client: TestClient, alice: Account, bob: Account) -> None:
    mine = new_chats(client, alice, 3)
    bobs = new_chats(client, bob, 1)
    answer = bulk(client, alice, ids=[mine[0], bobs[0], mine[1], 999_999_999], action="archive")
    assert answer == {"ids": [mine[0], mine[1]], "not_found": [bobs[0], 999_999_999]}
    chats = listed(client, alice)
    assert [chats[c]["archived"] for c in mine] == [True, True, False]
    assert listed(client, bob)[bobs[0]]["archived"] is False
    assert bulk(client, alice, ids=mine, action="pin")["ids"] == mine
    assert all(chat["pinned"] for chat in listed(client, alice).values())
    bulk(client, alice, ids=mine, action="unpin")
    bulk(client, alice, ids=mine, action="unarchive")
    assert not any(chat["pinned"] or chat["archived"] for chat in listed(client, alice).values())


def test_trash_restore_and_delete_in_bulk(client: TestClient, alice: Account, bob: Account) -> None:
    mine = new_chats(client, alice, 3)
    bobs = new_chats(client, bob, 1)
    assert bulk(client, alice, ids=[*mine, bobs[0]], action="trash") == {"ids": mine, "not_found": [bobs[0]]}
    assert listed(client, alice) == {}
    assert client.get(f"/v1/chats/{bobs[0]}", headers=bob.headers).status_code == 200
    # What is not in the trash cannot be restored; trashed chats cannot be archived.
    assert bulk(client, alice, ids=mine[:1], action="archive") == {"ids": [], "not_found": mine[:1]}
    assert bulk(client, alice, ids=mine[:2], action="restore") == {"ids": mine[:2], "not_found": []}
    assert bulk(client, alice, ids=mine[:1], action="restore") == {"ids": [], "not_found": mine[:1]}
    assert sorted(listed(client, alice)) == mine[:2]
    # delete is for good, from the trash or not.
    assert bulk(client, alice, ids=[mine[0], mine[2], bobs[0]], action="delete") == {
        "ids": [mine[0], mine[2]],
        "not_found": [bobs[0]],
    }
    assert sorted(listed(client, alice)) == [mine[1]]
    assert client.get("/v1/chats/?trashed=true", headers=alice.headers).json() == []
    assert client.get(f"/v1/chats/{bobs[0]}", headers=bob.headers).status_code == 200


def test_filters_select_by_archived_age_and_metadata(client: TestClient, alice: Account, bob: Account) -> None:
    travel = new_chats(client, alice, 2, metadata={"project": "travel"})
    work = new_chats(client, alice, 2, metadata={"project": "work"})
    new_chats(client, bob, 1, metadata={"project": "travel"})
    answer = bulk(client, alice, filter={"metadata": {"project": "travel"}}, action="archive")
    assert sorted(answer["ids"]) == travel and answer["not_found"] == []
    # Only chats the action changes are selected: archiving again selects none.
    assert bulk(client, alice, filter={"metadata": {"project": "travel"}}, action="archive")["ids"] == []
    assert sorted(bulk(client, alice, filter={"archived": True}, action="trash")["ids"]) == travel

    with engine.begin() as conn:
        conn.execute(update(Chat).where(Chat.id == work[0]).values(updated_at=datetime(2020, 6, 1, tzinfo=UTC)))
    old = bulk(client, alice, filter={"older_than": "2025-01-01T09:00:00+09:00"}, action="pin")
    assert old["ids"] == [work[0]]
    assert sorted(bulk(client, alice, filter={}, action="restore")["ids"]) == travel
    bob_chats = listed(client, bob)
    assert len(bob_chats) == 1 and not any(c["archived"] or c["pinned"] for c in bob_chats.values())


def test_a_bulk_action_is_one_transaction(client: TestClient, alice: Account) -> None:
    mine = new_chats(client, alice, 2)
    bulk(client, alice, ids=mine, action="trash")
    # Restore in bulk: both come back in one go, every message with them.
    assert bulk(client, alice, ids=mine, action="restore")["ids"] == mine
    assert sorted(listed(client, alice)) == mine


def test_up_to_a_thousand_ids(client: TestClient, alice: Account) -> None:
    mine = new_chats(client, alice, 1)
    ids = [*mine, *range(10**12, 10**12 + BATCH_MAX - 1)]
    answer = bulk(client, alice, ids=ids, action="pin")
    assert answer["ids"] == mine and len(answer["not_found"]) == BATCH_MAX - 1
    too_many = client.post("/v1/chats/bulk", json={"ids": [*ids, 1], "action": "pin"}, headers=alice.headers)
    assert too_many.status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"action": "archive"},
        {"ids": [1], "filter": {}, "action": "archive"},
        {"ids": [], "action": "archive"},
        {"ids": [1], "action": "explode"},
        {"ids": ["1"], "action": "pin"},
        {"ids": [0], "action": "pin"},
        {"ids": [2**63], "action": "pin"},
        {"filter": {"older_than": "yesterday"}, "action": "pin"},
        {"filter": {"older_than": "2025-01-01T00:00:00"}, "action": "pin"},
        {"filter": {"colour": "red"}, "action": "pin"},
        {"filter": {"metadata": {"k": 5}}, "action": "pin"},
        {"ids": [1], "action": "pin", "extra": True},
    ],
)
def test_bad_bulk_requests_are_422_and_change_nothing(client: TestClient, alice: Account, body: dict) -> None:
    mine = new_chats(client, alice, 1)
    assert client.post("/v1/chats/bulk", json=body, headers=alice.headers).status_code == 422
    assert listed(client, alice)[mine[0]]["pinned"] is False


def test_the_list_filters_by_metadata(client: TestClient, alice: Account, bob: Account) -> None:
    kyoto = new_chats(client, alice, 1, metadata={"project": "travel", "city": "kyoto"})[0]
    osaka = new_chats(client, alice, 1, metadata={"project": "travel", "city": "osaka"})[0]
    work = new_chats(client, alice, 1, metadata={"project": "work"})[0]
    new_chats(client, bob, 1, metadata={"project": "travel"})
    assert sorted(listed(client, alice, "metadata.project=travel")) == [kyoto, osaka]
    assert list(listed(client, alice, "metadata.project=travel&metadata.city=osaka")) == [osaka]
    assert listed(client, alice, "metadata.project=nowhere") == {}
    # The rarer pair is looked up first: a chat with it but not the other pair is not kept.
    two_of_a = new_chats(client, alice, 1, metadata={"a": "1"}) + new_chats(
        client, alice, 1, metadata={"a": "1", "b": "2"}
    )
    new_chats(client, alice, 2, metadata={"b": "2"})
    assert list(listed(client, alice, "metadata.a=1&metadata.b=2")) == [two_of_a[1]]
    # The filter follows edits of the metadata, and the archived and trashed state.
    client.patch(f"/v1/chats/{work}", json={"metadata": {"project": "travel"}}, headers=alice.headers)
    client.patch(f"/v1/chats/{osaka}", json={"metadata": {}}, headers=alice.headers)
    assert sorted(listed(client, alice, "metadata.project=travel")) == [kyoto, work]
    client.patch(f"/v1/chats/{kyoto}", json={"archived": True}, headers=alice.headers)
    assert list(listed(client, alice, "archived=false&metadata.project=travel")) == [work]
    client.delete(f"/v1/chats/{work}", headers=alice.headers)
    assert listed(client, alice, "metadata.project=travel") == {}
    assert list(listed(client, alice, "archived=true&metadata.project=travel")) == [kyoto]


def test_imported_chats_are_found_by_their_metadata(client: TestClient, alice: Account) -> None:
    export = [
        {
            "title": "Imported",
            "create_time": 1700000000,
            "conversation_id": "c-1",
            "mapping": {
                "a": {
                    "parent": None,
                    "message": {"author": {"role": "user"}, "content": {"content_type": "text", "parts": ["hi"]}},
                }
            },
        }
    ]
    imported = client.post("/v1/chats/import", json=export, headers=alice.headers)
    assert imported.status_code == 201, imported.text
    assert list(listed(client, alice, "metadata.source=chatgpt")) == [imported.json()["chats"][0]["id"]]


SIZES = f"keys are 1 to {METADATA_KEY_MAX} characters, values at most {METADATA_VALUE_MAX}"


@pytest.mark.parametrize(
    ("query", "loc", "msg"),
    [
        ("metadata.=x", "metadata.", SIZES),
        ("metadata." + "k" * 65 + "=x", ("metadata." + "k" * 65)[:METADATA_KEY_MAX], SIZES),
        ("metadata.k=" + "v" * (METADATA_VALUE_MAX + 1), "metadata.k", SIZES),
        ("metadata.k=%00", "metadata.k", "contains a NUL character"),
        (
            "&".join(f"metadata.k{i}=v" for i in range(METADATA_KEYS_MAX + 1)),
            "metadata",
            f"at most {METADATA_KEYS_MAX} metadata filters",
        ),
    ],
)
def test_bad_metadata_filters_are_422(client: TestClient, alice: Account, query: str, loc: str, msg: str) -> None:
    response = client.get(f"/v1/chats/?{query}", headers=alice.headers)
    assert response.status_code == 422
    assert response.json()["detail"] == [{"type": "value_error", "loc": ["query", loc], "msg": msg}]


def test_metadata_filters_at_their_limits_are_taken(client: TestClient, alice: Account) -> None:
    widest = {"k": "v" * METADATA_VALUE_MAX, "k" * METADATA_KEY_MAX: "v"}
    widest |= {f"k{i}": "v" for i in range(METADATA_KEYS_MAX - len(widest))}
    chat = new_chats(client, alice, 1, metadata=widest)[0]
    query = "&".join(f"metadata.{key}={value}" for key, value in widest.items())
    assert list(listed(client, alice, query)) == [chat]


def test_a_filter_selects_only_what_the_action_would_change(client: TestClient, alice: Account) -> None:
    """So "call again until `ids` comes back empty" ends: trashing again selects nothing,
    and a delete selects the chats in the trash as well as the rest."""
    travel = new_chats(client, alice, 2, metadata={"trip": "filter"})
    chosen = {"filter": {"metadata": {"trip": "filter"}}}
    assert sorted(bulk(client, alice, **chosen, action="trash")["ids"]) == travel
    assert bulk(client, alice, **chosen, action="trash")["ids"] == []
    kept = new_chats(client, alice, 1, metadata={"trip": "filter"})
    assert sorted(bulk(client, alice, **chosen, action="delete")["ids"]) == sorted(travel + kept)
    assert bulk(client, alice, **chosen, action="delete")["ids"] == []


def test_older_than_is_last_active_strictly_before(client: TestClient, alice: Account) -> None:
    at = datetime(2021, 3, 4, 5, 6, 7, 250_000, tzinfo=UTC)
    chats = new_chats(client, alice, 2, metadata={"age": "edge"})
    with engine.begin() as conn:
        conn.execute(update(Chat).where(Chat.id == chats[0]).values(updated_at=at))
        conn.execute(update(Chat).where(Chat.id == chats[1]).values(updated_at=at - timedelta(milliseconds=1)))
    chosen = {"filter": {"older_than": "2021-03-04T05:06:07.250Z", "metadata": {"age": "edge"}}}
    assert bulk(client, alice, **chosen, action="pin")["ids"] == [chats[1]]


def test_a_filter_acts_on_at_most_batch_max_chats_a_call(client: TestClient, alice: Account) -> None:
    new_chats(client, alice, BATCH_MAX + 1)
    calls = [len(bulk(client, alice, filter={"archived": False}, action="archive")["ids"]) for _ in range(3)]
    assert calls == [BATCH_MAX, 1, 0]
