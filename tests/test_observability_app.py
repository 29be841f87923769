"""What operators watch, on apps built in the test's own process: the counters and timings
of /metrics, the probes' answers, the request log's lines and the request ids. (The same
promises through real servers are in test_observability.py; an app built here is built with
whatever code is under test, the suite's own app before any test runs.)"""

import json
import logging
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CONTENT_TYPE_LATEST
from test_import import conversation
from test_observability import GENERATED_ID, LOG_FIELDS, METRICS_TOKEN, metric_samples, value

from config import Settings
from conftest import PASSWORD, Account
from main import create_app
from server import PYTHON, free_port, server_env

LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def app_with(**settings: object) -> FastAPI:
    return create_app(Settings(_env_file=None, **{"redis_url": "", "migrate_on_start": False, **settings}))


def own_app(client: TestClient, **overrides: object) -> FastAPI:
    """An app of its own on the suite's database (migrated by `client`), accepting its tokens."""
    suite = client.app.state.settings
    return app_with(database_url=suite.database_url, secret_key=suite.secret_key, **overrides)


def missing_database(folder: Path) -> str:
    return f"sqlite:///{folder / 'no' / 'such' / 'folder' / 'chat.db'}"


@pytest.fixture
def metered(client: TestClient) -> Iterator[TestClient]:
    with TestClient(own_app(client, metrics_token=METRICS_TOKEN)) as metered:
        yield metered


@contextmanager
def broken_app(folder: Path) -> Iterator[TestClient]:
    """An app whose database cannot be opened: every query fails unexpectedly. Its request
    log goes to the standard output of the moment (a test's captured output)."""
    app = app_with(
        database_url=missing_database(folder), secret_key="s" * 48, log_format="json", metrics_token=METRICS_TOKEN
    )
    with TestClient(app, raise_server_exceptions=False) as broken:
        yield broken


def counted(before: dict, after: dict, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def request_lines(output: str) -> list[dict]:
    """Every line the request log wrote, each of them one JSON object."""
    lines = [json.loads(line) for line in output.splitlines()]
    assert all(set(line) == LOG_FIELDS for line in lines)
    return lines


# -- /metrics


def test_metrics_answer_only_the_bearer_of_their_token_in_prometheus_format(metered: TestClient) -> None:
    for wrong in ({}, {"Authorization": f"Bearer {METRICS_TOKEN}x"}, {"Authorization": METRICS_TOKEN}):
        refused = metered.get("/metrics", headers=wrong)
        assert (refused.status_code, refused.headers["www-authenticate"]) == (401, "Bearer")
    answered = metered.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert answered.headers["content-type"] == CONTENT_TYPE_LATEST
    assert "# TYPE http_requests_total counter" in answered.text
    # Probes and metrics are for operators: they stay out of the API's schema.
    assert not {"/healthz", "/readyz", "/metrics"} & metered.get("/openapi.json").json()["paths"].keys()


def test_without_a_metrics_token_there_is_no_endpoint_and_nothing_is_timed(
    client: TestClient, metered: TestClient
) -> None:
    before = metric_samples("", metered)
    with TestClient(own_app(client)) as quiet:
        assert quiet.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404
        assert quiet.get("/v1").status_code == 200
    after = metric_samples("", metered)
    assert counted(before, after, "http_requests_total", route="<unmatched>", method="GET", status="404") == 0
    assert counted(before, after, "http_request_duration_seconds_count", route="/v1", method="GET") == 0


def test_requests_are_counted_by_route_template_method_and_status(metered: TestClient, alice: Account) -> None:
    chat_id = metered.post("/v1/chats/", json={"title": "counted"}, headers=alice.headers).json()["id"]
    before = metric_samples("", metered)
    message = f"/v1/chats/{chat_id}/message"
    for index in range(3):
        appended = metered.post(message, json={"role": "user", "content": f"m{index}"}, headers=alice.headers)
        assert appended.status_code == 201
    assert metered.post(message, json={"role": "nobody"}, headers=alice.headers).status_code == 422
    assert metered.get(f"/v1/chats/{chat_id}", headers=alice.headers).status_code == 200
    assert metered.request("BREW", f"/v1/chats/{chat_id}").status_code == 405
    assert metered.get("/no/such/page").status_code == 404
    assert metered.get("/app/").status_code == 200
    after = metric_samples("", metered)

    def requests(route: str, method: str, status: str) -> float:
        return counted(before, after, "http_requests_total", route=route, method=method, status=status)

    template = "/v1/chats/{chat_id}/message"
    assert requests(template, "POST", "201") == 3
    assert requests(template, "POST", "422") == 1
    assert requests("/v1/chats/{chat_id}", "GET", "200") == 1
    # A method a client made up is one series, OTHER, whatever it was.
    assert requests("/v1/chats/{chat_id}", "OTHER", "405") == 1
    assert requests("<unmatched>", "GET", "404") == 1
    assert requests("/app/{path}", "GET", "200") == 1
    assert not any({"BREW", "/no/such/page", "/app/"} & set(dict(labels).values()) for _, labels in after)
    # Answered requests are never counted as failed ones as well.
    assert (
        sum(counted(before, after, name, **dict(labels)) for name, labels in after if ("status", "500") in labels) == 0
    )

    def timed(name: str, **labels: str) -> float:
        return counted(before, after, name, route=template, method="POST", **labels)

    assert timed("http_request_duration_seconds_count") == 4
    assert timed("http_request_duration_seconds_sum") > 0
    # Each request took less than the largest bucket's 30 s: a duration, not a clock reading.
    assert timed("http_request_duration_seconds_bucket", le="30.0") == 4
    # Each read of /metrics is in progress while it reads: the ones before it are done.
    assert value(after, "http_requests_in_progress") == value(before, "http_requests_in_progress") >= 1
    # Transactions by kind: each append writes once and the chat's read reads once, each
    # checking the token in its own statement (no read of the user first); the 422 never
    # reaches the database.
    assert counted(before, after, "db_transaction_seconds_count", kind="write") == 3
    assert counted(before, after, "db_transaction_seconds_count", kind="read") == 1
    # Each under the 30 s bucket: a duration, not a clock reading.
    for kind, count in (("write", 3), ("read", 1)):
        assert counted(before, after, "db_transaction_seconds_bucket", kind=kind, le="30.0") == count
    # Only PostgreSQL's transactions queue for a pooled connection; each wait is a duration
    # (under the 5 s bucket), not a clock reading.
    waits = counted(before, after, "db_pool_wait_seconds_count")
    assert waits == (0 if metered.app.state.database.inline else 4)
    assert counted(before, after, "db_pool_wait_seconds_bucket", le="5.0") == waits


def test_a_request_that_fails_unexpectedly_is_counted_as_a_500(tmp_path: Path) -> None:
    with broken_app(tmp_path) as broken:
        before = metric_samples("", broken)
        failed = broken.post("/v1/auth/token", data={"username": "someone", "password": PASSWORD})
        assert failed.status_code == 500
        after = metric_samples("", broken)
    assert counted(before, after, "http_requests_total", route="/v1/auth/token", method="POST", status="500") == 1
    assert counted(before, after, "http_request_duration_seconds_count", route="/v1/auth/token", method="POST") == 1


def test_refused_logins_and_the_sizes_of_imports_are_measured(metered: TestClient, alice: Account) -> None:
    before = metric_samples("", metered)
    refused = metered.post("/v1/auth/token", data={"username": alice.username, "password": "not the password"})
    assert refused.status_code == 401
    export = json.dumps([conversation("Measured", [("user", "one"), ("assistant", "two")])]).encode()
    json_headers = {**alice.headers, "Content-Type": "application/json"}
    assert metered.post("/v1/chats/import", content=export, headers=json_headers).status_code == 201
    after = metric_samples("", metered)
    assert counted(before, after, "login_failures_total") == 1
    assert counted(before, after, "chat_import_bytes_sum") == len(export)
    assert counted(before, after, "chat_import_messages_sum") == 2


WORKER = (
    "from fastapi.testclient import TestClient; from main import app; [TestClient(app).get('/v1') for _ in range(3)]"
)


def test_with_a_multiprocess_directory_metrics_report_what_every_worker_wrote(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    environment = server_env(
        DATABASE_URL=client.app.state.settings.database_url,
        SECRET_KEY=client.app.state.settings.secret_key,
        MIGRATE_ON_START="false",
        METRICS_TOKEN=METRICS_TOKEN,
        PROMETHEUS_MULTIPROC_DIR=str(folder),
    )
    subprocess.run([PYTHON, "-c", WORKER], env=environment, cwd=tmp_path, check=True, capture_output=True)
    # prometheus-client reads the directory from the environment, as under uvicorn --workers.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    with TestClient(own_app(client, prometheus_multiproc_dir=str(folder), metrics_token=METRICS_TOKEN)) as reader:
        samples = metric_samples("", reader)
    # The other worker's three requests, and none that this process counted in its memory.
    requests = {labels: count for (name, labels), count in samples.items() if name == "http_requests_total"}
    assert requests == {frozenset({"route": "/v1", "method": "GET", "status": "200"}.items()): 3}


# -- /healthz and /readyz


@contextmanager
def silent_server() -> Iterator[str]:
    """A Redis URL whose server takes connections and never answers."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        yield f"redis://127.0.0.1:{listening.getsockname()[1]}/0"


def readiness(app: FastAPI) -> tuple[int, dict]:
    with TestClient(app) as probed:
        assert probed.get("/healthz").json() == {"status": "ok"}
        ready = probed.get("/readyz")
        return ready.status_code, ready.json()


def test_readiness_checks_the_database_and_the_redis_the_service_uses(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    ready = {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}
    assert readiness(own_app(client, redis_url=LOCAL_REDIS)) == (200, ready)
    assert readiness(own_app(client)) == (200, {"status": "ready", "checks": {"database": "ok"}})
    # A healthy app's life, from its first purge of the trash to its end, logs no error.
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_a_purge_that_fails_is_logged_and_tried_again_later(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with broken_app(tmp_path):
        pass
    [failed] = [record for record in caplog.records if record.name == "main"]
    assert failed.getMessage() == "Purging the trash failed; trying again later"
    assert failed.exc_info and "unable to open database file" in str(failed.exc_info[1])


def test_readiness_names_a_redis_that_refuses_and_logs_why(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="service.health")
    status, body = readiness(own_app(client, redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    assert (status, body) == (
        503,
        {"detail": "Not ready: redis unavailable", "checks": {"database": "ok", "redis": "failed (ConnectionError)"}},
    )
    [logged] = [record.getMessage() for record in caplog.records if record.name == "service.health"]
    # The error itself, which may name hosts, goes to the log only.
    assert logged.startswith("Readiness: redis unavailable: ") and "ConnectionError" in logged


def test_readiness_gives_up_on_a_redis_that_never_answers(client: TestClient) -> None:
    with silent_server() as redis_url:
        assert readiness(own_app(client, redis_url=redis_url)) == (
            503,
            {"detail": "Not ready: redis unavailable", "checks": {"database": "ok", "redis": "timed out"}},
        )


def test_readiness_names_every_dependency_that_is_down(tmp_path: Path) -> None:
    down = {"database_url": missing_database(tmp_path), "redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    status, body = readiness(app_with(secret_key="s" * 48, **down))
    assert status == 503
    assert body["detail"] == "Not ready: database, redis unavailable"
    assert body["checks"]["database"] == "failed (OperationalError)"


# -- request ids and the request log


def test_each_request_gets_an_id_a_client_can_choose_within_limits(metered: TestClient) -> None:
    kept = "trace-0f3.A_9"
    assert metered.get("/v1", headers={"X-Request-ID": kept}).headers["x-request-id"] == kept
    for refused in ("has space", "x" * 129, ""):
        replaced = metered.get("/v1", headers={"X-Request-ID": refused}).headers["x-request-id"]
        assert GENERATED_ID.fullmatch(replaced)
    assert GENERATED_ID.fullmatch(metered.get("/v1").headers["x-request-id"])


def test_the_request_log_has_one_line_per_request_tied_to_its_id(
    client: TestClient, alice: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    with TestClient(own_app(client, log_format="json")) as logged:
        started = datetime.now(UTC)
        key = logged.post("/v1/auth/keys", json={"name": "n", "scopes": ["read"]}, headers=alice.headers).json()
        chat = logged.post("/v1/chats/", json={"title": "logged"}, headers=alice.headers).json()["id"]
        capsys.readouterr()
        answers = [
            logged.get("/v1/chats/", headers={**alice.headers, "X-Request-ID": "listed"}),
            logged.get("/v1/chats/", headers={"Authorization": f"Bearer {key['key']}"}),
            # The routes whose own statement checks the token name its user too.
            logged.post(f"/v1/chats/{chat}/message", json={"role": "user", "content": "hi"}, headers=alice.headers),
            logged.get(f"/v1/chats/{chat}", headers=alice.headers),
            logged.get(f"/v1/chats/{chat}", headers={"Authorization": f"Bearer {key['key']}"}),
            logged.get("/v1/chats/", headers={"X-Request-ID": "anonymous"}),
            logged.request("BREW", "/v1", headers={"X-Request-ID": "brewed"}),
            logged.get("/nowhere"),
            logged.get("/app/"),
        ]
        lines = request_lines(capsys.readouterr().out)
    ended = datetime.now(UTC)
    assert [line["request_id"] for line in lines] == [answer.headers["x-request-id"] for answer in answers]
    assert [(line["method"], line["route"], line["status"], line["user_id"]) for line in lines] == [
        ("GET", "/v1/chats/", 200, alice.id),
        ("GET", "/v1/chats/", 200, alice.id),  # with an API key
        ("POST", "/v1/chats/{chat_id}/message", 201, alice.id),
        ("GET", "/v1/chats/{chat_id}", 200, alice.id),
        ("GET", "/v1/chats/{chat_id}", 200, alice.id),  # with an API key
        ("GET", "/v1/chats/", 401, None),
        ("OTHER", "/v1", 405, None),
        ("GET", "<unmatched>", 404, None),
        ("GET", "/app/{path}", 200, None),
    ]
    for line in lines:
        # When the request arrived, in UTC to the millisecond; how long it took, in ms.
        assert line["time"].endswith("+00:00") and len(line["time"]) == len("2026-01-01T00:00:00.000+00:00")
        assert started - timedelta(milliseconds=1) <= datetime.fromisoformat(line["time"]) <= ended
        assert isinstance(line["duration_ms"], float)
        assert 0 <= line["duration_ms"] < 30_000 and round(line["duration_ms"], 2) == line["duration_ms"]
    assert any(line["duration_ms"] > 0 for line in lines)


def test_without_log_format_json_the_request_log_is_silent(client: TestClient, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    with TestClient(own_app(client, log_format="text")) as quiet:
        assert quiet.get("/v1").status_code == 200
    assert capsys.readouterr().out == ""


def test_an_unexpected_error_is_answered_and_logged_with_its_request_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with broken_app(tmp_path) as broken:
        failed = broken.post("/v1/auth/token", data={"username": "someone", "password": PASSWORD})
    assert failed.status_code == 500
    assert failed.json() == {"detail": "Internal server error"}
    assert failed.headers["content-type"] == "application/json"
    assert (failed.headers["cache-control"], failed.headers["x-content-type-options"]) == ("no-store", "nosniff")
    [line] = request_lines(capsys.readouterr().out)
    assert (line["request_id"], line["route"], line["status"]) == (
        failed.headers["x-request-id"],
        "/v1/auth/token",
        500,
    )
