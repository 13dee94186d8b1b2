"""Bad input gets a clear 4xx in problem+json, never a 5xx, and never echoes the body."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.service.conftest import ClientFactory

SECRET_TEXT = "a-distinctive-sentence-that-must-not-be-echoed"


def assert_problem(response: object, status: int, *fragments: str) -> dict[str, object]:
    from httpx2 import Response

    assert isinstance(response, Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    for fragment in fragments:
        assert fragment in str(body), f"{fragment!r} not in {body}"
    assert SECRET_TEXT not in response.text
    return body  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sentences": []}, "body.sentences"),
        ({"sentences": None}, "body.sentences"),
        ({"sentences": "one sentence"}, "body.sentences"),
        ({"sentences": [42]}, "body.sentences.0"),
        ({"sentences": [SECRET_TEXT, None]}, "body.sentences.1"),
        ({"sentences": [SECRET_TEXT, "   \n\t"]}, "body.sentences"),
        ({"sentences": [SECRET_TEXT], "explain": "yes"}, "body.explain"),
        ({"sentences": [SECRET_TEXT], "unexpected": 1}, "body.unexpected"),
        ({}, "body.sentences"),
        ([SECRET_TEXT], "body"),
    ],
)
def test_invalid_classify_bodies_name_the_field(
    client: TestClient, body: object, field: str
) -> None:
    problem = assert_problem(client.post("/v1/classify", json=body), 422, field)
    assert problem["errors"]


def test_malformed_bodies_get_400_with_the_reason(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    assert_problem(
        client.post("/v1/classify", content=b'{"sentences": ["x"', headers=headers),
        400,
        "not valid JSON",
    )
    assert_problem(
        client.post("/v1/classify", content=b'{"sentences": ["\xff\xfe"]}', headers=headers),
        400,
        "not valid UTF-8",
    )
    deep = b"[" * 100_000 + b"]" * 100_000
    assert_problem(client.post("/v1/classify", content=deep, headers=headers), 400, "nested")
    assert_problem(client.post("/v1/classify", content=b"", headers=headers), 400, "empty")


def test_wrong_content_type_gets_415(client: TestClient) -> None:
    response = client.post(
        "/v1/classify", content=b'{"sentences": ["x"]}', headers={"content-type": "text/plain"}
    )
    assert_problem(response, 415, "application/json", "text/plain")
    form = client.post("/v1/classify", data={"sentences": "x"})
    assert_problem(form, 415, "application/x-www-form-urlencoded")


def test_limits_are_enforced_and_configurable(make_client: ClientFactory) -> None:
    client = make_client(
        max_sentences=3, max_sentence_chars=50, max_document_chars=100, max_body_bytes=2_048
    )
    assert_problem(
        client.post("/v1/classify", json={"sentences": ["a b c"] * 4}), 422, "at most 3 sentences"
    )
    assert_problem(
        client.post("/v1/classify", json={"sentences": ["x" * 51]}),
        422,
        "body.sentences.0",
        "at most 50 characters",
    )
    assert_problem(
        client.post("/v1/classify/document", json={"text": "Word. " * 20}),
        422,
        "at most 100 characters",
    )
    big = client.post("/v1/classify", json={"sentences": ["y" * 40] * 3, "pad": "z" * 3_000})
    assert_problem(big, 413, "2048 bytes")
    assert client.post("/v1/classify", json={"sentences": ["Talks resumed."]}).status_code == 200


def test_chunked_body_past_the_limit_gets_413(make_client: ClientFactory) -> None:
    client = make_client(max_body_bytes=2_048)

    def chunks() -> object:
        yield b'{"sentences": ["'
        for _ in range(100):
            yield b"x" * 100
        yield b'"]}'

    response = client.post(
        "/v1/classify", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413)


def test_unknown_routes_and_methods_are_problems_too(client: TestClient) -> None:
    assert_problem(client.get("/v2/classify"), 404)
    assert_problem(client.get("/v1/classify"), 405)


def test_request_id_is_echoed_or_made(client: TestClient) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["x-request-id"] != "bad id with spaces"
    assert len(made.headers["x-request-id"]) == 32
