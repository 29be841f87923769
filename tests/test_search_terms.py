"""Search's cursor and snippet, and the OpenAI export's turns: the parts of search and
export that are not SQL (service/search_terms.py, service/exports.py), through the app."""

from fastapi.testclient import TestClient
from test_search import found, new_chat, search

from conftest import Account
from service.rules import MAX_ID


def test_after_the_largest_id_finds_every_message_and_after_the_oldest_none(client: TestClient, alice: Account) -> None:
    _, ids = new_chat(client, alice, "Quolls", "a quoll", "two quolls? no, one quoll", "the last quoll")
    assert found(client, alice, "quoll") == [f"m{i}" for i in reversed(ids)]
    assert [hit["id"] for hit in search(client, alice, "quoll", after=f"m{MAX_ID}")["data"]] == [
        f"m{i}" for i in reversed(ids)
    ]
    assert [hit["id"] for hit in search(client, alice, "quoll", after=f"m{ids[2]}")["data"]] == [
        f"m{ids[1]}",
        f"m{ids[0]}",
    ]
    assert search(client, alice, "quoll", after=f"m{ids[0]}")["data"] == []


def test_a_cursor_that_is_no_result_id_is_refused_with_an_example_of_one(client: TestClient, alice: Account) -> None:
    response = client.get("/v1/chats/search", params={"q": "quoll", "after": "x1"}, headers=alice.headers)
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "type": "value_error",
            "loc": ["query", "after"],
            "msg": "after must be the id of a search result, such as m123 or c45",
        }
    ]


def test_a_snippet_shows_a_quarter_of_its_length_before_a_match_deep_in_the_text(
    client: TestClient, alice: Account
) -> None:
    before, after = "x" * 100 + " " + "y" * 99, " " + "z" * 300
    _, (message,) = new_chat(client, alice, "Deep", f"{before} numbat{after}")
    (hit,) = search(client, alice, "numbat")["data"]
    assert hit["id"] == f"m{message}"
    shown_before = ("y" * 99)[-39:] + " "
    assert hit["snippet"] == f"…{shown_before}<mark>numbat</mark>{after[: 160 - 40 - 6]}…"


def test_an_openai_export_keeps_each_speakers_name(client: TestClient, alice: Account) -> None:
    chat_id = client.post("/v1/chats/", json={"title": "Named"}, headers=alice.headers).json()["id"]
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi", "name": "ada"},
        {"role": "assistant", "content": "Hello, Ada."},
    ]
    created = client.post(f"/v1/chats/{chat_id}/messages", json={"messages": messages}, headers=alice.headers)
    assert created.status_code == 201, created.text
    exported = client.get(f"/v1/chats/{chat_id}/export", params={"format": "openai"}, headers=alice.headers)
    assert exported.json() == {"messages": messages}
