"""Check a request body before FastAPI validates it, so each kind of bad body gets its own answer:
a wrong content type (415), bytes that are not UTF-8 or not JSON (400), JSON nested too deep or
with numbers too long for the parser (400), strings holding lone surrogates (400). FastAPI alone
would answer all of these with one vague message, or fail on them with a 500. The parsed JSON is
cached on the request, so FastAPI does not parse the body a second time."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect

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
                await run_guard(request)
            if request.method == "POST":
                await check_json_body(request)
            return await handler(request)

        return checked_handler


def guard(
    check: Callable[[Request], Awaitable[None]],
) -> Callable[[Request], Awaitable[None]]:
    """Mark a dependency as a guard that `JSONBodyRoute` runs before looking at the body."""
    check.is_guard = True  # type: ignore[attr-defined]
    return check


# A JSON escape of a UTF-16 surrogate: paired ones decode to one character, lone ones do not.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


async def check_json_body(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not media_type and not await _read_body(request):
        return  # no body at all: FastAPI reports it if the route needs one
    if media_type != "application/json":
        shown = media_type or "none"
        raise UnsupportedMediaType(f"send the body as application/json, got content type {shown}")
    body = await _read_body(request)
    if not body.strip():
        raise InvalidBody("the request body is empty; send a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidBody(f"the body is not valid UTF-8 (byte {error.start})") from None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidBody(
            f"the body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except RecursionError:
        raise InvalidBody("the JSON is nested too deeply") from None
    except ValueError:  # Python refuses to convert integers of more than 4,300 digits
        raise InvalidBody("the JSON holds a number with too many digits") from None
    if _SURROGATE_ESCAPE.search(text) and _holds_lone_surrogate(parsed):
        # Not Unicode text: nothing could classify it, nor write it back out as UTF-8.
        raise InvalidBody(
            "the JSON holds a lone surrogate escape (\\ud800-\\udfff without its pair), "
            "which is not a Unicode character"
        )
    request._json = parsed  # Starlette's own cache for request.json()


async def _read_body(request: Request) -> bytes:
    try:
        return await request.body()
    except ClientDisconnect:
        # Nobody is left to answer; the status is for the access log and metrics.
        raise InvalidBody("the client closed the connection before the body was complete") from None


def _holds_lone_surrogate(value: Any) -> bool:
    pending = [value]  # a loop, not recursion: the JSON may be nested as deep as json allows
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                return True
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
    return False
