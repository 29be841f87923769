"""Safe concurrent edits: chats and messages carry a version, sent as a strong ETag
(`"<version>"`); PATCH and DELETE honour If-Match (412 with the current version), GET
honours If-None-Match (304). Without the headers everything works as before."""

import pytest
from fastapi.testclient import TestClient

from conftest import Account


def tag(response) -> str:
    return response.headers["etag"]


def add_message(client: TestClient, alice: Account, chat_id: int, content: str = "hello") -> dict:
    response = client.post(
        f"/v1/chats/{chat_id}/message", json={"role": "user", "content": content}, headers=alice.headers
    )
    assert response.status_code == 201
    return response.json()


def test_two_tabs_renaming_one_chat_one_wins_the_other_is_told(client: TestClient, alice: Account, chat_id: int):
    read = client.get(f"/v1/chats/{chat_id}", headers=alice.headers)
    version = tag(read)
    assert version == '"1"'
    first = client.patch(
        f"/v1/chats/{chat_id}", json={"title": "Tab one"}, headers={**alice.headers, "If-Match": version}
    )
    assert first.status_code == 200 and tag(first) == '"2"'
    second = client.patch(
        f"/v1/chats/{chat_id}", json={"title": "Tab two"}, headers={**alice.headers, "If-Match": version}
    )
    assert second.status_code == 412
    assert second.json()["version"] == 2 and "detail" in second.json()
    assert tag(second) == '"2"'
    assert client.get(f"/v1/chats/{chat_id}", headers=alice.headers).json()["title"] == "Tab one"
    # With the version it was told, the second tab's rename goes through.
    retried = client.patch(
        f"/v1/chats/{chat_id}", json={"title": "Tab two"}, headers={**alice.headers, "If-Match": tag(second)}
    )
    assert retried.status_code == 200 and tag(retried) == '"3"'


def test_every_change_raises_the_chat_version(client: TestClient, alice: Account, chat_id: int) -> None:
    def version() -> int:
        return int(tag(client.get(f"/v1/chats/{chat_id}", headers=alice.headers)).strip('"'))

    seen = [version()]
    message = add_message(client, alice, chat_id)
    seen.append(version())
    client.patch(f"/v1/chats/{chat_id}/messages/{message['id']}", json={"content": "edited"}, headers=alice.headers)
    seen.append(version())
    client.patch(f"/v1/chats/{chat_id}", json={"pinned": True}, headers=alice.headers)
    seen.append(version())
    client.delete(f"/v1/chats/{chat_id}/messages/{message['id']}", headers=alice.headers)
    seen.append(version())
    client.delete(f"/v1/chats/{chat_id}", headers=alice.headers)
    assert client.post(f"/v1/chats/{chat_id}/restore", headers=alice.headers).status_code == 200
    seen.append(version())
    assert seen == sorted(set(seen))


def test_if_none_match_is_304_until_the_chat_changes(client: TestClient, alice: Account, chat_id: int) -> None:
    add_message(client, alice, chat_id)
    version = tag(client.get(f"/v1/chats/{chat_id}", headers=alice.headers))
    cached = client.get(f"/v1/chats/{chat_id}", headers={**alice.headers, "If-None-Match": version})
    assert cached.status_code == 304 and cached.content == b"" and tag(cached) == version
    weak = client.get(f"/v1/chats/{chat_id}", headers={**alice.headers, "If-None-Match": f'"0", W/{version}'})
    assert weak.status_code == 304
    add_message(client, alice, chat_id, "a new one")
    fresh = client.get(f"/v1/chats/{chat_id}", headers={**alice.headers, "If-None-Match": version})
    assert fresh.status_code == 200 and tag(fresh) != version
    assert [m["content"] for m in fresh.json()["messages"]] == ["hello", "a new one"]


def test_messages_have_their_own_versions(client: TestClient, alice: Account, chat_id: int) -> None:
    message = add_message(client, alice, chat_id)
    url = f"/v1/chats/{chat_id}/messages/{message['id']}"
    edited = client.patch(url, json={"content": "v2"}, headers={**alice.headers, "If-Match": '"1"'})
    assert edited.status_code == 200 and tag(edited) == '"2"'
    stale = client.patch(url, json={"content": "v2 again"}, headers={**alice.headers, "If-Match": '"1"'})
    assert stale.status_code == 412 and stale.json()["version"] == 2
    assert client.delete(url, headers={**alice.headers, "If-Match": '"1"'}).status_code == 412
    assert client.get(f"/v1/chats/{chat_id}", headers=alice.headers).json()["messages"][0]["content"] == "v2"
    assert client.delete(url, headers={**alice.headers, "If-Match": '"2"'}).status_code == 200


def test_delete_honours_if_match(client: TestClient, alice: Account, chat_id: int) -> None:
    url = f"/v1/chats/{chat_id}"
    assert client.delete(url, headers={**alice.headers, "If-Match": '"7"'}).status_code == 412
    assert client.get(url, headers=alice.headers).status_code == 200
    assert client.delete(url, headers={**alice.headers, "If-Match": '"1"'}).status_code == 200
    assert client.get(url, headers=alice.headers).status_code == 404
    # In the trash: a PATCH finds no chat, whatever version it names.
    assert client.patch(url, json={"title": "x"}, headers={**alice.headers, "If-Match": '"1"'}).status_code == 404
    # The move raised the version to 2; a permanent delete checks it too.
    stale = client.delete(f"{url}?permanent=true", headers={**alice.headers, "If-Match": '"1"'})
    assert stale.status_code == 412 and stale.json()["version"] == 2
    assert client.delete(f"{url}?permanent=true", headers={**alice.headers, "If-Match": '"2"'}).status_code == 200
    assert client.get("/v1/chats/?trashed=true", headers=alice.headers).json() == []


@pytest.mark.parametrize("header", ["*", '"5", "1"', '"7","1"'])
def test_if_match_any_or_a_list(client: TestClient, alice: Account, chat_id: int, header: str) -> None:
    response = client.patch(f"/v1/chats/{chat_id}", json={"title": "ok"}, headers={**alice.headers, "If-Match": header})
    assert response.status_code == 200


@pytest.mark.parametrize("header", ["1", "x1y", 'W/"1"', '"x"', '"99999999999999999999999"', ""])
def test_an_if_match_naming_no_version_is_412_and_changes_nothing(
    client: TestClient, alice: Account, chat_id: int, header: str
) -> None:
    response = client.patch(f"/v1/chats/{chat_id}", json={"title": "no"}, headers={**alice.headers, "If-Match": header})
    assert response.status_code == 412
    assert client.get(f"/v1/chats/{chat_id}", headers=alice.headers).json()["title"] == "Alice's chat"


def test_another_users_chat_is_404_whatever_the_version(
    client: TestClient, alice: Account, bob: Account, chat_id: int
) -> None:
    response = client.patch(f"/v1/chats/{chat_id}", json={"title": "x"}, headers={**bob.headers, "If-Match": '"1"'})
    assert response.status_code == 404
    assert client.get(f"/v1/chats/{chat_id}", headers={**bob.headers, "If-None-Match": '"1"'}).status_code == 404
