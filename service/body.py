"""Check a request body before FastAPI validates it, so each kind of bad body gets its own answer:
a wrong content type (415), bytes that are not UTF-8 or not JSON (400), JSON nested too deep or
with numbers too long for the parser (400), strings holding lone surrogates (400). FastAPI alone
would answer all of these with one vague message, or fail on them with a 500. The parsed JSON is
cached on the request, so FastAPI does not parse the body a second time."""

from __future__ import annotations

import inspect
import json
import re
import typing
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import ClientDisconnect

from service.errors import InvalidBody, UnsupportedMediaType

Guard = Callable[[Request], Awaitable[None]]
NO_BODY: Any = object()  # what `check_json_body` returns for a request without any body


class JSONBodyRoute(APIRoute):
    """An APIRoute whose POST bodies are checked by `check_json_body` first.

    FastAPI parses the body before it runs dependencies, so the route's guards (dependencies
    marked with `guard`, such as the API-key checks) run here first: a caller without a key
    learns nothing about how its body would have been judged.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        guards = self.guards()

        async def checked_handler(request: Request) -> Response:
            for run_guard in guards:
                await run_guard(request)
            if request.method == "POST":
                await check_json_body(request)
            return await handler(request)

        return checked_handler

    def guards(self) -> list[Guard]:
        """The route's dependencies marked with `guard`, in order."""
        return [
            cast(Guard, dependency.dependency)
            for dependency in self.dependencies
            if getattr(dependency.dependency, "is_guard", False)
        ]


class DirectRoute(JSONBodyRoute):
    """A JSONBodyRoute that calls its endpoint itself, as `endpoint(body, request)`.

    FastAPI's own handler works out every parameter and dependency of the endpoint afresh on
    each request: for single sentences, a quarter of the event loop's time (py-spy, 16
    connections). A direct route does only what its one shape of endpoint needs: the guards,
    the body check, and pydantic's validation of the body model, with errors located under
    "body" exactly as FastAPI reports them.

    The shape is checked when the route is built, so a parameter or dependency that this route
    would silently skip is an error at start-up: the endpoint takes a pydantic model, then the
    `Request` (anything else it needs comes from the app's state), and every dependency of the
    route is a guard. FastAPI still reads the signature for the OpenAPI schema.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        validator = TypeAdapter(_direct_body_model(self.endpoint))
        guards, endpoint = self.guards(), self.endpoint
        if len(guards) != len(self.dependencies):
            raise TypeError(f"{self.path}: a DirectRoute's dependencies must all be guards")

        async def direct_handler(request: Request) -> Response:
            for run_guard in guards:
                await run_guard(request)
            parsed = await check_json_body(request)
            if parsed is NO_BODY:
                raise RequestValidationError(
                    [{"type": "missing", "loc": ("body",), "msg": "Field required"}]
                )
            try:
                # As FastAPI validates a body parameter; JSON holds no objects with attributes.
                body = validator.validate_python(parsed, from_attributes=True)
            except ValidationError as error:
                raise RequestValidationError(
                    [
                        {**item, "loc": ("body", *item["loc"])}
                        for item in error.errors(include_url=False)
                    ]
                ) from None
            response: Response = await endpoint(body, request)
            return response

        return direct_handler


def _direct_body_model(endpoint: Callable[..., Any]) -> type[BaseModel]:
    hints = typing.get_type_hints(endpoint)
    names = list(inspect.signature(endpoint).parameters)
    model = hints.get(names[0]) if len(names) == 2 else None
    if not (
        isinstance(model, type) and issubclass(model, BaseModel) and hints[names[1]] is Request
    ):
        raise TypeError(
            f"{endpoint.__name__}: a DirectRoute endpoint takes (body: <pydantic model>, "
            "request: Request)"
        )
    return model


def guard(check: Guard) -> Guard:
    """Mark a dependency as a guard that `JSONBodyRoute` runs before looking at the body."""
    check.is_guard = True  # type: ignore[attr-defined]
    return check


# A JSON escape of a UTF-16 surrogate: paired ones decode to one character, lone ones do not.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


async def check_json_body(request: Request) -> Any:
    """The parsed body, also cached for `request.json()`; `NO_BODY` when there is none."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not media_type and not await _read_body(request):
        return NO_BODY  # the route reports it if it needs a body
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
    return parsed


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
