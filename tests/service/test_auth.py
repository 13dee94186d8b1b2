"""Optional API keys: /v1 needs a user key, admin needs an admin key, health stays open."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.service.conftest import ClientFactory

USER_KEY = "user-key-0123456789abcdef"
ADMIN_KEY = "admin-key-0123456789abcdef"
BODY = {"sentences": ["Talks resumed in Doha."]}


@pytest.fixture
def secured(make_client: ClientFactory) -> TestClient:
    return make_client(api_keys=[USER_KEY], admin_keys=[ADMIN_KEY])


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"X-API-Key": ""},
        {"Authorization": "Bearer wrong-key-0123456789abcdef"},
        {"Authorization": f"Bearer {USER_KEY.upper()}"},
        {"X-API-Key": USER_KEY[:-1]},
        {"Authorization": f"Bearer  {USER_KEY}"},
        {"Authorization": f"Basic {USER_KEY}"},
        {"X-API-Key": ADMIN_KEY + "x"},
    ],
    ids=[
        "missing",
        "empty-bearer",
        "empty-header",
        "wrong",
        "cased",
        "truncated",
        "padded",
        "basic-scheme",
        "admin-plus",
    ],
)
def test_v1_routes_refuse_bad_keys(secured: TestClient, headers: dict[str, str]) -> None:
    for method, path, json in (
        ("POST", "/v1/classify", BODY),
        ("POST", "/v1/classify/document", {"text": "Talks resumed."}),
        ("GET", "/v1/model", None),
    ):
        response = secured.request(method, path, json=json, headers=headers)
        assert response.status_code == 401, (path, headers)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert USER_KEY not in response.text


def test_v1_routes_accept_either_header(secured: TestClient) -> None:
    assert (
        secured.post(
            "/v1/classify", json=BODY, headers={"Authorization": f"Bearer {USER_KEY}"}
        ).status_code
        == 200
    )
    assert (
        secured.post("/v1/classify", json=BODY, headers={"X-API-Key": USER_KEY}).status_code == 200
    )
    assert (
        secured.get("/v1/model", headers={"authorization": f"bearer {USER_KEY}"}).status_code == 200
    )


def test_health_and_metrics_stay_open_unless_configured(
    secured: TestClient, make_client: ClientFactory
) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert secured.get(path).status_code == 200
    locked = make_client(api_keys=[USER_KEY], protect_health=True, protect_metrics=True)
    for path in ("/healthz", "/readyz", "/metrics"):
        assert locked.get(path).status_code == 401
        assert locked.get(path, headers={"X-API-Key": USER_KEY}).status_code == 200


def test_admin_needs_the_admin_key(secured: TestClient) -> None:
    user = secured.post("/v1/admin/reload", headers={"X-API-Key": USER_KEY})
    assert user.status_code == 401
    admin = secured.post("/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY})
    assert admin.status_code == 200


def test_admin_is_disabled_without_admin_keys(make_client: ClientFactory) -> None:
    client = make_client(api_keys=[USER_KEY])
    response = client.post("/v1/admin/reload", headers={"X-API-Key": USER_KEY})
    assert response.status_code == 403
    assert "SITREP_ADMIN_KEYS" in response.json()["detail"]


def test_short_keys_are_refused_at_start() -> None:
    from pydantic import ValidationError

    from service.config import Settings

    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(api_keys="short")


def test_keys_come_from_a_comma_separated_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from service.config import Settings

    monkeypatch.setenv("SITREP_API_KEYS", f"{USER_KEY}, {ADMIN_KEY}")
    assert Settings().api_keys == [USER_KEY, ADMIN_KEY]
