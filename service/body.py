"""Check a request body before FastAPI validates it, so each kind of bad body gets its own answer:
a wrong content type (415), bytes that are not UTF-8 or not JSON (400), JSON nested too deep for
the parser (400). FastAPI alone would answer all of these with one vague message. The parsed JSON
is cached on the request, so FastAPI does not parse the body a second time."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from service.errors import InvalidBody, UnsupportedMediaType


class JSONBodyRoute(APIRoute):
    """An APIRoute whose POST bodies are checked by `check_json_body` first.

    FastAPI parses the body before it runs dependencies, so the route's guards (dependencies
    marked with `guard`, such as the API-key checks) run here first: a caller without a key
    learns nothing about how its body would have been judged.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        guards = [
            dependency.dependency
            for dependency in self.dependencies
            if getattr(dependency.dependency, "is_guard", False)
        ]

        async def checked_handler(request: Request) -> Response:
            for run_guard in guards:
                assert run_guard is not None
                run_guard(request)
            if request.method == "POST":
                await check_json_body(request)
            return await handler(request)

        return checked_handler


def guard(check: Callable[[Request], None]) -> Callable[[Request], None]:
    """Mark a dependency as a guard that `JSONBodyRoute` runs before looking at the body."""
    check.is_guard = True  # type: ignore[attr-defined]
    return check


async def check_json_body(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not media_type and not await request.body():
        return  # no body at all: FastAPI reports it if the route needs one
    if media_type != "application/json":
        shown = media_type or "none"
        raise UnsupportedMediaType(f"send the body as application/json, got content type {shown}")
    body = await request.body()
    if not body.strip():
        raise InvalidBody("the request body is empty; send a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidBody(f"the body is not valid UTF-8 (byte {error.start})") from None
    try:
        request._json = json.loads(text)  # Starlette's own cache for request.json()
    except json.JSONDecodeError as error:
        raise InvalidBody(
            f"the body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except RecursionError:
        raise InvalidBody("the JSON is nested too deeply") from None
