"""Search: words in any script, only the caller's, in step with edits and deletes, safe
against any query, and paged without gap or repeat."""

import secrets
import string
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, event, text

from conftest import ENGINE as engine
from conftest import SERVER_URL, Account
from models import User
from search_store import MAX_PREFIX_WORDS


def new_chat(client: TestClient, account: Account, title: str, *contents: str) -> tuple[int, list[int]]:
    messages = [{"role": ("user", "assistant")[i % 2], "content": c} for i, c in enumerate(contents)]
    response = client.post("/v1/chats/", json={"title": title}, headers=account.headers)
    assert response.status_code == 201, response.text
    chat_id = response.json()["id"]
    if not messages:
        return chat_id, []
    created = client.post(f"/v1/chats/{chat_id}/messages", json={"messages": messages}, headers=account.headers)
    assert created.status_code == 201, created.text
    return chat_id, [m["id"] for m in created.json()]


def search(client: TestClient, account: Account, q: str, **params: object) -> dict:
    response = client.get("/v1/chats/search", params={"q": q, **params}, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()


def found(client: TestClient, account: Account, q: str) -> list[str]:
    return [hit["id"] for hit in search(client, account, q, limit=100)["data"]]


def test_finds_english_words_in_messages_with_chat_role_and_marked_snippet(client: TestClient, alice: Account) -> None:
    chat_id, (question, answer) = new_chat(
        client, alice, "Web frameworks", "What is FastAPI?", "FastAPI is a modern <b>Python</b> web framework."
    )
    body = search(client, alice, "python framework")
    assert body["data"] == [
        {
            "id": f"m{answer}",
            "chat_id": chat_id,
            "chat_title": "Web frameworks",
            "message_id": answer,
            "role": "assistant",
            "snippet": "FastAPI is a modern &lt;b&gt;<mark>Python</mark>&lt;/b&gt; web <mark>framework</mark>.",
            "created_at": body["data"][0]["created_at"],
        }
    ]
    assert body["first_id"] == body["last_id"] == f"m{answer}" and body["has_more"] is False
    # Any case; whole words: "frame" is not "framework", but "frame*" is its prefix.
    assert found(client, alice, "FASTAPI") == [f"m{answer}", f"m{question}"]
    assert found(client, alice, "frame") == []
    assert found(client, alice, "frame*") == [f"c{chat_id}", f"m{answer}"]
    assert search(client, alice, "frame*")["data"][1]["snippet"].endswith(" web <mark>framework</mark>.")


def test_finds_chinese_and_japanese_by_any_part_of_the_text(client: TestClient, alice: Account) -> None:
    _, (message,) = new_chat(client, alice, "数据库", "我喜欢用PostgreSQL数据库存储聊天记录。")
    _, (kana,) = new_chat(client, alice, "日本語", "東京でラーメンを食べました")
    _, (hangul,) = new_chat(client, alice, "한국어", "데이터베이스를 만들었다")
    assert found(client, alice, "데이터") == [f"m{hangul}"]
    assert found(client, alice, "数据库")[-1] == f"m{message}"  # after the chat titled so
    for q in ("聊天记录", "聊天", "存", "数据 存储", "ラーメン", "東京"):
        assert f"m{message}" in found(client, alice, q) or f"m{kana}" in found(client, alice, q), q
    assert found(client, alice, "聊天") == [f"m{message}"]
    assert found(client, alice, "记录聊天") == []  # the characters, but not in that order
    snippet = search(client, alice, "聊天记录")["data"][0]["snippet"]
    assert snippet == "我喜欢用PostgreSQL数据库存储<mark>聊天记录</mark>。"
    snippet = search(client, alice, "数据 数据库")["data"][-1]["snippet"]  # the longer term marked whole
    assert snippet == "我喜欢用PostgreSQL<mark>数据库</mark>存储聊天记录。"


def test_every_cjk_word_of_a_query_is_in_each_hit(client: TestClient, alice: Account) -> None:
    _, (station, train, both, _) = new_chat(
        client, alice, "Stations", "北京站", "火车", "火车站在北京站旁边", "北京有京站"
    )
    for q in ("火车 北京站", "北京站 火车"):
        assert found(client, alice, q) == [f"m{both}"], q
    # "北京有京站" holds 北京 and 京站, each pair of 北京站, but not the word: not found.
    assert found(client, alice, "北京站") == [f"m{both}", f"m{station}"]
    assert found(client, alice, "火车") == [f"m{both}", f"m{train}"]


def test_finds_words_among_emoji(client: TestClient, alice: Account) -> None:
    _, (party,) = new_chat(client, alice, "Plans 🎉", "🎉🎉 Party at 8pm 🍕🍕 bring pizza🍕 and drinks 🥤!")
    assert found(client, alice, "pizza") == [f"m{party}"]
    assert found(client, alice, "PARTY drinks") == [f"m{party}"]
    hit = search(client, alice, "pizza")["data"][0]
    assert "<mark>pizza</mark>🍕" in hit["snippet"]


def test_finds_chat_titles_first_with_no_message(client: TestClient, alice: Account) -> None:
    chat_id, (message,) = new_chat(client, alice, "Trip to Kyoto 京都旅行", "Book the ryokan in Kyoto")
    titled_only, _ = new_chat(client, alice, "Kyoto food")
    hits = search(client, alice, "kyoto")["data"]
    assert [hit["id"] for hit in hits] == [f"c{titled_only}", f"c{chat_id}", f"m{message}"]
    assert hits[0] | {"created_at": None} == {
        "id": f"c{titled_only}",
        "chat_id": titled_only,
        "chat_title": "Kyoto food",
        "message_id": None,
        "role": None,
        "snippet": "<mark>Kyoto</mark> food",
        "created_at": None,
    }
    assert found(client, alice, "京都") == [f"c{chat_id}"]
    renamed = client.patch(f"/v1/chats/{titled_only}", json={"title": "Osaka food"}, headers=alice.headers)
    assert renamed.status_code == 200
    assert found(client, alice, "kyoto") == [f"c{chat_id}", f"m{message}"]
    assert found(client, alice, "osaka") == [f"c{titled_only}"]


def test_phrases_match_words_in_order(client: TestClient, alice: Account) -> None:
    _, (ordered, reversed_) = new_chat(client, alice, "ML", "machine learning rocks", "learning about a machine")
    assert found(client, alice, '"machine learning"') == [f"m{ordered}"]
    assert sorted(found(client, alice, "machine learning")) == sorted([f"m{ordered}", f"m{reversed_}"])
    # Punctuation inside a word makes a phrase of its parts, as in the text.
    _, (site,) = new_chat(client, alice, "Links", "visit example.com or e-mail me")
    assert found(client, alice, "example") == [f"m{site}"]
    assert found(client, alice, "example.com") == [f"m{site}"]
    assert found(client, alice, "e-mail") == [f"m{site}"]
    assert found(client, alice, "com.example") == []


def test_never_returns_another_users_chat_or_message(client: TestClient, alice: Account, bob: Account) -> None:
    _, (mine,) = new_chat(client, alice, "Alice notes", "a note on zebras")
    bobs_chat, bobs = new_chat(client, bob, "zebras zebras zebras", "zebras zebras zebras zebras", "斑马斑马")
    _, (mine_cjk,) = new_chat(client, alice, "Alice 中文", "一只斑马")
    assert found(client, alice, "zebras") == [f"m{mine}"]
    assert found(client, alice, "斑马") == [f"m{mine_cjk}"]
    assert found(client, alice, "斑") == [f"m{mine_cjk}"]
    assert f"c{bobs_chat}" in found(client, bob, "zebras")
    # Bob's chat ids and message ids as cursors find nothing of his either.
    for after in (f"c{bobs_chat + 1}", f"m{bobs[-1] + 1}"):
        assert all(hit["chat_id"] != bobs_chat for hit in search(client, alice, "zebras", after=after)["data"])


def test_follows_edits_and_deletes_at_once(client: TestClient, alice: Account) -> None:
    chat_id, (first, second) = new_chat(client, alice, "Edits", "the old giraffe", "a second giraffe 长颈鹿")
    url = f"/v1/chats/{chat_id}/messages"
    edited = client.patch(f"{url}/{first}", json={"content": "a new okapi 霍加狓"}, headers=alice.headers)
    assert edited.status_code == 200
    assert found(client, alice, "giraffe") == [f"m{second}"]
    assert found(client, alice, "okapi") == [f"m{first}"]
    assert found(client, alice, "霍加狓") == [f"m{first}"]
    assert client.delete(f"{url}/{second}", headers=alice.headers).status_code == 200
    assert found(client, alice, "giraffe") == [] and found(client, alice, "长颈鹿") == []

    other_chat, (other,) = new_chat(client, alice, "Okapi facts", "okapi live in forests")
    assert client.delete(f"/v1/chats/{chat_id}", headers=alice.headers).status_code == 200
    assert found(client, alice, "okapi") == [f"c{other_chat}", f"m{other}"]
    assert client.delete("/v1/chats/", params={"confirm": "true"}, headers=alice.headers).status_code == 200
    assert found(client, alice, "okapi") == [] and found(client, alice, "forests") == []


def index_entries(owner_id: int) -> dict[str, int]:
    """How many entries of each search index carry this owner."""
    counts = {}
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            for index, owner in (("search_messages", owner_id), ("search_messages_cjk", f".{owner_id}.")):
                for name in (index, index.replace("messages", "chats")):
                    match = {"match": f'owner : "{owner}"'}
                    counts[name] = connection.scalar(
                        text(f"SELECT count(*) FROM {name} WHERE {name} MATCH :match"), match
                    )
        else:
            # Every lexeme carries its owner: "42:farewell", "42:再见".
            for name in ("messages", "chats"):
                for lexeme in ("farewell", "再见", "再"):
                    query = {"query": f"'{owner_id}:{lexeme}'"}
                    counts[f"{name} {lexeme}"] = connection.scalar(
                        text(f"SELECT count(*) FROM {name} WHERE search_document @@ CAST(:query AS tsquery)"), query
                    )
    return counts


def test_a_deleted_user_leaves_nothing_in_the_index(client: TestClient, alice: Account) -> None:
    new_chat(client, alice, "Goodbye 再见 farewell", "farewell 再见了", "farewell again")
    before = index_entries(alice.id)
    assert all(before.values()), before  # the check below would see them
    with engine.begin() as connection:
        connection.execute(delete(User).where(User.id == alice.id))
    assert set(index_entries(alice.id).values()) == {0}


NO_WORDS, TOO_LONG = "The query has no words to search for", "String should have at most 500 characters"
TITLE_AND_MESSAGE, MESSAGE, NOTHING = ["c", "m"], ["m"], []
# Each query, and what it finds in a chat "owner body NEAR" whose message is
# "x y a b owner body near OR AND 字字字 pizza 🍕": 200 with those results, or a 422 saying why.
HOSTILE = [
    ('"', NO_WORDS),
    ('""', NO_WORDS),
    ("*", NO_WORDS),
    ("***", NO_WORDS),
    ("NEAR(", TITLE_AND_MESSAGE),
    ("NEAR(a b, 2)", NOTHING),  # the words near, a, b and 2: no "2"
    ("OR OR", MESSAGE),
    ("AND", MESSAGE),
    ("NOT", NOTHING),
    ("'--", NO_WORDS),
    ("'; DROP TABLE messages; --", NOTHING),
    ("a:b", MESSAGE),  # the phrase "a b"
    ("body : x", MESSAGE),
    ("owner : 1", NOTHING),
    ("{owner body}: x", MESSAGE),
    ("^x", MESSAGE),
    ("x + y", MESSAGE),
    ("-x", MESSAGE),
    ("(x", MESSAGE),
    ("x)", MESSAGE),
    ("'", NO_WORDS),
    ("\\", NO_WORDS),
    ("%", NO_WORDS),
    ("_", NO_WORDS),
    ("a*b*", MESSAGE),  # "b*" is too short a prefix: the phrase "a b"
    ("!&|<->:*", NO_WORDS),
    ("owner=1", NOTHING),
    ("\x00", NO_WORDS),
    ("a\x00b", MESSAGE),
    ("\ud800", NO_WORDS),
    ("x\udfffy", MESSAGE),
    ("\udcff\udcfe", NO_WORDS),
    ("🎉", NO_WORDS),
    ("🍕 pizza", MESSAGE),
    ("x" * 500, NOTHING),
    ("ab " * 166, NOTHING),
    ("word " * 2_000, TOO_LONG),  # 10 KB
    ("字" * 3000, TOO_LONG),
]


@pytest.mark.parametrize(("q", "expected"), HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_queries_are_answered_or_refused_never_an_error(
    client: TestClient, alice: Account, q: str, expected: list[str] | str
) -> None:
    chat_id, (message_id,) = new_chat(
        client, alice, "owner body NEAR", "x y a b owner body near OR AND 字字字 pizza 🍕"
    )
    # Percent-encoded by hand: lone surrogates go as the bytes a careless client would send.
    query = quote(q.encode("utf-8", "surrogatepass"))
    response = client.get(f"/v1/chats/search?q={query}&limit=100", headers=alice.headers)
    if isinstance(expected, str):
        assert response.status_code == 422, response.text
        assert [(e["loc"], e["msg"]) for e in response.json()["detail"]] == [(["query", "q"], expected)]
    else:
        assert response.status_code == 200, response.text
        ids = {"c": f"c{chat_id}", "m": f"m{message_id}"}
        assert [hit["id"] for hit in response.json()["data"]] == [ids[kind] for kind in expected]


def test_queries_with_no_words_are_refused(client: TestClient, alice: Account) -> None:
    for q in ('"', "*", "🎉", "'--", "!&|"):
        response = client.get("/v1/chats/search", params={"q": q}, headers=alice.headers)
        assert response.status_code == 422, q
        assert [(e["loc"], e["msg"]) for e in response.json()["detail"]] == [
            (["query", "q"], "The query has no words to search for")
        ]
    for params in ({}, {"q": ""}, {"q": "x" * 501}, {"q": "x", "limit": 0}, {"q": "x", "limit": 101}):
        assert client.get("/v1/chats/search", params=params, headers=alice.headers).status_code == 422
    too_many = " ".join(f"w{i}" for i in range(17))
    fifteen = " ".join(f"w{i}" for i in range(15))
    for q in (f"{fifteen} w15", f"{fifteen} 中", f"{fifteen} pre*"):  # 16 words are taken
        assert client.get("/v1/chats/search", params={"q": q}, headers=alice.headers).status_code == 200, q
    for q in (too_many, f'"{too_many}"', f"{fifteen} 中 文", f"{fifteen} pre* fix*"):
        response = client.get("/v1/chats/search", params={"q": q}, headers=alice.headers)
        assert [(e["loc"], e["msg"]) for e in response.json()["detail"]] == [
            (["query", "q"], "The query has too many words (at most 16)")
        ]
    for after in ("", "m0", "x1", "m-1", "c", "m9223372036854775808", "m99999999999999999999", "1"):
        response = client.get("/v1/chats/search", params={"q": "x", "after": after}, headers=alice.headers)
        assert response.status_code == 422, after
        assert response.json()["detail"][0]["loc"] == ["query", "after"]
    assert client.get("/v1/chats/search", params={"q": "x"}).status_code == 401


@pytest.mark.skipif(SERVER_URL is not None, reason="SQLite's FTS5 plan; PostgreSQL reads a prefix from its index")
def test_a_prefix_over_messages_is_sent_to_fts5_as_the_words_that_begin_with_it(
    client: TestClient, alice: Account
) -> None:
    """docs/search.md: FTS5 reads each word's list lazily, while `prefix *` merges every
    user's lists first; so a prefix is sent as the index's words that begin with it, when
    there are at most MAX_PREFIX_WORDS of them."""
    stems = ["qz" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(8)) for _ in range(3)]
    one, sixty_four, sixty_five = stems
    many = [a + b for a in "abcdefgh" for b in "abcdefgh"]
    new_chat(client, alice, "Words", f"{one}word", " ".join(sixty_four + w for w in many))
    new_chat(client, alice, "More", " ".join(sixty_five + w for w in [*many, "zz"]))
    sent: list[str] = []

    def matches(_conn, _cursor, statement: str, parameters, _context, _many) -> None:
        if "MATCH" in statement:
            sent.extend(p for p in parameters if isinstance(p, str) and "body" in p)

    event.listen(Engine, "before_cursor_execute", matches)
    try:
        for stem, count in ((one, 1), (sixty_four, MAX_PREFIX_WORDS)):
            sent.clear()
            assert len(found(client, alice, f"{stem}*")) == 1
            assert sent[-1].count(f'"{stem}') == count and "*" not in sent[-1], sent[-1]
        sent.clear()
        assert len(found(client, alice, f"{sixty_five}*")) == 1  # one word more than that: `prefix *`
        assert sent[-1].endswith(f'"{sixty_five}" *'), sent[-1]
    finally:
        event.remove(Engine, "before_cursor_execute", matches)


def test_paging_walks_every_result_once_newest_first(client: TestClient, alice: Account) -> None:
    titled = [new_chat(client, alice, f"lemur chat {i}")[0] for i in range(7)]
    _, ids = new_chat(client, alice, "other", *[f"lemur number {i} 狐猴" for i in range(95)], "no match")
    expected = [f"c{c}" for c in reversed(titled)] + [f"m{m}" for m in reversed(ids[:95])]
    # Pages that end among the chats (3), exactly after the last chat (7), among the messages (10).
    for q, limit in [(q, limit) for q in ("lemur", "狐猴", "lem*") for limit in (3, 7, 10)]:
        walked, after, sizes = [], None, []
        while True:
            body = search(client, alice, q, limit=limit, **({"after": after} if after else {}))
            assert body["first_id"] == body["data"][0]["id"] and body["last_id"] == body["data"][-1]["id"]
            walked += [hit["id"] for hit in body["data"]]
            sizes.append(len(body["data"]))
            if not body["has_more"]:
                break
            after = body["last_id"]
        assert walked == (expected if q != "狐猴" else expected[7:]), (q, limit)
        assert set(sizes[:-1]) == {limit} and 0 < sizes[-1] <= limit, (q, limit)
    assert search(client, alice, "lemur", after=f"m{ids[0]}") == {
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }


def test_finds_my_few_old_matches_under_many_newer_of_another_user(
    client: TestClient, alice: Account, bob: Account
) -> None:
    _, mine = new_chat(client, alice, "Old notes", "an aardvark at dawn", "nothing here", "aardvark again")
    bobs_chat, _ = new_chat(client, bob, "Bob's zoo")
    # More newer messages than a PostgreSQL search walks before it turns to the index alone.
    for _ in range(6):
        batch = [{"role": "user", "content": f"aardvark {i}"} for i in range(1000)]
        created = client.post(f"/v1/chats/{bobs_chat}/messages", json={"messages": batch}, headers=bob.headers)
        assert created.status_code == 201
    assert found(client, alice, "aardvark") == [f"m{mine[2]}", f"m{mine[0]}"]
    first = search(client, alice, "aardvark", limit=1)
    assert [hit["id"] for hit in first["data"]] == [f"m{mine[2]}"] and first["has_more"]
    assert found(client, alice, "aardvark dawn") == [f"m{mine[0]}"]


def test_finds_my_old_matches_under_more_than_a_thousand_of_my_own_newer_messages(
    client: TestClient, alice: Account
) -> None:
    # PostgreSQL reads the caller's newest thousand messages one by one, then the index.
    _, (old,) = new_chat(client, alice, "Old notes", "a pangolin at dusk")
    chat_id, _ = new_chat(client, alice, "Newer notes")
    for _ in range(2):
        batch = [{"role": "user", "content": f"note {i}"} for i in range(600)]
        created = client.post(f"/v1/chats/{chat_id}/messages", json={"messages": batch}, headers=alice.headers)
        assert created.status_code == 201
    _, (new,) = new_chat(client, alice, "Newest", "another pangolin")
    assert found(client, alice, "pangolin") == [f"m{new}", f"m{old}"]
    assert found(client, alice, "dusk") == [f"m{old}"]
    assert found(client, alice, "pango*") == [f"m{new}", f"m{old}"]
    page = search(client, alice, "pangolin", limit=1)
    assert [hit["id"] for hit in page["data"]] == [f"m{new}"] and page["has_more"]
    assert [hit["id"] for hit in search(client, alice, "pangolin", after=page["last_id"])["data"]] == [f"m{old}"]


def test_a_message_of_thirty_thousand_different_words_is_stored_and_found(client: TestClient, alice: Account) -> None:
    words = [chr(0x4E00 + i // 150) + chr(0x4E00 + i % 150) for i in range(30_000)]
    _, (message,) = new_chat(client, alice, "Many words", " ".join(words) + " wombat")
    assert found(client, alice, words[0]) == [f"m{message}"]
    assert found(client, alice, "wombat") == [f"m{message}"]


@pytest.mark.skipif(not SERVER_URL, reason="PostgreSQL's tsvector size limit")
def test_a_document_too_big_for_a_tsvector_is_made_of_less_of_the_text() -> None:
    # 42,000 different words, each with an owner prefix of 19 characters: over 1 MB.
    body = " ".join(chr(0x20000 + i) for i in range(42_000))
    with engine.connect() as connection:
        lexemes = connection.execute(
            text("SELECT length(search_document(:body, :owner))"), {"body": body, "owner": 10**18}
        )
        assert 0 < lexemes.scalar() < 42_000


def test_a_prefix_of_more_words_than_are_spelled_out_finds_them_all(client: TestClient, alice: Account) -> None:
    # SQLite spells a prefix out as the index's words beginning with it, up to 64 of them.
    _, ids = new_chat(client, alice, "Prefixes", *[f"kiwi{i}fruit" for i in range(70)])
    assert found(client, alice, "kiwi*") == [f"m{message}" for message in reversed(ids)]
    assert found(client, alice, "kiwi69*") == [f"m{ids[69]}"]


def test_a_prefix_finds_the_words_it_begins_and_no_other(client: TestClient, alice: Account) -> None:
    # Two words that begin with it; two that sort right after it (SQLite reads the index's
    # words between the prefix and the next one), which must not be found.
    _, ids = new_chat(client, alice, "Prefix", "qumigrate the data", "a qumigration plan", "qumint or qumigsy")
    assert found(client, alice, "qumigr*") == [f"m{ids[1]}", f"m{ids[0]}"]
    assert found(client, alice, "qumigrat*") == [f"m{ids[1]}", f"m{ids[0]}"]
    assert found(client, alice, "quzzyx*") == []
