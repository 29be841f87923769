"""Conversations are trees (issue 16): edits and regenerations are branches, the chat shows
one path, and a client that never sends `parent_id` builds exactly the line it built before."""

import pytest
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from alembic import command
from conftest import SETTINGS, Account
from database import ALEMBIC_INI
from main import create_app
from service.exports import HISTORY_PAGE


def post(client: TestClient, account: Account, chat_id: int, content: str, role: str = "user", **extra) -> dict:
    response = client.post(
        f"/v1/chats/{chat_id}/message", json={"role": role, "content": content, **extra}, headers=account.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


def read(client: TestClient, account: Account, chat_id: int, **query) -> dict:
    response = client.get(f"/v1/chats/{chat_id}", params=query, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()


def contents(chat: dict) -> list[str]:
    return [message["content"] for message in chat["messages"]]


@pytest.fixture
def line(client: TestClient, alice: Account, chat_id: int) -> list[dict]:
    """question 1, answer 1, question 2, answer 2: a line, posted as today's clients do."""
    return [
        post(client, alice, chat_id, text, role)
        for text, role in [("q1", "user"), ("a1", "assistant"), ("q2", "user"), ("a2", "assistant")]
    ]


def test_messages_without_parent_build_a_line(client: TestClient, alice: Account, chat_id: int, line: list) -> None:
    assert [m["parent_id"] for m in line] == [None, line[0]["id"], line[1]["id"], line[2]["id"]]
    assert all(m["sibling_ids"] == [m["id"]] for m in line)
    chat = read(client, alice, chat_id)
    assert chat["current_message_id"] == line[-1]["id"]
    assert contents(chat) == ["q1", "a1", "q2", "a2"]
    assert chat["messages"] == line


def test_an_empty_chat_shows_nothing(client: TestClient, alice: Account, chat_id: int) -> None:
    chat = read(client, alice, chat_id)
    assert chat["current_message_id"] is None and chat["messages"] == []


def test_editing_a_question_starts_a_sibling_branch(
    client: TestClient, alice: Account, chat_id: int, line: list
) -> None:
    q1, a1, q2, _ = line
    edited = post(client, alice, chat_id, "q2, edited", parent_id=a1["id"])
    assert edited["parent_id"] == a1["id"]
    assert edited["sibling_ids"] == [q2["id"], edited["id"]]
    answer = post(client, alice, chat_id, "a2 to the edit", "assistant")
    assert answer["parent_id"] == edited["id"]
    chat = read(client, alice, chat_id)
    assert chat["current_message_id"] == answer["id"]
    assert contents(chat) == ["q1", "a1", "q2, edited", "a2 to the edit"]
    assert [m["sibling_ids"] for m in chat["messages"]][2] == [q2["id"], edited["id"]]
    # Nothing is lost: the old branch is still there, and its messages show their siblings.
    old = read(client, alice, chat_id, message_id=q2["id"])
    assert contents(old) == ["q1", "a1", "q2", "a2"]
    assert old["messages"][2]["sibling_ids"] == [q2["id"], edited["id"]]
    assert read(client, alice, chat_id)["current_message_id"] == answer["id"]  # reading changed nothing
    assert q1["id"] in [m["id"] for m in old["messages"]]
    # The list of every message, in id order, shows each one's siblings too.
    listed = client.get(f"/v1/chats/{chat_id}/messages", headers=alice.headers).json()["data"]
    siblings = {q1["id"]: [q1["id"]], q2["id"]: [q2["id"], edited["id"]], edited["id"]: [q2["id"], edited["id"]]}
    assert {m["id"]: m["sibling_ids"] for m in listed if m["id"] in siblings} == siblings


def test_regenerating_an_answer_starts_a_sibling(client: TestClient, alice: Account, chat_id: int, line: list) -> None:
    q2, a2 = line[2], line[3]
    again = post(client, alice, chat_id, "a2, regenerated", "assistant", parent_id=q2["id"])
    third = post(client, alice, chat_id, "a2, once more", "assistant", parent_id=q2["id"])
    assert third["sibling_ids"] == [a2["id"], again["id"], third["id"]]
    assert contents(read(client, alice, chat_id)) == ["q1", "a1", "q2", "a2, once more"]


def test_a_null_parent_starts_a_new_root(client: TestClient, alice: Account, chat_id: int, line: list) -> None:
    root = post(client, alice, chat_id, "q1, edited", parent_id=None)
    assert root["parent_id"] is None
    assert root["sibling_ids"] == [line[0]["id"], root["id"]]
    assert contents(read(client, alice, chat_id)) == ["q1, edited"]


def test_a_parent_from_elsewhere_is_422_and_stores_nothing(
    client: TestClient, alice: Account, bob: Account, chat_id: int, line: list
) -> None:
    other_chat = client.post("/v1/chats/", json={"title": "other"}, headers=alice.headers).json()["id"]
    elsewhere = post(client, alice, other_chat, "elsewhere")
    bobs_chat = client.post("/v1/chats/", json={"title": "bob's"}, headers=bob.headers).json()["id"]
    bobs = post(client, bob, bobs_chat, "bob's")
    for parent in (elsewhere["id"], bobs["id"], 2**62):
        for url in (f"/v1/chats/{chat_id}/message", f"/v1/chats/message?chat_id={chat_id}"):
            response = client.post(
                url, json={"role": "user", "content": "x", "parent_id": parent}, headers=alice.headers
            )
            assert response.status_code == 422, response.text
            error = {
                "type": "value_error",
                "loc": ["body", "parent_id"],
                "msg": "must be the id of a message of this chat",
            }
            assert response.json() == {"detail": [error]}
    for parent in ("1", 1.5, 0, -1, True):
        body = {"role": "user", "content": "x", "parent_id": parent}
        assert client.post(f"/v1/chats/{chat_id}/message", json=body, headers=alice.headers).status_code == 422
    assert read(client, alice, chat_id)["messages"] == line


def test_bulk_takes_a_parent_for_its_first_message(
    client: TestClient, alice: Account, chat_id: int, line: list
) -> None:
    a1 = line[1]
    batch = {
        "parent_id": a1["id"],
        "messages": [{"role": "user", "content": "b1"}, {"role": "assistant", "content": "b2"}],
    }
    created = client.post(f"/v1/chats/{chat_id}/messages", json=batch, headers=alice.headers).json()
    assert [m["parent_id"] for m in created] == [a1["id"], created[0]["id"]]
    assert created[0]["sibling_ids"] == [line[2]["id"], created[0]["id"]]
    assert contents(read(client, alice, chat_id)) == ["q1", "a1", "b1", "b2"]
    # Left out, the first follows the current leaf; a message's own parent_id is ignored there.
    more = {"messages": [{"role": "user", "content": "b3", "parent_id": line[0]["id"]}]}
    created = client.post(f"/v1/chats/{chat_id}/messages", json=more, headers=alice.headers).json()
    assert contents(read(client, alice, chat_id)) == ["q1", "a1", "b1", "b2", "b3"]
    roots = {"parent_id": None, "messages": [{"role": "user", "content": "r1"}]}
    created = client.post(f"/v1/chats/{chat_id}/messages", json=roots, headers=alice.headers).json()
    assert created[0]["parent_id"] is None


def test_switching_branches_shows_the_newest_leaf_below(
    client: TestClient, alice: Account, chat_id: int, line: list
) -> None:
    q1, a1, q2, a2 = line
    edited = post(client, alice, chat_id, "q2 edited", parent_id=a1["id"])
    post(client, alice, chat_id, "a2 edited", "assistant")
    switched = client.patch(f"/v1/chats/{chat_id}", json={"current_message_id": q2["id"]}, headers=alice.headers)
    assert switched.status_code == 200
    assert switched.json()["current_message_id"] == a2["id"]
    assert contents(read(client, alice, chat_id)) == ["q1", "a1", "q2", "a2"]
    # From a message with two branches below, the most recently created leaf.
    client.patch(f"/v1/chats/{chat_id}", json={"current_message_id": q1["id"]}, headers=alice.headers)
    assert contents(read(client, alice, chat_id)) == ["q1", "a1", "q2 edited", "a2 edited"]
    # The new message follows what is shown.
    client.patch(f"/v1/chats/{chat_id}", json={"current_message_id": a2["id"]}, headers=alice.headers)
    assert post(client, alice, chat_id, "q3")["parent_id"] == a2["id"]
    for bad in (edited["id"] + 10**6, "x", None):
        response = client.patch(f"/v1/chats/{chat_id}", json={"current_message_id": bad}, headers=alice.headers)
        assert response.status_code == 422, bad
        assert [error["loc"] for error in response.json()["detail"]] == [["body", "current_message_id"]], bad


def test_reading_another_branch_changes_nothing_and_checks_the_message(
    client: TestClient, alice: Account, bob: Account, chat_id: int, line: list
) -> None:
    assert client.get(f"/v1/chats/{chat_id}?message_id={line[0]['id']}", headers=bob.headers).status_code == 404
    other = client.post("/v1/chats/", json={"title": "other"}, headers=alice.headers).json()["id"]
    for branched in (False, True):
        response = client.get(f"/v1/chats/{other}?message_id={line[0]['id']}", headers=alice.headers)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "message_id"], branched
        post(client, alice, other, "a root")
        post(client, alice, other, "another root", parent_id=None)


def test_deleting_a_message_keeps_a_line_a_line(client: TestClient, alice: Account, chat_id: int, line: list) -> None:
    q1, a1, q2, a2 = line
    assert client.delete(f"/v1/chats/{chat_id}/messages/{a1['id']}", headers=alice.headers).status_code == 200
    chat = read(client, alice, chat_id)
    assert contents(chat) == ["q1", "q2", "a2"]
    assert chat["messages"][1]["parent_id"] == q1["id"]
    # The current leaf removed: the newest surviving leaf below its parent.
    assert client.delete(f"/v1/chats/{chat_id}/messages/{a2['id']}", headers=alice.headers).status_code == 200
    chat = read(client, alice, chat_id)
    assert chat["current_message_id"] == q2["id"] and contents(chat) == ["q1", "q2"]


def test_deleting_a_subtree_removes_every_message_below(
    client: TestClient, alice: Account, chat_id: int, line: list
) -> None:
    q1, a1, q2, _ = line
    side = post(client, alice, chat_id, "side question", parent_id=q1["id"])
    response = client.delete(f"/v1/chats/{chat_id}/messages/{a1['id']}?subtree=true", headers=alice.headers)
    assert response.status_code == 200
    chat = read(client, alice, chat_id)
    assert chat["current_message_id"] == side["id"]
    assert contents(chat) == ["q1", "side question"]
    ids = [m["id"] for m in client.get(f"/v1/chats/{chat_id}/messages", headers=alice.headers).json()["data"]]
    assert ids == [q1["id"], side["id"]]
    assert (
        client.delete(f"/v1/chats/{chat_id}/messages/{q1['id']}?subtree=true", headers=alice.headers).status_code == 200
    )
    chat = read(client, alice, chat_id)
    assert chat["current_message_id"] is None and chat["messages"] == []
    assert client.delete(f"/v1/chats/{chat_id}/messages/{q2['id']}", headers=alice.headers).status_code == 404


def test_deleting_the_shown_root_shows_the_newest_message_left(
    client: TestClient, alice: Account, chat_id: int
) -> None:
    q1 = post(client, alice, chat_id, "q1")
    other = post(client, alice, chat_id, "another root", parent_id=None)
    a1 = post(client, alice, chat_id, "a1", "assistant", parent_id=q1["id"])
    assert read(client, alice, chat_id)["current_message_id"] == a1["id"]
    assert (
        client.delete(f"/v1/chats/{chat_id}/messages/{q1['id']}?subtree=true", headers=alice.headers).status_code == 200
    )
    chat = read(client, alice, chat_id)
    assert chat["current_message_id"] == other["id"] and contents(chat) == ["another root"]


def test_a_path_reads_in_pages_both_ways(client: TestClient, alice: Account, chat_id: int) -> None:
    texts = [f"m{i}" for i in range(230)]
    batch = {"messages": [{"role": "user", "content": text} for text in texts]}
    created = client.post(f"/v1/chats/{chat_id}/messages", json=batch, headers=alice.headers).json()
    post(client, alice, chat_id, "branch", parent_id=created[100]["id"])  # the chat now shows a side branch
    client.patch(f"/v1/chats/{chat_id}", json={"current_message_id": created[-1]["id"]}, headers=alice.headers)
    url = f"/v1/chats/{chat_id}/path"
    seen, before = [], None
    while True:
        query = {"limit": 50} | ({"before": before} if before else {})
        page = client.get(url, params=query, headers=alice.headers).json()
        seen = [m["content"] for m in page["data"]] + seen
        if not page["has_more"]:
            break
        before = page["first_id"]
    assert seen == texts
    forward, after = [], created[0]["id"]
    forward.append("m0")
    while True:
        page = client.get(url, params={"limit": 50, "after": after}, headers=alice.headers).json()
        forward += [m["content"] for m in page["data"]]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert forward == texts
    branch = client.get(url, params={"message_id": created[100]["id"], "limit": 3}, headers=alice.headers).json()
    assert [m["content"] for m in branch["data"]] == ["m99", "m100", "branch"]


def test_export_json_carries_the_tree_and_recreates_it(
    client: TestClient, alice: Account, chat_id: int, line: list
) -> None:
    _q1, a1, _q2, a2 = line
    post(client, alice, chat_id, "q2 edited", parent_id=a1["id"])
    post(client, alice, chat_id, "a2 edited", "assistant")
    client.patch(f"/v1/chats/{chat_id}", json={"current_message_id": a2["id"]}, headers=alice.headers)
    exported = client.get(f"/v1/chats/{chat_id}/export", headers=alice.headers).json()
    assert len(exported["messages"]) == 6 and exported["current_message_id"] == a2["id"]
    copy = client.post(
        "/v1/chats/",
        json={"title": exported["title"], "messages": exported["messages"], "current_message_id": a2["id"]},
        headers=alice.headers,
    )
    assert copy.status_code == 201, copy.text
    again = client.get(f"/v1/chats/{copy.json()['id']}/export", headers=alice.headers).json()

    def shape(chat: dict) -> list[tuple]:
        index = {m["id"]: i for i, m in enumerate(chat["messages"])}
        return [(m["content"], index.get(m["parent_id"]), len(m["sibling_ids"])) for m in chat["messages"]]

    assert shape(again) == shape(exported)
    assert contents(read(client, alice, copy.json()["id"])) == ["q1", "a1", "q2", "a2"]
    markdown = client.get(f"/v1/chats/{chat_id}/export?format=markdown", headers=alice.headers).text
    assert "q2 edited" not in markdown and "a2" in markdown
    openai = client.get(f"/v1/chats/{chat_id}/export?format=openai", headers=alice.headers).json()
    assert [turn["content"] for turn in openai["messages"]] == ["q1", "a1", "q2", "a2"]
    everything = client.get("/v1/chats/export", headers=alice.headers).json()
    assert {m["content"] for m in everything[0]["messages"]} >= {"q2 edited", "a2 edited", "q2", "a2"}


EARLIER = "must be the id of an earlier message of the list"


@pytest.mark.parametrize(
    ("messages", "where", "why"),
    [
        (
            [{"role": "user", "content": "a", "id": 1}, {"role": "user", "content": "b", "id": 1}],
            [1, "id"],
            "must be unique within the list",
        ),
        (
            [{"role": "user", "content": "a", "id": 1, "parent_id": 2}, {"role": "user", "content": "b", "id": 2}],
            [0, "parent_id"],
            EARLIER,
        ),
        ([{"role": "user", "content": "a", "id": 1, "parent_id": 1}], [0, "parent_id"], EARLIER),
    ],
    ids=["an id twice", "a later parent", "its own parent"],
)
def test_a_tree_that_names_no_earlier_message_is_422(
    client: TestClient, alice: Account, messages: list, where: list, why: str
) -> None:
    before = client.get("/v1/chats/", headers=alice.headers).json()
    response = client.post("/v1/chats/", json={"title": "t", "messages": messages}, headers=alice.headers)
    assert response.status_code == 422
    assert response.json()["detail"] == [{"type": "value_error", "loc": ["body", "messages", *where], "msg": why}]
    assert client.get("/v1/chats/", headers=alice.headers).json() == before


def test_a_current_message_id_naming_none_of_the_messages_is_422(client: TestClient, alice: Account) -> None:
    before = client.get("/v1/chats/", headers=alice.headers).json()
    body = {"title": "t", "messages": [{"role": "user", "content": "a", "id": 1}], "current_message_id": 2}
    response = client.post("/v1/chats/", json=body, headers=alice.headers)
    assert response.status_code == 422
    why = "must be the id of one of the messages"
    assert response.json()["detail"] == [{"type": "value_error", "loc": ["body", "current_message_id"], "msg": why}]
    assert client.get("/v1/chats/", headers=alice.headers).json() == before


def test_search_finds_every_branch(client: TestClient, alice: Account, chat_id: int, line: list) -> None:
    post(client, alice, chat_id, "a hidden quokka branch", parent_id=line[0]["id"])
    client.patch(f"/v1/chats/{chat_id}", json={"current_message_id": line[-1]["id"]}, headers=alice.headers)
    hits = client.get("/v1/chats/search?q=quokka", headers=alice.headers).json()["data"]
    assert [hit["chat_id"] for hit in hits] == [chat_id]


def test_the_migration_makes_todays_chats_lines(fresh_database_url: str) -> None:
    settings = SETTINGS.model_copy(update={"database_url": fresh_database_url, "migrate_on_start": False})
    app = create_app(settings)
    engine = app.state.database.engine
    config = _alembic_config(engine)
    command.upgrade(config, "0006")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, email, username, hashed_password, created_at, token_generation) "
                "VALUES (1, 'm@example.com', 'migrated', 'x', CURRENT_TIMESTAMP, 0)"
            )
        )
        for chat in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO chats (id, owner_id, title, pinned, archived, metadata, created_at, updated_at) "
                    "VALUES (:id, 1, 't', false, false, '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"id": chat},
            )
        for message, chat in ((1, 1), (2, 2), (3, 1), (4, 1), (5, 2)):
            conn.execute(
                text(
                    "INSERT INTO messages (id, chat_id, owner_id, role, content, metadata, created_at) "
                    "VALUES (:id, :chat, 1, 'user', 'x', '{}', CURRENT_TIMESTAMP)"
                ),
                {"id": message, "chat": chat},
            )
    command.upgrade(config, "head")
    with engine.connect() as conn:
        parents = dict(conn.execute(text("SELECT id, parent_id FROM messages ORDER BY id")).all())
        current = dict(conn.execute(text("SELECT id, current_message_id FROM chats ORDER BY id")).all())
    assert parents == {1: None, 2: None, 3: 1, 4: 3, 5: 2}
    assert current == {1: 4, 2: 5}
    command.downgrade(config, "0006")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM messages")).scalar_one() == 5
    command.upgrade(config, "head")
    engine.dispose()


def _alembic_config(engine: Engine) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(ALEMBIC_INI.with_name("alembic")))
    config.attributes["engine"] = engine
    return config


def test_a_line_reads_in_pages_both_ways(client: TestClient, alice: Account, chat_id: int) -> None:
    """A chat that never branched: the same pages, read by id without walking parents."""
    texts = [f"line {i}" for i in range(120)]
    batch = {"messages": [{"role": "user", "content": text} for text in texts]}
    created = client.post(f"/v1/chats/{chat_id}/messages", json=batch, headers=alice.headers).json()
    url = f"/v1/chats/{chat_id}/path"
    last = client.get(url, params={"limit": 50}, headers=alice.headers).json()
    assert [m["content"] for m in last["data"]] == texts[-50:] and last["has_more"]
    assert all(m["sibling_ids"] == [m["id"]] for m in last["data"])
    before = client.get(url, params={"limit": 50, "before": last["first_id"]}, headers=alice.headers).json()
    assert [m["content"] for m in before["data"]] == texts[20:70] and before["has_more"]
    after = client.get(url, params={"limit": 50, "after": created[9]["id"]}, headers=alice.headers).json()
    assert [m["content"] for m in after["data"]] == texts[10:60] and after["has_more"]
    end = client.get(url, params={"limit": 50, "after": created[100]["id"]}, headers=alice.headers).json()
    assert [m["content"] for m in end["data"]] == texts[101:] and not end["has_more"]
    other = client.post("/v1/chats/", json={"title": "other"}, headers=alice.headers).json()["id"]
    stranger = post(client, alice, other, "elsewhere")["id"]
    for name in ("before", "after", "message_id"):
        response = client.get(url, params={name: stranger}, headers=alice.headers)
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", name]
    whole = read(client, alice, chat_id)
    assert contents(whole) == texts
    assert contents(read(client, alice, chat_id, message_id=created[5]["id"])) == texts


def test_a_page_that_reaches_the_root_says_nothing_more(client: TestClient, alice: Account, chat_id: int) -> None:
    """`has_more` at the exact boundary, both ways, on a line and on a branched path: a page
    that ends at the root (or the leaf) says there is no more, and a page before the root
    is empty."""
    created = client.post(
        f"/v1/chats/{chat_id}/messages",
        json={"messages": [{"role": "user", "content": f"m{i}"} for i in range(4)]},
        headers=alice.headers,
    ).json()
    url = f"/v1/chats/{chat_id}/path"

    def page(**query: object) -> tuple[list[str], bool]:
        answer = client.get(url, params={"limit": 2, **query}, headers=alice.headers).json()
        return [m["content"] for m in answer["data"]], answer["has_more"]

    for branched in (False, True):
        assert page() == (["m2", "m3"], True)
        assert page(before=created[2]["id"]) == (["m0", "m1"], False)
        assert page(before=created[0]["id"]) == ([], False)
        assert page(after=created[1]["id"]) == (["m2", "m3"], False)
        if not branched:  # a sibling of m3, then back to m3: the same path, in a chat with branches
            post(client, alice, chat_id, "side", parent_id=created[2]["id"])
            client.patch(f"/v1/chats/{chat_id}", json={"current_message_id": created[3]["id"]}, headers=alice.headers)


def test_a_long_branched_path_reads_with_its_siblings(client: TestClient, alice: Account, chat_id: int) -> None:
    """A path longer than the first page of GET /v1/chats/{id}: every message of it, read
    whole or a page at a time, names its siblings."""
    count = HISTORY_PAGE + 5
    created: list[dict] = []
    for start in range(0, count, 500):
        batch = {"messages": [{"role": "user", "content": f"m{i}"} for i in range(start, min(start + 500, count))]}
        created += client.post(f"/v1/chats/{chat_id}/messages", json=batch, headers=alice.headers).json()
    side = post(client, alice, chat_id, "side", parent_id=created[0]["id"])
    client.patch(f"/v1/chats/{chat_id}", json={"current_message_id": created[-1]["id"]}, headers=alice.headers)
    whole = read(client, alice, chat_id)["messages"]
    assert [m["content"] for m in whole] == [f"m{i}" for i in range(count)]
    assert whole[1]["sibling_ids"] == [created[1]["id"], side["id"]]
    assert all(m["sibling_ids"] == [m["id"]] for m in whole[2:])
    first = client.get(f"/v1/chats/{chat_id}/path", params={"before": created[2]["id"]}, headers=alice.headers)
    assert [m["sibling_ids"] for m in first.json()["data"]] == [[created[0]["id"]], [created[1]["id"], side["id"]]]


def test_a_path_page_names_the_parameter_whose_message_is_not_in_the_chat(
    client: TestClient, alice: Account, chat_id: int
) -> None:
    created = client.post(
        f"/v1/chats/{chat_id}/messages",
        json={"messages": [{"role": "user", "content": f"m{i}"} for i in range(2)]},
        headers=alice.headers,
    ).json()
    other = client.post("/v1/chats/", json={"title": "other"}, headers=alice.headers).json()["id"]
    elsewhere = post(client, alice, other, "elsewhere")["id"]
    of_this_chat = "must be the id of a message of this chat"
    for branched in (False, True):
        if branched:
            post(client, alice, chat_id, "side", parent_id=created[0]["id"])
        # In a chat with branches, `after` must also be on the path read.
        after = "must be the id of a message on this path" if branched else of_this_chat
        for name, why in {"before": of_this_chat, "after": after, "message_id": of_this_chat}.items():
            response = client.get(f"/v1/chats/{chat_id}/path", params={name: elsewhere}, headers=alice.headers)
            assert response.status_code == 422, (branched, name)
            assert [(e["loc"], e["msg"]) for e in response.json()["detail"]] == [(["query", name], why)], branched
    # Read from a message on, in a chat with branches, the page names each message's siblings.
    following = client.get(f"/v1/chats/{chat_id}/path", params={"after": created[0]["id"]}, headers=alice.headers)
    (side,) = following.json()["data"]  # the chat shows its newest leaf
    assert (side["content"], side["sibling_ids"]) == ("side", [created[1]["id"], side["id"]])
