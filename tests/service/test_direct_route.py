"""DirectRoute answers every body exactly as FastAPI's own handler would, and refuses at start-up
an endpoint whose parameters or dependencies it would skip."""

from __future__ import annotations

import json

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Request, Response
from fastapi.testclient import TestClient

from service.body import DirectRoute, JSONBodyRoute, guard
from service.errors import Unauthorized, install_error_handlers
from service.schemas import ClassifyRequest


@guard
async def needs_key(request: Request) -> None:
    if request.headers.get("x-api-key") != "open-sesame":
        raise Unauthorized("send the key")


async def echo(body: ClassifyRequest, request: Request) -> Response:
    return Response(json.dumps([body.sentences, body.explain, request.method]))


def app_with(route_class: type[JSONBodyRoute]) -> TestClient:
    router = APIRouter(route_class=route_class, dependencies=[Depends(needs_key)])
    router.post("/echo")(echo)
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    return TestClient(app)


BODIES: list[tuple[str | None, bytes]] = [
    ("application/json", b'{"sentences": ["Two soldiers were wounded."], "explain": true}'),
    ("application/json; charset=utf-8", b'{"sentences": ["a", "b"]}'),
    (None, b""),
    ("application/json", b""),
    ("application/json", b"[]"),
    ("application/json", b"null"),
    ("application/json", b'"a sentence"'),
    ("application/json", b"{}"),
    ("application/json", b'{"sentences": []}'),
    ("application/json", b'{"sentences": [null, "a", 2]}'),
    ("application/json", b'{"sentences": [" "]}'),
    ("application/json", b'{"sentences": ["a"], "explain": "yes"}'),
    ("application/json", b'{"sentences": ["a"], "other": 1}'),
    ("application/json", b'{"sentences": ['),
    ("text/plain", b'{"sentences": ["a"]}'),
]


@pytest.mark.parametrize(("content_type", "body"), BODIES)
@pytest.mark.parametrize("key", ["open-sesame", None])
def test_answers_match_fastapi(content_type: str | None, body: bytes, key: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    if key:
        headers["x-api-key"] = key
    with app_with(JSONBodyRoute) as fastapi_client, app_with(DirectRoute) as direct_client:
        expected = fastapi_client.post("/echo", content=body, headers=headers)
        answer = direct_client.post("/echo", content=body, headers=headers)
    assert (answer.status_code, answer.text) == (expected.status_code, expected.text)
    assert answer.headers.get("content-type") == expected.headers.get("content-type")


def test_the_openapi_schema_is_fastapis() -> None:
    with app_with(JSONBodyRoute) as fastapi_client, app_with(DirectRoute) as direct_client:
        assert (
            direct_client.get("/openapi.json").json() == fastapi_client.get("/openapi.json").json()
        )


async def with_header(body: ClassifyRequest, request: Request, trace: str = Header("")) -> Response:
    return Response(trace)


async def model_second(request: Request, body: ClassifyRequest) -> Response:
    return Response()


async def not_a_guard(request: Request) -> None:
    return None


@pytest.mark.parametrize("endpoint", [with_header, model_second])
def test_an_endpoint_of_another_shape_is_refused(endpoint: object) -> None:
    router = APIRouter(route_class=DirectRoute)
    with pytest.raises(TypeError, match="takes \\(body"):
        router.post("/x")(endpoint)  # type: ignore[arg-type]


def test_a_dependency_that_is_not_a_guard_is_refused() -> None:
    router = APIRouter(route_class=DirectRoute, dependencies=[Depends(not_a_guard)])
    with pytest.raises(TypeError, match="must all be guards"):
        router.post("/x")(echo)
