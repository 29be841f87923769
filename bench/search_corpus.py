"""The search scenario's corpus: 1,000,000 messages, 100,000 of them the searcher's, and
the queries it rotates through, from common words to one the searcher has almost never used.

Each message is a few filler words and four topics drawn from TOPICS, so a topic is in
about one message in twenty-five; some messages add a Chinese sentence. The searcher's
messages are spread among everyone else's, as when all users write at the same time."""

import random
from collections.abc import Iterator
from urllib.parse import quote

MESSAGES = 1_000_000
SEARCHER_SHARE = 10  # one message in ten is the searcher's
CHATS_PER_USER = 100
OTHER_USERS = 9

FILLER_WORDS = "how do I the a to of and is in it you that for on with can this why when my"
TOPIC_WORDS = """
    python sqlite postgres index query cache latency kubernetes docker redis
    migrate migration migrations schema backup replica deadlock transaction vacuum
    tokenizer embedding prompt temperature context window sampling attention
    fastapi pydantic alembic uvicorn asyncio threadpool websocket middleware
    pagination cursor snippet ranking stemming trigram unicode emoji
    encryption argon2 password session cookie header timeout retry
    benchmark profile flamegraph memory allocation garbage leak
    recipe bread flour yeast oven garden tomato compost
    travel train ticket hotel museum river mountain
    invoice budget tax salary pension mortgage
"""
FILLER = FILLER_WORDS.split()
TOPICS = [*TOPIC_WORDS.split(), "connection pool", "rate limit", "query plan", "language model", "unit test"]
CHINESE = [
    "数据库的索引怎么建",
    "这个模型的回答很好",
    "请把这段代码翻译成中文",
    "我们明天去北京旅行",
    "数据库连接池满了怎么办",
    "今天的天气非常好",
]
RARE = "quokka"  # one in two hundred of the others' messages, five of the searcher's

QUERIES = ["python", '"connection pool"', "migrat*", "deadlock replica", "数据库", RARE]


def contents(seed: int = 8) -> Iterator[tuple[bool, str]]:
    """(whether it is the searcher's, content) for each message, oldest first."""
    rng = random.Random(seed)
    searchers_rare = set(rng.sample(range(0, MESSAGES, SEARCHER_SHARE), 5))
    for i in range(MESSAGES):
        mine = i % SEARCHER_SHARE == 0
        words = rng.choices(FILLER, k=6) + rng.sample(TOPICS, 4)
        rng.shuffle(words)
        if (i in searchers_rare) if mine else rng.random() < 1 / 200:
            words.append(RARE)
        if rng.random() < 0.03:
            words.append(rng.choice(CHINESE))
        yield mine, " ".join(words)


def paths(limit: int = 20) -> list[str]:
    return [f"/v1/chats/search?q={quote(q)}&limit={limit}" for q in QUERIES]
