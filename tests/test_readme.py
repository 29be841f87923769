"""The README's walkthrough, run as a newcomer runs it: its shell blocks, top to bottom,
with bash against `python main.py` on a fresh database."""

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx

from config import Settings
from conftest import SETTINGS, app
from server import PYTHON, ROOT, free_port, running, server_env

README = ROOT / "README.md"
# A shell block belongs to the walkthrough when this comment stands on the line before it.
MARKER = "<!-- walkthrough -->"
BLOCK = re.compile(re.escape(MARKER) + r"\n```sh\n(.*?)```", re.DOTALL)
README_URL = "http://localhost:8000"


def walkthrough() -> str:
    blocks = BLOCK.findall(README.read_text())
    assert blocks, f"no ```sh block after {MARKER} in the README"
    return "\n".join(blocks)


def json_lines(output: str) -> list[Any]:
    """What the walkthrough printed that is JSON, one answer a line, in order."""
    answers = []
    for line in output.splitlines():
        try:
            answers.append(json.loads(line))
        except ValueError:
            continue
    return answers


def search_hits(answers: list[Any]) -> list[list[dict]]:
    return [
        a["data"] for a in answers if isinstance(a, dict) and "data" in a and all("snippet" in h for h in a["data"])
    ]


def test_the_walkthrough_runs_as_written_top_to_bottom(fresh_database_url: str, tmp_path: Path) -> None:
    script = walkthrough()
    assert README_URL in script
    port = free_port()
    env = server_env(
        HOST="127.0.0.1",
        PORT=str(port),
        RELOAD="false",
        DATABASE_URL=fresh_database_url,
        SECRET_KEY=SETTINGS.secret_key,
    )
    # The walkthrough's `python` is this interpreter; curl reads no one's ~/.curlrc and
    # uses no proxy for the local server.
    shell_env = {k: v for k, v in env.items() if not k.lower().endswith("_proxy")}
    shell_env |= {"PATH": f"{Path(PYTHON).parent}{os.pathsep}{env['PATH']}", "HOME": str(tmp_path)}
    workdir = tmp_path / "walkthrough"
    workdir.mkdir()

    with running([PYTHON, str(ROOT / "main.py")], env, tmp_path, port) as base_url:
        run = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + script.replace(README_URL, base_url)],
            cwd=workdir,
            env=shell_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, f"stderr:\n{run.stderr}\nstdout:\n{run.stdout[-3000:]}"
        assert run.stderr == ""
        # The account is gone with its last command: its password logs in no more.
        login = httpx.post(f"{base_url}/v1/auth/token", data={"username": "alice", "password": "a better passphrase"})
        assert login.status_code == 401

    answers = json_lines(run.stdout)
    assert answers[0] == {"message": "Welcome to the Chat History API. Documentation: /docs"}

    # The retried bulk upload answers exactly what the first call did, and created nothing more.
    batch = json.loads((workdir / "batch.json").read_text())
    assert [m["content"] for m in batch] == ["Plan 2 days in 京都", "Day 1: Fushimi Inari. Day 2: Arashiyama."]
    assert batch in answers
    pages = [a for a in answers if isinstance(a, dict) and "has_more" in a and a["data"] and "content" in a["data"][0]]
    first, second, newest, path = pages
    assert (len(first["data"]), first["has_more"]) == (2, True)
    assert ([m["id"] for m in second["data"]], second["has_more"]) == ([m["id"] for m in batch], False)
    assert [m["id"] for m in newest["data"]] == [batch[1]["id"]]
    # After the branch steps the chat shows the first version again: its last two messages.
    assert [m["id"] for m in path["data"]][-1] == batch[0]["id"]
    assert len(path["data"][-1]["sibling_ids"]) == 2

    # Each search finds the walkthrough's own message, its words marked.
    phrase, words, cjk = search_hits(answers)
    assert [(h["chat_title"], h["role"], h["snippet"]) for h in phrase] == [
        ("Trip to Kyoto", "assistant", "The <mark>cherry</mark> <mark>blossoms</mark> along the Kamo river.")
    ]
    assert [h["message_id"] for h in words] == [batch[1]["id"]]
    assert [h["message_id"] for h in cjk] == [batch[0]["id"]]

    transcript = (workdir / "kyoto.md").read_text()
    assert transcript.startswith("# Trip to Kyoto\n")
    assert "## Assistant\n\nThe cherry blossoms along the Kamo river.\n" in transcript
    exported = json.loads((workdir / "chats.json").read_text())
    assert [len(chat["messages"]) for chat in exported] == [4]

    # The import made one chat of two messages; the multipart retry with its key replayed
    # the answer (and made no second chat: deleting every chat at the end deletes one).
    imported = json.loads((workdir / "imported.json").read_text())
    assert (imported["messages"], [c["title"] for c in imported["chats"]]) == (2, ["Ramen in Tokyo"])
    assert answers.count(imported) == 2  # as printed, and as replayed

    edited = next(a for a in answers if isinstance(a, dict) and a.get("metadata") == {"edited": "yes"})
    assert (edited["id"], edited["content"]) == (batch[0]["id"], "Plan 3 days in 京都")

    # After the password change the new token works: me, logout, logout_all, and then,
    # logged in again, the deletions all answer.
    me, logout, logout_all, deleted_chats, deleted_account = answers[-5:]
    assert (me["username"], me["email"]) == ("alice", "alice@example.org")
    assert [logout, logout_all, deleted_chats, deleted_account] == [
        {"ok": True},
        {"ok": True},
        {"deleted": 1},
        {"ok": True},
    ]


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def test_the_readme_stays_short() -> None:
    assert len(README.read_text().splitlines()) < 350


def test_the_api_table_lists_every_endpoint() -> None:
    documented = set()
    for row in section("API").splitlines():
        if row.startswith("| `"):
            first_cell = row.split("|")[1]
            documented |= {
                (method, path.split("?")[0]) for method, path in re.findall(r"`([A-Z]+) (/[^`]*)`", first_cell)
            }
    # The schema lists every operation the app serves (the docs pages are not operations);
    # the probes and /metrics stay out of it, for monitors rather than clients.
    operations = {(method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item}
    probes = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}
    assert documented == operations | probes


def test_the_settings_table_lists_every_setting() -> None:
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", section("Settings")))
    assert set(Settings.model_fields) <= {name.lower() for name in documented}


def test_the_design_map_names_every_module() -> None:
    design_map = section("Design map")
    modules = [p.relative_to(ROOT).as_posix() for p in [*ROOT.glob("*.py"), *(ROOT / "service").glob("*.py")]]
    missing = [m for m in modules if f"`{m}`" not in design_map and m != "service/__init__.py"]
    assert missing == []
