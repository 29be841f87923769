"""CPU time per request, in-process: an append with the default parent, and a read of a
50-message chat, through the real app on a temporary SQLite file (synchronous=NORMAL, so
no disk sync is counted) or a fresh PostgreSQL database. Process time, not wall time: a
loaded machine skews it far less than a throughput run, which makes it the tool for
comparing two commits side by side. On PostgreSQL it counts the app's side only, not the
server's.

    python bench/cpu.py            # from a checkout; run it in each checkout to compare
    python bench/cpu.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

import argparse
import logging
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from run import database

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--database-url", help="a PostgreSQL server URL (default: a temporary SQLite file)")
ARGS = parser.parse_args()
CLEANUP = ExitStack()
os.environ.update(
    DATABASE_URL=CLEANUP.enter_context(database(ARGS.database_url)),
    SECRET_KEY="k" * 48,
    RATE_LIMIT_LOGIN="100000/minute",
    RATE_LIMIT_REGISTER="100000/minute",
    REDIS_URL="",
    SQLITE_SYNCHRONOUS="NORMAL",
)
sys.path.insert(0, str(Path.cwd()))
logging.disable(logging.WARNING)

from fastapi.testclient import TestClient  # noqa: E402

from main import app  # noqa: E402

PASSWORD = "correct horse battery"
ROUNDS, REQUESTS = 5, 300


def main() -> None:
    with CLEANUP, TestClient(app) as client:
        client.post("/v1/auth/register", json={"email": "b@example.com", "username": "bench", "password": PASSWORD})
        token = client.post("/v1/auth/token", data={"username": "bench", "password": PASSWORD}).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        append = client.post("/v1/chats/", json={"title": "append"}, headers=headers).json()["id"]
        read = client.post("/v1/chats/", json={"title": "read"}, headers=headers).json()["id"]
        for i in range(50):
            message = {"role": "user", "content": f"message {i} about a long conversation"}
            client.post(f"/v1/chats/{read}/message", json=message, headers=headers)
        body = {"role": "user", "content": "How do I keep a long conversation fast to read back?"}
        calls = {
            "append": lambda: client.post(f"/v1/chats/{append}/message", json=body, headers=headers),
            "read-50": lambda: client.get(f"/v1/chats/{read}", headers=headers),
        }
        figures = []
        for name, call in calls.items():
            best = float("inf")
            for _ in range(ROUNDS):
                started = time.process_time()
                for _ in range(REQUESTS):
                    assert call().status_code in (200, 201)
                best = min(best, (time.process_time() - started) / REQUESTS)
            figures.append(f"{name} {best * 1e6:,.0f} µs")
        print("CPU per request (best of 5 rounds of 300): " + ", ".join(figures))


if __name__ == "__main__":
    main()
