"""README promises about search syntax, snippets and what is indexed, on both engines."""

import html
import re

from fastapi.testclient import TestClient
from test_search import found, new_chat, search

from conftest import SERVER_URL, Account


def test_and_or_not_near_are_plain_words(client: TestClient, alice: Account) -> None:
    _, (cats, dogs, both, words) = new_chat(
        client, alice, "Pets", "cats", "dogs", "cats or dogs", "not now and never near"
    )
    assert found(client, alice, "cats OR dogs") == [f"m{both}"]  # every word, "or" included
    assert found(client, alice, "cats AND dogs") == []
    assert found(client, alice, "NOT dogs") == []  # not "messages without dogs"
    assert found(client, alice, "NEAR(cats dogs)") == []
    for word in ("AND", "OR", "NOT", "NEAR", "and", "Near"):
        expected = [f"m{both}"] if word.lower() == "or" else [f"m{words}"]
        assert found(client, alice, word) == expected, word
    assert found(client, alice, "cats") == [f"m{both}", f"m{cats}"]
    assert found(client, alice, "dogs") == [f"m{both}", f"m{dogs}"]


def test_a_prefix_needs_three_characters_before_the_star(client: TestClient, alice: Account) -> None:
    _, (framework, short) = new_chat(client, alice, "Prefixes", "a framework", "fr is for French")
    assert found(client, alice, "fra*") == [f"m{framework}"]
    assert found(client, alice, "fr*") == [f"m{short}"]  # the star is ignored: the word "fr"
    assert found(client, alice, "f*") == []


def test_accents_count(client: TestClient, alice: Account) -> None:
    _, (accented, plain) = new_chat(client, alice, "Drinks", "un café au lait", "a cafe racer")
    assert found(client, alice, "café") == [f"m{accented}"]
    assert found(client, alice, "CAFÉ") == [f"m{accented}"]
    assert found(client, alice, "cafe") == [f"m{plain}"]


def shown_text(snippet: str) -> str:
    return html.unescape(re.sub(r"</?mark>", "", snippet))


def test_a_snippet_is_at_most_160_characters_around_the_first_match_with_ellipses(
    client: TestClient, alice: Account
) -> None:
    before, after = " ".join(f"b{i}" for i in range(300)), " ".join(f"a{i}" for i in range(300))
    long_text = f"{before} needle {after} needle"
    _, (long_id, short_id) = new_chat(client, alice, "Snippets", long_text, "a short needle")
    hits = {hit["id"]: hit["snippet"] for hit in search(client, alice, "needle")["data"]}
    snippet = hits[f"m{long_id}"]
    assert snippet.startswith("…") and snippet.endswith("…")
    shown = shown_text(snippet)[1:-1]
    assert len(shown) == 160
    assert shown in long_text and "needle" in shown
    assert snippet.count("<mark>needle</mark>") == 1  # the second match is past the snippet
    assert hits[f"m{short_id}"] == "a short <mark>needle</mark>"


def test_the_first_100000_characters_are_indexed_and_20000_of_cjk_text(client: TestClient, alice: Account) -> None:
    filler = "lorem " * 16_665  # 99,990 characters
    _, (latin,) = new_chat(client, alice, "Caps", filler + "inside " + "lorem " * 10 + "beyond")
    assert found(client, alice, "inside") == [f"m{latin}"]
    assert found(client, alice, "beyond") == []
    cjk_filler = "中" * 19_990
    _, (cjk,) = new_chat(client, alice, "CJK caps", cjk_filler + "数据库" + "字" * 100 + "火车站")
    assert found(client, alice, "数据库") == [f"m{cjk}"]
    for past_the_cap in ("火车站", "车站", "站"):
        assert found(client, alice, past_the_cap) == [], past_the_cap


def test_a_latin_word_against_cjk_text_is_found_through_the_cjk_around_it(client: TestClient, alice: Account) -> None:
    _, (mixed, spaced) = new_chat(client, alice, "Mixed", "用Python写", "用 Python 写")
    assert found(client, alice, "python") == [f"m{spaced}"]
    assert found(client, alice, "用") == [f"m{spaced}", f"m{mixed}"]
    assert found(client, alice, "写") == [f"m{spaced}", f"m{mixed}"]


def test_a_word_over_2000_bytes_is_not_indexed_on_postgresql_and_the_rest_of_its_text_is(
    client: TestClient, alice: Account
) -> None:
    long_word = "𝐀" * 501  # 2,004 bytes of UTF-8: a letter outside the CJK ranges
    _, (message,) = new_chat(client, alice, "Long words", f"before {long_word} after")
    assert found(client, alice, "before after") == [f"m{message}"]
    expected = [] if SERVER_URL else [f"m{message}"]
    assert found(client, alice, "𝐀" * 10 + "*") == expected
