"""The import bench: writes a ChatGPT-shaped export of about 200 MiB (thousands of conversations,
with regenerated answers and edited questions as branches, hidden system messages, tool calls
and reasoning nodes to skip), starts the service on a fresh database, posts the file once
and prints messages/s and how far the server's peak memory rose above where it was.

    python bench/import_bench.py                                   # SQLite
    python bench/import_bench.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    python bench/import_bench.py --mib 20                          # a smaller file
"""

import argparse
import json
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from run import PASSWORD, database, peak_rss_mb_of, running_server
from sqlalchemy import make_url

MiB = 1024 * 1024
T0 = 1_680_000_000.0
VOCABULARY = (
    "the a of to and in is for that on with as it be this are by from or at an which model data "
    "chat python query index memory thread export branch message server request answer question "
    "kyoto ramen garden budget travel recipe error stack trace deploy cache latency database "
    "transaction commit café naïve résumé 🙂"
)
CJK = "我们明天去京都看红叶，然后吃拉面。"
WORDS = VOCABULARY.split()


def paragraph(rng: random.Random, words: int) -> str:
    return " ".join(rng.choices(WORDS, k=words)).capitalize() + "."


def text(rng: random.Random) -> str:
    """A message's text: a sentence to a few paragraphs, as chats have; 3 % add a Chinese sentence."""
    paragraphs = [paragraph(rng, rng.randint(8, 90)) for _ in range(rng.choice((1, 1, 2, 3, 5)))]
    return "\n\n".join(paragraphs + [CJK] * (rng.random() < 0.03))


class Conversation:
    """One conversation in ChatGPT's export shape, with every field a real export carries."""

    def __init__(self, rng: random.Random, number: int) -> None:
        self.rng = rng
        self.number = number
        self.mapping: dict[str, dict] = {}
        self.clock = T0 + number * 3600
        self.kept = 0

    def node(
        self, parent: str | None, role: str | None, content: dict | None, recipient: str = "all", **metadata: object
    ) -> str:
        key = f"{self.number:06d}-{len(self.mapping):04d}"
        message = None
        if role is not None:
            self.clock += self.rng.uniform(1, 90)
            message = {
                "id": key,
                "author": {"role": role, "name": None, "metadata": {}},
                "create_time": self.clock,
                "update_time": None,
                "content": content,
                "status": "finished_successfully",
                "end_turn": role == "assistant" or None,
                "weight": 1.0,
                "metadata": {
                    "request_id": f"8a{key}",
                    "message_type": None,
                    "timestamp_": "absolute",
                    "parent_id": parent,
                    **metadata,
                },
                "recipient": recipient,
                "channel": None,
            }
        self.mapping[key] = {"id": key, "message": message, "parent": parent, "children": []}
        if parent is not None:
            self.mapping[parent]["children"].append(key)
        return key

    def said(self, parent: str, role: str) -> str:
        self.kept += 1
        extra = {"model_slug": "gpt-4o", "finish_details": {"type": "stop"}} if role == "assistant" else {}
        return self.node(parent, role, {"content_type": "text", "parts": [text(self.rng)]}, **extra)

    def build(self) -> dict:
        rng = self.rng
        root = self.node(None, None, None)
        leaf = self.node(
            root, "system", {"content_type": "text", "parts": [""]}, is_visually_hidden_from_conversation=True
        )
        for _turn in range(rng.randint(2, 24)):
            question = self.said(leaf, "user")
            if rng.random() < 0.08:  # an edited question: a second branch from the same parent
                question = self.said(leaf, "user")
            answer_parent = question
            if rng.random() < 0.15:  # reasoning before the answer, skipped
                thoughts = {"content_type": "thoughts", "thoughts": [{"summary": "Thinking", "content": text(rng)}]}
                answer_parent = self.node(answer_parent, "assistant", thoughts)
            if rng.random() < 0.1:  # a call to a tool and its result, skipped
                call = {"content_type": "code", "language": "unknown", "text": '{"query": "weather"}'}
                answer_parent = self.node(answer_parent, "assistant", call, recipient="browser")
                answer_parent = self.node(answer_parent, "tool", {"content_type": "text", "parts": [text(rng)]})
            leaf = self.said(answer_parent, "assistant")
            if rng.random() < 0.12:  # a regenerated answer: the newer one is shown
                leaf = self.said(answer_parent, "assistant")
        conversation_id = f"6630f1a0-0b3c-8000-9a8b-{self.number:012d}"
        return {
            "title": paragraph(rng, rng.randint(2, 6))[:-1],
            "create_time": T0 + self.number * 3600,
            "update_time": self.clock,
            "mapping": self.mapping,
            "moderation_results": [],
            "current_node": leaf,
            "plugin_ids": None,
            "conversation_id": conversation_id,
            "conversation_template_id": None,
            "gizmo_id": None,
            "is_archived": False,
            "safe_urls": [],
            "default_model_slug": "gpt-4o",
            "id": conversation_id,
        }


def write_export(path: Path, size: int) -> tuple[int, int]:
    """Conversations until the next would pass `size` bytes; their count and their kept messages."""
    rng = random.Random(17)
    written, conversations, messages = 1, 0, 0
    with open(path, "w", encoding="utf-8") as export:
        export.write("[")
        while True:
            conversation = Conversation(rng, conversations)
            encoded = json.dumps(conversation.build(), ensure_ascii=False)
            length = len(encoded.encode()) + 2
            if written + length > size:
                break
            export.write(("," if conversations else "") + encoded)
            written += length
            conversations += 1
            messages += conversation.kept
        export.write("]")
    return conversations, messages


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a PostgreSQL server URL (default: a fresh SQLite file)")
    parser.add_argument("--mib", type=float, default=200, help="size of the export (default 200, the limit)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="chat-import-bench-") as folder:
        export = Path(folder) / "conversations.json"
        started = time.perf_counter()
        conversations, messages = write_export(export, int(args.mib * MiB))
        size = export.stat().st_size
        print(
            f"# wrote {size / MiB:.1f} MiB: {conversations:,} conversations, {messages:,} messages to keep "
            f"({time.perf_counter() - started:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
        load_before = os.getloadavg()[0]
        with (
            database(args.database_url) as url,
            running_server(url, 1) as (base_url, server),
            httpx.Client(base_url=base_url, timeout=None) as client,
        ):
            username = "importer"
            body = {"email": f"{username}@example.com", "username": username, "password": PASSWORD}
            client.post("/v1/auth/register", json=body).raise_for_status()
            token = client.post("/v1/auth/token", data={"username": username, "password": PASSWORD}).json()
            headers = {"Authorization": f"Bearer {token['access_token']}", "Content-Type": "application/json"}
            before = memory_kib(server, "VmRSS")
            print(f"# posting it to the server, pid {server}", file=sys.stderr, flush=True)
            with open(export, "rb") as upload:
                started = time.perf_counter()
                response = client.post("/v1/chats/import", content=upload, headers=headers)
                seconds = time.perf_counter() - started
            response.raise_for_status()
            result = response.json()
            peak = memory_kib(server, "VmHWM")
            peak_mb = peak_rss_mb_of(server)

    assert result["messages"] == messages, (result["messages"], messages)
    engine_name = make_url(url).get_backend_name()
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {engine_name} · {os.cpu_count()} cores · load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after\n"
        f"{size / MiB:.1f} MiB ChatGPT export: {len(result['chats']):,} chats, {result['messages']:,} messages "
        f"({result['skipped_messages']:,} skipped) in {seconds:.1f} s = {result['messages'] / seconds:,.0f} "
        f"messages/s, {size / MiB / seconds:.2f} MiB/s\n"
        f"server RSS {before / 1024:.0f} MB before, peak {peak_mb:.0f} MB: peak growth {(peak - before) / 1024:.0f} MB"
    )


if __name__ == "__main__":
    main()
