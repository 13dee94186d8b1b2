"""API keys on a real server, and what errors and logs must never show.

With keys set, every /v1 route refuses a missing, empty, wrong, differently cased or padded key,
before it looks at the body; the admin route refuses a user key. No key reaches the log, and no
answer shows a stack trace or a file path, not even a 500. (tests/service/test_auth.py holds the
same rules through TestClient, with the open health routes and the admin switch.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from tests.reliability.conftest import ADMIN_KEY, USER_KEY, assert_no_leak, record_figure
from tests.reliability.raw_http import RawResponse, exchange, request
from tests.service.server import ServerProcess

pytestmark = pytest.mark.slow
WRONG_KEY = "wrong-key-0123456789abcdef"
KEYS = (USER_KEY, ADMIN_KEY, WRONG_KEY)
# Invalid on purpose: a refused caller must get 401, never learn how its body would be judged.
BAD_BODY = b'{"sentences": 5}'
USER_ROUTES = (
    ("POST", "/v1/classify"),
    ("POST", "/v1/classify/document"),
    ("GET", "/v1/model"),
)
ADMIN_ROUTE = ("POST", "/v1/admin/reload")
Headers = tuple[tuple[str, str], ...]
BAD_KEYS: dict[str, Headers] = {
    "missing": (),
    "empty-x-api-key": (("X-API-Key", ""),),
    "empty-bearer": (("Authorization", "Bearer "),),
    "bearer-without-token": (("Authorization", "Bearer"),),
    "wrong": (("Authorization", f"Bearer {WRONG_KEY}"),),
    "upper-cased": (("X-API-Key", USER_KEY.upper()),),
    "first-letter-cased": (("Authorization", f"Bearer {USER_KEY.capitalize()}"),),
    "truncated": (("X-API-Key", USER_KEY[:-1]),),
    "one-character-more": (("X-API-Key", USER_KEY + "f"),),
    "two-spaces-after-bearer": (("Authorization", f"Bearer  {USER_KEY}"),),
    "tab-after-bearer": (("Authorization", f"Bearer\t{USER_KEY}"),),
    "no-break-space-padded": (("X-API-Key", f"\xa0{USER_KEY}\xa0"),),
    "space-inside": (("X-API-Key", f"{USER_KEY[:8]} {USER_KEY[8:]}"),),
    "key-twice": (("X-API-Key", f"{USER_KEY},{USER_KEY}"),),
    "basic-scheme": (("Authorization", f"Basic {USER_KEY}"),),
    "in-a-cookie": (("Cookie", f"api_key={USER_KEY}"),),
    "in-another-header": (("X-Api-Token", USER_KEY),),
    "wrong-bearer-right-header-ignored": (
        ("Authorization", f"Bearer {WRONG_KEY}"),
        ("X-API-Key", USER_KEY),
    ),
}
# Spaces and tabs around a header value are not part of it (RFC 9110 §5.5), whichever HTTP
# parser serves; any other padding, or whitespace inside the value, is refused (BAD_KEYS).
GOOD_KEYS: dict[str, Headers] = {
    "bearer": (("Authorization", f"Bearer {USER_KEY}"),),
    "bearer-lower-case-scheme": (("authorization", f"bearer {USER_KEY}"),),
    "x-api-key": (("X-API-Key", USER_KEY),),
    "x-api-key-after-optional-whitespace": (("X-API-Key", f" \t{USER_KEY}"),),
    "x-api-key-space-padded": (("X-API-Key", f" {USER_KEY} "),),
    "bearer-tab-padded": (("Authorization", f"Bearer {USER_KEY}\t"),),
}


@pytest.fixture(scope="module")
def keyed_server(
    small_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("keys") / "server.log"
    with ServerProcess(
        log_path=log,
        model_dir=small_model_dir,
        api_keys=USER_KEY,
        admin_keys=ADMIN_KEY,
        log_level="debug",
    ) as server:
        yield server


def send(
    server: ServerProcess, route: tuple[str, str], headers: Headers, body: bytes
) -> RawResponse:
    method, path = route
    return exchange(
        server.port,
        (request(method, path, body if method == "POST" else b"", headers=headers),),
    )


def test_every_v1_route_refuses_every_bad_key(keyed_server: ServerProcess) -> None:
    sent = 0
    cases = [
        (name, route, headers)
        for name, headers in BAD_KEYS.items()
        for route in (*USER_ROUTES, ADMIN_ROUTE)
    ]
    cases += [("user-key-on-admin", ADMIN_ROUTE, (("X-API-Key", USER_KEY),))]
    cases += [
        ("admin-key-on-user-route", route, (("X-API-Key", ADMIN_KEY),)) for route in USER_ROUTES
    ]
    for name, route, headers in cases:
        answer = send(keyed_server, route, headers, BAD_BODY)
        sent += 1
        assert answer.status == 401, (name, route, answer)
        assert answer.content_type == "application/problem+json"
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert_no_leak(answer.body.decode(), *KEYS)
    for name, headers in GOOD_KEYS.items():
        for route in USER_ROUTES:
            answer = send(keyed_server, route, headers, BAD_BODY)
            sent += 1
            expected = 200 if route[0] == "GET" else 422  # let in: now the body is judged
            assert answer.status == expected, (name, route, answer)
    admin = send(keyed_server, ADMIN_ROUTE, (("X-API-Key", ADMIN_KEY),), b"{}")
    assert admin.status == 200, admin
    assert keyed_server.process is not None
    log = keyed_server.log()
    for key in (*KEYS, USER_KEY.upper(), USER_KEY.capitalize(), USER_KEY[:-1]):
        assert key not in log, "a key reached the log"
    assert_no_leak(json.dumps([line for line in log.splitlines() if "sitrep.access" in line]))
    record_figure(
        "keys",
        f"{len(BAD_KEYS)} kinds of bad key on {len(USER_ROUTES) + 1} routes, plus crossed "
        f"user/admin keys: {len(cases)} refusals; {sent + 1} requests, 0 failures; "
        "no key in the debug log",
    )


class FailingClassifier:
    """Fails the way real code can, with a path in its message."""

    version = "broken"

    def probabilities(self, texts: list[str]) -> np.ndarray:
        raise OSError(2, "No such file or directory", "/srv/sitrep/secret/model.joblib")


def test_an_unexpected_error_is_a_bare_500(
    small_model_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A bug answers 500 in problem+json with nothing of the internals, but with the
    X-Request-ID the caller can quote; the logged traceback carries the same id."""
    with TestClient(
        create_app(Settings(model_dir=small_model_dir)), raise_server_exceptions=False
    ) as client:
        client.app.state.store.current = FailingClassifier()  # type: ignore[attr-defined]
        capfd.readouterr()
        response = client.post(
            "/v1/classify",
            json={"sentences": ["Talks resumed."]},
            headers={"X-Request-ID": "bug-42"},
        )
        assert client.get("/healthz").status_code == 200  # and the service carries on
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["X-Request-ID"] == "bug-42"
    assert response.json()["detail"] == (
        "the server failed to answer; the error was logged under this X-Request-ID"
    )
    logged = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line[:1] == "{"]
    (error,) = [entry for entry in logged if entry["message"] == "unhandled error"]
    assert error["request_id"] == "bug-42"
    assert "Traceback" in error["error"]
    assert_no_leak(response.text, "/srv/sitrep", "OSError", "No such file")
