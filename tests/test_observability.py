"""What operators watch: /healthz and /readyz for the load balancer, /metrics for
Prometheus, one JSON log line per request, and the request id that ties them together."""

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, make_url, text
from test_import import conversation

from conftest import DATABASE_URL, PASSWORD, SERVER_URL, SETTINGS, WORK_DIR, Account, unique_name
from server import PYTHON, ROOT, free_port, main_py, running, server_env, serving_pid

METRICS_TOKEN = "metrics-" + uuid.uuid4().hex
GENERATED_ID = re.compile(r"[0-9a-f]{32}")
LOG_FIELDS = {"time", "request_id", "method", "route", "status", "duration_ms", "user_id"}


def uvicorn(port: int, *extra: str) -> list[str]:
    return [PYTHON, "-m", "uvicorn", "main:app", "--port", str(port), "--no-access-log", *extra]


@contextmanager
def suite_server(*extra: str, **env: str) -> Iterator[tuple[str, Path]]:
    """The app on the suite's (already migrated) database: its URL and its output."""
    port = free_port()
    environment = server_env(DATABASE_URL=DATABASE_URL, SECRET_KEY=SETTINGS.secret_key, MIGRATE_ON_START="false", **env)
    with running(uvicorn(port, *extra), environment, WORK_DIR, port) as base_url:
        yield base_url, WORK_DIR / f"server-{port}.log"


@pytest.fixture(scope="module")
def observed(client: TestClient) -> Iterator[tuple[str, Path]]:  # client: the suite's database is migrated
    with suite_server(METRICS_TOKEN=METRICS_TOKEN, LOG_FORMAT="json", RATE_LIMIT_LOGIN="3/minute") as server:
        yield server


def metric_samples(base_url: str, http: httpx.Client | None = None) -> dict[tuple[str, frozenset], float]:
    """{(sample name, its labels): value} from /metrics."""
    get = (http or httpx).get
    response = get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def log_lines(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


# -- health and readiness


def test_health_and_readiness_answer_without_a_token(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    # The suite runs without Redis: only the database is checked.
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}
    # Probes are for balancers, not API clients: they stay out of the API's schema.
    assert not {"/healthz", "/readyz", "/metrics"} & client.get("/openapi.json").json()["paths"].keys()


def test_probes_are_never_rate_limited(observed: tuple[str, Path]) -> None:
    base_url, _ = observed
    with httpx.Client(base_url=base_url) as http:
        assert {http.get(path).status_code for path in ("/healthz", "/readyz") for _ in range(30)} == {200}


@contextmanager
def connections_refused(database_url: str) -> Iterator[None]:
    """The database stops taking connections and ends the ones it has, as on a shutdown."""
    name = make_url(database_url).database
    admin = create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
            )
        yield
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
        admin.dispose()


def wait_for_status(url: str, wanted: int) -> httpx.Response:
    deadline = time.monotonic() + 15
    while True:
        response = httpx.get(url, timeout=10)
        if response.status_code == wanted or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


@pytest.mark.skipif(not SERVER_URL, reason="SQLite runs inside the process: there is no database server to stop")
def test_readiness_is_503_while_the_database_is_down_and_200_once_it_is_back(
    fresh_database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = server_env(DATABASE_URL=fresh_database_url, SECRET_KEY="s" * 48)
    with running(uvicorn(port), env, tmp_path, port) as base_url:
        assert httpx.get(f"{base_url}/readyz").status_code == 200
        with connections_refused(fresh_database_url):
            down = httpx.get(f"{base_url}/readyz", timeout=10)
            assert down.status_code == 503
            assert down.json()["detail"] == "Not ready: database unavailable"
            assert down.json()["checks"]["database"].startswith("failed")
            # The process itself is fine: a balancer would wait for it, not restart it.
            assert httpx.get(f"{base_url}/healthz").status_code == 200
        back = wait_for_status(f"{base_url}/readyz", 200)
        assert back.json() == {"status": "ready", "checks": {"database": "ok"}}


@contextmanager
def redis_server(port: int, folder: Path) -> Iterator[subprocess.Popen]:
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() != b"PONG":
            assert process.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_readiness_is_503_naming_redis_while_redis_is_down(client: TestClient, tmp_path: Path) -> None:
    redis_port = free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    with redis_server(redis_port, tmp_path), suite_server(REDIS_URL=redis_url) as (base_url, _):
        assert httpx.get(f"{base_url}/readyz").json() == {
            "status": "ready",
            "checks": {"database": "ok", "redis": "ok"},
        }
    with suite_server(REDIS_URL=redis_url) as (base_url, _):
        down = httpx.get(f"{base_url}/readyz", timeout=10)
        assert down.status_code == 503
        assert down.json()["detail"] == "Not ready: redis unavailable"
        assert down.json()["checks"]["database"] == "ok"
        assert down.json()["checks"]["redis"] != "ok"
        with redis_server(redis_port, tmp_path):
            assert wait_for_status(f"{base_url}/readyz", 200).json()["checks"] == {"database": "ok", "redis": "ok"}


# -- metrics


def test_metrics_are_off_unless_a_token_is_set(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 404


def test_metrics_need_the_token(observed: tuple[str, Path]) -> None:
    base_url, _ = observed
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": METRICS_TOKEN}):
        refused = httpx.get(f"{base_url}/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.json()["detail"] == "Send the METRICS_TOKEN as a Bearer token"


def test_metrics_count_requests_by_route_template_and_time_the_work(observed: tuple[str, Path], alice: Account) -> None:
    base_url, _ = observed
    before = metric_samples(base_url)
    route = "/v1/chats/{chat_id}/message"
    with httpx.Client(base_url=base_url, headers=alice.headers) as http:
        chat_id = http.post("/v1/chats/", json={"title": "counted"}).json()["id"]
        for index in range(3):
            assert (
                http.post(f"/v1/chats/{chat_id}/message", json={"role": "user", "content": f"m{index}"}).status_code
                == 201
            )
        assert http.post(f"/v1/chats/{chat_id}/message", json={"role": "nobody"}).status_code == 422
        assert http.get(f"/v1/chats/{chat_id}").status_code == 200
        assert http.get(f"/no/such/{uuid.uuid4().hex}").status_code == 404
    after = metric_samples(base_url)

    def added(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert added("http_requests_total", route=route, method="POST", status="201") == 3
    assert added("http_requests_total", route=route, method="POST", status="422") == 1
    assert added("http_requests_total", route="/v1/chats/{chat_id}", method="GET", status="200") == 1
    # Paths that match no route share one series, whatever they were.
    assert added("http_requests_total", route="<unmatched>", method="GET", status="404") == 1
    assert not any("/no/such" in str(labels) for _, labels in after)
    assert added("http_request_duration_seconds_count", route=route, method="POST") == 4
    assert added("http_request_duration_seconds_bucket", route=route, method="POST", le="+Inf") == 4
    assert added("http_request_duration_seconds_sum", route=route, method="POST") > 0
    # The only request in progress while /metrics was read is that request.
    assert value(after, "http_requests_in_progress") == 1
    # The new chat and each append are a write transaction each; the chat's creator is read
    # first, the chat read is one read, and the appends and the read check the token in
    # their own statement (the 422 never reaches the database).
    assert added("db_transaction_seconds_count", kind="write") >= 4
    assert added("db_transaction_seconds_count", kind="read") >= 2
    assert added("db_transaction_seconds_sum", kind="write") > 0
    # Only PostgreSQL's transactions queue for a pooled connection; SQLite's run inline.
    if SERVER_URL:
        assert added("db_pool_wait_seconds_count") >= 6
    else:
        assert added("db_pool_wait_seconds_count") == 0


def test_metrics_count_login_failures_rate_limit_refusals_and_import_sizes(
    observed: tuple[str, Path], alice: Account
) -> None:
    base_url, _ = observed
    before = metric_samples(base_url)
    username = unique_name()
    # RATE_LIMIT_LOGIN is 3/minute: three wrong passwords, then a refusal. From an address
    # of its own, so that the other tests' logins do not count.
    transport = httpx.HTTPTransport(local_address="127.0.0.7")
    with httpx.Client(base_url=base_url, transport=transport) as http:
        statuses = [
            http.post("/v1/auth/token", data={"username": username, "password": "x" * 8}).status_code for _ in range(4)
        ]
    assert statuses == [401, 401, 401, 429]
    export = json.dumps([conversation("Imported", [("user", "one"), ("assistant", "two"), ("user", "three")])]).encode()
    imported = httpx.post(
        f"{base_url}/v1/chats/import", content=export, headers={**alice.headers, "Content-Type": "application/json"}
    )
    assert imported.status_code == 201
    after = metric_samples(base_url)

    def added(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert added("login_failures_total") == 3
    assert added("rate_limit_refusals_total", limit="login") == 1
    assert added("chat_import_bytes_count") == 1
    assert added("chat_import_bytes_sum") == len(export)
    assert added("chat_import_messages_count") == 1
    assert added("chat_import_messages_sum") == imported.json()["messages"] == 3


def test_with_several_workers_any_worker_reports_them_all(client: TestClient, tmp_path: Path) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    port = free_port()
    env = server_env(
        DATABASE_URL=DATABASE_URL,
        SECRET_KEY=SETTINGS.secret_key,
        MIGRATE_ON_START="false",
        METRICS_TOKEN=METRICS_TOKEN,
        PROMETHEUS_MULTIPROC_DIR=str(folder),
    )
    with running(uvicorn(port, "--workers", "2"), env, tmp_path, port) as base_url, ExitStack() as stack:
        # A kept-alive connection stays with the worker that accepted it: open connections
        # until each worker holds one, asking for /healthz on each.
        by_worker: dict[int, httpx.Client] = {}
        asked = 0
        for _ in range(200):
            http = stack.enter_context(httpx.Client(base_url=base_url))
            by_worker.setdefault(serving_pid(port, http.get("/healthz")), http)
            asked += 1
            if len(by_worker) == 2:
                break
        assert len(by_worker) == 2, "one worker accepted every connection"
        for http in by_worker.values():
            samples = metric_samples(base_url, http)
            assert value(samples, "http_requests_total", route="/healthz", method="GET", status="200") == asked


# -- request ids and the request log


def test_a_well_formed_request_id_is_echoed_and_any_other_replaced(client: TestClient) -> None:
    for kept in ("abc", "trace-0f3.A_9", "x" * 128):
        assert client.get("/healthz", headers={"X-Request-ID": kept}).headers["x-request-id"] == kept
    for replaced in ("", "has space", "a/b", "x" * 129, "é".encode()):
        answered = client.get("/healthz", headers={"X-Request-ID": replaced}).headers["x-request-id"]
        assert GENERATED_ID.fullmatch(answered)
    generated = {client.get("/healthz").headers["x-request-id"] for _ in range(20)}
    assert len(generated) == 20 and all(GENERATED_ID.fullmatch(one) for one in generated)


def test_every_response_carries_its_request_id(client: TestClient, alice: Account) -> None:
    answers = [
        client.get("/v1/chats/", headers={"X-Request-ID": "no-token"}),  # 401
        client.get("/v1/chats/999999999", headers={**alice.headers, "X-Request-ID": "missing"}),  # 404
        client.post("/v1/chats/", json={}, headers={**alice.headers, "X-Request-ID": "invalid"}),  # 422
        client.post(  # 413 from the body-size limit, before any route
            "/v1/chats/", content=b"x" * (3 * 1024 * 1024), headers={**alice.headers, "X-Request-ID": "too-big"}
        ),
        client.get("/app/", headers={"X-Request-ID": "static"}),  # 200 from the static files
    ]
    assert [(a.status_code, a.headers["x-request-id"]) for a in answers] == [
        (401, "no-token"),
        (404, "missing"),
        (422, "invalid"),
        (413, "too-big"),
        (200, "static"),
    ]


def test_one_json_line_per_request_with_the_user_and_no_secrets(observed: tuple[str, Path], alice: Account) -> None:
    base_url, log = observed
    content = f"private words {uuid.uuid4().hex}"
    with httpx.Client(base_url=base_url) as http:
        login = http.post("/v1/auth/token", data={"username": alice.username, "password": PASSWORD})
        token = login.json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        chat_id = http.post("/v1/chats/", json={"title": "logged"}, headers=headers).json()["id"]
        appended = http.post(
            f"/v1/chats/message?chat_id={chat_id}",
            json={"role": "user", "content": content},
            headers={**headers, "X-Request-ID": (request_id := f"req-{uuid.uuid4().hex}")},
        )
        assert appended.status_code == 201
        refused = http.get(f"/v1/chats/{chat_id}", headers={"Authorization": "Bearer not-a-token"})
        assert refused.status_code == 401
    time.sleep(0.2)
    lines = log_lines(log)
    assert all(set(line) == LOG_FIELDS for line in lines)
    by_id = {line["request_id"]: line for line in lines}
    line = by_id[request_id]
    assert line["method"] == "POST"
    assert line["route"] == "/v1/chats/message"
    assert line["status"] == 201
    assert line["user_id"] == alice.id
    assert isinstance(line["duration_ms"], float) and 0 <= line["duration_ms"] < 30_000
    assert abs(datetime.fromisoformat(line["time"]).timestamp() - time.time()) < 60
    login_line = by_id[login.headers["x-request-id"]]
    assert (login_line["route"], login_line["status"], login_line["user_id"]) == ("/v1/auth/token", 200, None)
    refused_line = by_id[refused.headers["x-request-id"]]
    assert (refused_line["route"], refused_line["status"], refused_line["user_id"]) == (
        "/v1/chats/{chat_id}",
        401,
        None,
    )
    # The whole output, not only the request lines: no token, password or content.
    output = log.read_text()
    for secret in (token, PASSWORD, content, "not-a-token", login.json()["refresh_token"]):
        assert secret not in output


def test_python_main_py_with_log_format_json_writes_only_the_json_lines(client: TestClient) -> None:
    environment = {"DATABASE_URL": DATABASE_URL, "SECRET_KEY": SETTINGS.secret_key, "MIGRATE_ON_START": "false"}
    with main_py(WORK_DIR, LOG_FORMAT="json", **environment) as (base_url, log):
        secret = f"secret-{uuid.uuid4().hex}"
        answer = httpx.get(f"{base_url}/v1/chats/search?q={secret}", headers={"Authorization": f"Bearer {secret}"})
        assert answer.status_code == 401
        time.sleep(0.2)
    output = log.read_text()
    assert secret not in output
    assert answer.headers["x-request-id"] in {line["request_id"] for line in log_lines(log)}
    assert [line for line in output.splitlines() if "/v1/chats/search" in line and not line.startswith("{")] == []


def test_without_log_format_json_no_request_lines_are_written(client: TestClient) -> None:
    with suite_server() as (base_url, log):
        request_id = f"quiet-{uuid.uuid4().hex}"
        assert httpx.get(f"{base_url}/healthz", headers={"X-Request-ID": request_id}).status_code == 200
        time.sleep(0.2)
        assert request_id not in log.read_text()


def test_a_first_start_logs_each_migration_it_runs(fresh_database_url: str, tmp_path: Path) -> None:
    migrations = sorted(path.name for path in (ROOT / "alembic" / "versions").glob("0*.py"))
    with main_py(tmp_path, DATABASE_URL=fresh_database_url, SECRET_KEY="s" * 48) as (base_url, log):
        assert httpx.get(f"{base_url}/readyz").status_code == 200
    upgrades = [line for line in log.read_text().splitlines() if "Running upgrade" in line]
    # alembic's own lines, in the format alembic.ini sets up, one per migration in order.
    assert [line.partition("-> ")[2][:4] for line in upgrades] == [name[:4] for name in migrations]
    assert all(line.startswith("INFO  [alembic.runtime.migration] Running upgrade") for line in upgrades)
