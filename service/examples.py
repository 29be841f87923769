"""Examples of the chat routes' request and response bodies, for the OpenAPI documentation.

FastAPI leaves out the null fields of an example, so these have none: each field shows."""

from typing import Any

CHAT = {
    "id": 42,
    "title": "Two days in Kyoto",
    "pinned": False,
    "archived": False,
    "metadata": {"project": "travel"},
    "current_message_id": 1002,
    "created_at": "2026-05-01T09:30:00Z",
    "updated_at": "2026-05-01T09:31:12.250000Z",
}
QUESTION = {
    "id": 1001,
    "chat_id": 42,
    "parent_id": 1000,
    "sibling_ids": [1001],
    "role": "user",
    "content": "Plan 2 days in 京都, please.",
    "name": "alice",
    "model": "gpt-4o",
    "metadata": {"client": "web"},
    "created_at": "2026-05-01T09:31:00Z",
}
ANSWER = {
    "id": 1002,
    "chat_id": 42,
    "parent_id": 1001,
    "sibling_ids": [1002],
    "role": "assistant",
    "content": "Day 1: Fushimi Inari ⛩️ at dawn.\nDay 2: Arashiyama 🎋.",
    "name": "travel_planner",
    "model": "gpt-4o",
    "metadata": {"finish_reason": "stop"},
    "created_at": "2026-05-01T09:31:12.250000Z",
}
MESSAGES = [QUESTION, ANSWER]
PAGE = {"data": MESSAGES, "first_id": 1001, "last_id": 1002, "has_more": True}
CHAT_WITH_MESSAGES = CHAT | {"messages": MESSAGES}
OPENAI = {"messages": [{"role": m["role"], "content": m["content"], "name": m["name"]} for m in MESSAGES]}
MARKDOWN = (
    "# Two days in Kyoto\n\n_Created 2026-05-01 09:30 UTC_\n\n"
    "## User (alice)\n\nPlan 2 days in 京都, please.\n\n"
    "## Assistant (travel_planner)\n\nDay 1: Fushimi Inari ⛩️ at dawn.\nDay 2: Arashiyama 🎋.\n"
)
IMPORT_RESULT = {
    "format": "chatgpt",
    "chats": [CHAT | {"metadata": {"source": "chatgpt", "chatgpt_id": "6630f1a0-0b3c-8000-9a8b-3c1d2e4f5a6b"}}],
    "messages": 2,
    "skipped_messages": 3,
    "skipped_conversations": 1,
    "skipped_conversation_details": [
        {"index": 1, "source_id": "6631a0b0-1111-8000-aaaa-000000000002", "reason": "`mapping` must be an object"}
    ],
}
DELETED = {"ok": True}
SEARCH_PAGE = {
    "data": [
        {
            "id": "m1002",
            "chat_id": 42,
            "chat_title": "Two days in Kyoto",
            "message_id": 1002,
            "role": "assistant",
            "snippet": "Day 1: <mark>Fushimi</mark> Inari ⛩️ at dawn.",
            "created_at": "2026-05-01T09:31:12.250000Z",
        }
    ],
    "first_id": "m1002",
    "last_id": "m1002",
    "has_more": False,
}

SENT_MESSAGES = {
    "history": {
        "summary": "A conversation",
        "value": {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Plan 2 days in 京都, please."},
                {"role": "assistant", "content": "Day 1: Fushimi Inari.", "model": "gpt-4o"},
            ]
        },
    },
    "with metadata": {
        "summary": "Names, models and metadata",
        "value": {
            "messages": [
                {"role": "user", "content": "Hi", "name": "alice", "metadata": {"client": "web", "lang": "en"}},
            ]
        },
    },
}
CHAT_CHANGES = {
    "rename": {"summary": "Rename", "value": {"title": "Kyoto, spring 2026"}},
    "pin": {"summary": "Pin to the top of the list", "value": {"pinned": True}},
    "archive": {"summary": "Archive (hidden from the list)", "value": {"archived": True}},
    "metadata": {"summary": "Replace the metadata", "value": {"metadata": {"project": "travel"}}},
}
MESSAGE_CHANGES = {
    "content": {"summary": "Fix the content", "value": {"content": "Plan 3 days in 京都, please."}},
    "metadata": {"summary": "Replace the metadata", "value": {"metadata": {"rating": "👍"}}},
}
CHATGPT_CONVERSATIONS = [
    {
        "title": "Two days in Kyoto",
        "create_time": 1777627800.0,
        "current_node": "b",
        "mapping": {
            "root": {"id": "root", "message": None, "parent": None, "children": ["a"]},
            "a": {
                "id": "a",
                "parent": "root",
                "children": ["b"],
                "message": {
                    "author": {"role": "user"},
                    "create_time": 1777627860.0,
                    "content": {"content_type": "text", "parts": ["Plan 2 days in 京都, please."]},
                    "metadata": {},
                    "recipient": "all",
                },
            },
            "b": {
                "id": "b",
                "parent": "a",
                "children": [],
                "message": {
                    "author": {"role": "assistant"},
                    "create_time": 1777627872.25,
                    "content": {"content_type": "text", "parts": ["Day 1: Fushimi Inari ⛩️ at dawn."]},
                    "metadata": {"model_slug": "gpt-4o"},
                    "recipient": "all",
                },
            },
        },
    }
]


def example(status_code: int, value: Any, media_type: str = "application/json") -> dict[int | str, dict[str, Any]]:
    """A route's `responses` entry that adds an example to the response FastAPI documents."""
    return {status_code: {"content": {media_type: {"example": value}}}}


CHANGES = {
    "data": [
        {"kind": "chat", "id": 42, "chat_id": 42, "change": "updated", "at": "2026-11-24T09:15:03Z"},
        {"kind": "message", "id": 1337, "chat_id": 42, "change": "created", "at": "2026-11-24T09:15:03Z"},
        {"kind": "chat", "id": 7, "chat_id": 7, "change": "deleted", "at": "2026-11-24T09:16:40Z"},
    ],
    "cursor": "1208",
    "has_more": False,
}
