"""The service as users run it: a real process on a socket, signals, workers, logs."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from service.artifact import list_versions
from tests.reliability.raw_http import exchange
from tests.service.server import ServerProcess
from tests.service.test_lifecycle import second_version

pytestmark = pytest.mark.slow
ADMIN_KEY = "admin-key-0123456789abcdef"
SENTENCE = "a-private-sentence: Two soldiers were killed by a mine near the bridge."


def test_serves_logs_as_json_and_never_logs_sentences(
    small_model_dir: Path, tmp_path: Path
) -> None:
    with ServerProcess(log_path=tmp_path / "log", model_dir=small_model_dir) as server:
        response = httpx.post(
            f"{server.url}/v1/classify",
            json={"sentences": [SENTENCE]},
            headers={"X-Request-ID": "trace-42"},
        )
        assert response.status_code == 200
        assert response.headers["x-request-id"] == "trace-42"
        time.sleep(0.2)
        log = server.log()
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    (request,) = [entry for entry in entries if entry.get("request_id") == "trace-42"]
    assert request["route"] == "/v1/classify"
    assert request["status"] == 200
    assert request["sentences"] == 1
    assert request["model_version"] == list_versions(small_model_dir)[0]
    assert request["latency_ms"] > 0
    assert "a-private-sentence" not in log


def test_sigterm_lets_requests_in_flight_finish(small_model_dir: Path, tmp_path: Path) -> None:
    with ServerProcess(log_path=tmp_path / "log", model_dir=small_model_dir) as server:
        answers: list[int] = []
        big = {"sentences": [f"{SENTENCE} Report {i}." for i in range(1_000)]}

        def call() -> None:
            answers.append(
                httpx.post(f"{server.url}/v1/classify", json=big, timeout=60).status_code
            )

        callers = [threading.Thread(target=call) for _ in range(4)]
        for caller in callers:
            caller.start()
        time.sleep(0.3)
        server.signal(signal.SIGTERM)
        for caller in callers:
            caller.join(timeout=60)
        assert server.wait(timeout=30) == 0
    assert answers == [200, 200, 200, 200]


def test_sighup_reloads_the_newest_model(model_dir_copy: Path, tmp_path: Path) -> None:
    with ServerProcess(log_path=tmp_path / "log", model_dir=model_dir_copy) as server:
        newer = second_version(model_dir_copy)
        server.signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if httpx.get(f"{server.url}/v1/model").json()["version"] == newer:
                break
            time.sleep(0.1)
        assert httpx.get(f"{server.url}/v1/model").json()["version"] == newer


def test_workers_follow_a_reload_to_the_same_version(model_dir_copy: Path, tmp_path: Path) -> None:
    with ServerProcess(
        log_path=tmp_path / "log", model_dir=model_dir_copy, workers=2, admin_keys=ADMIN_KEY
    ) as server:
        newer = second_version(model_dir_copy)
        reload = httpx.post(f"{server.url}/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY})
        assert reload.status_code == 200
        time.sleep(3)  # workers poll the shared version every second
        seen = {
            httpx.post(
                f"{server.url}/v1/classify",
                json={"sentences": ["Talks resumed."]},
                headers={"Connection": "close"},
            ).json()["model"]["version"]
            for _ in range(40)
        }
        assert seen == {newer}
        metrics = httpx.get(f"{server.url}/metrics").text
        assert f'version="{newer}"' in metrics


def test_a_missing_model_directory_keeps_the_process_up(tmp_path: Path) -> None:
    with ServerProcess(
        log_path=tmp_path / "log", model_dir=tmp_path / "nothing", wait_for="/healthz"
    ) as server:
        time.sleep(0.5)
        assert httpx.get(f"{server.url}/readyz").status_code == 503
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert "no model loaded" in server.log()


def test_request_size_and_time_limits_follow_the_settings(
    small_model_dir: Path, tmp_path: Path
) -> None:
    """Operators can tighten (or loosen) the head and body guards, in every worker."""
    with ServerProcess(
        log_path=tmp_path / "log",
        model_dir=small_model_dir,
        workers=2,
        head_max_bytes=2_048,
        head_timeout_seconds=1,
        body_grace_seconds=1,
        body_min_bytes_per_second=1_024,
    ) as server:
        port = server.port
        large = exchange(port, [b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"a" * 3_000 + b"\r\n\r\n"])
        assert large.status == 431
        assert b"2048 bytes" in large.body
        assert httpx.get(f"{server.url}/healthz", headers={"X-Pad": "a" * 1_500}).status_code == 200
        slow_head = exchange(port, [b"GET /healthz HTTP/1.1\r\nHost: x\r\n"], timeout=20)
        assert slow_head.status == 408
        assert b"within 1 s" in slow_head.body
        body_head = (
            b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 4000\r\n\r\n"
        )
        slow_body = exchange(port, [body_head + b'{"sentences": ['], timeout=20)
        assert slow_body.status == 408
        assert b"1024 bytes a second" in slow_body.body
