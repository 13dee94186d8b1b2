"""ASGI middleware: request ids, one log line and metrics per request, and the body-size guard.

The size guard runs before anything reads the body: a declared Content-Length over the limit is
refused at once, and a body without one (chunked) is counted as it streams and refused as soon
as it passes the limit, so the server never holds more than the limit of any request.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PROBLEM_BASE, PROBLEM_JSON, PayloadTooLarge
from service.observability import LATENCY, REQUESTS

logger = logging.getLogger("sitrep.access")
REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    """Request id, body limit, access log and request metrics for every HTTP request."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, log_sentences: bool = False) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.log_sentences = log_sentences

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {key.decode("latin-1").lower(): value for key, value in scope["headers"]}
        request_id = _request_id(headers.get(REQUEST_ID_HEADER))
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
            await send(message)

        try:
            declared = headers.get("content-length")
            if declared is not None and not declared.isdigit():
                await _reject(
                    send_with_id,
                    400,
                    "Malformed request",
                    "invalid-body",
                    "Content-Length is not a number",
                )
            elif declared is not None and int(declared) > self.max_body_bytes:
                await _reject(
                    send_with_id,
                    413,
                    PayloadTooLarge.title,
                    PayloadTooLarge.slug,
                    f"the body is {int(declared)} bytes; at most "
                    f"{self.max_body_bytes} bytes are accepted",
                )
            else:
                await self.app(scope, self._limited(receive), send_with_id)
        finally:
            self._record(scope, status, time.perf_counter() - started, request_id)

    def _limited(self, receive: Receive) -> Receive:
        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"the body is larger than {limit} bytes")
            return message

        return limited_receive

    def _record(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        route = scope.get("route")
        route_path = getattr(route, "path", None) or "unmatched"
        REQUESTS.labels(route=route_path, status=str(status)).inc()
        LATENCY.labels(route=route_path).observe(seconds)
        state: dict[str, Any] = scope.get("state", {})
        entry: dict[str, Any] = {
            "request_id": request_id,
            "method": scope.get("method"),
            "route": route_path,
            "status": status,
            "latency_ms": round(seconds * 1000, 2),
        }
        for key in ("sentences", "model_version"):
            if key in state:
                entry[key] = state[key]
        if self.log_sentences and "texts" in state:
            entry["texts"] = state["texts"]
        logger.info("request", extra=entry)


def _request_id(offered: bytes | None) -> str:
    if offered is not None:
        candidate = offered.decode("latin-1")
        if _VALID_REQUEST_ID.match(candidate):
            return candidate
    return uuid.uuid4().hex


async def _reject(send: Send, status: int, title: str, slug: str, detail: str) -> None:
    body = json.dumps(
        {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
