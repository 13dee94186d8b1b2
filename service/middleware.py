"""What happens to a request before a route sees it: request ids, one log line and metrics per
request, and the guards against requests too large or too slow.

The size guard runs before anything reads the body: a declared Content-Length over the limit is
refused at once, and a body without one (chunked) is counted as it streams and refused as soon
as it passes the limit, so the server never holds more than the limit of any request. The body
must also keep arriving: after a grace period, at a minimum average rate (408 otherwise).

Below ASGI, `GuardedHttpProtocol` does the same for the request line and headers, which uvicorn
reads without a limit of size or time: at most `head_max_bytes` (431 above), all of it within
`head_timeout_seconds` (the connection is closed after). Without these a client could make the
server buffer headers without end, or hold connections open for ever by sending one byte at a
time (slowloris).
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, fields
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.config import Settings
from service.errors import PROBLEM_BASE, PROBLEM_JSON, PayloadTooLarge, RequestTimeout
from service.observability import LATENCY, REQUESTS

logger = logging.getLogger("sitrep.access")
error_logger = logging.getLogger("sitrep.errors")
REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass(frozen=True)
class Limits:
    """How large and how slow a request may be, in the spirit of Apache's mod_reqtimeout:
    generous for any real client, fatal to one that trickles. A body gets `body_grace_seconds`,
    plus one second per `body_min_bytes_per_second` bytes received: with the defaults 2 MiB may
    take 34 minutes, 10 bytes may not take 11 s. Set by `SITREP_*` settings of the same names."""

    max_body_bytes: int
    body_grace_seconds: float
    body_min_bytes_per_second: int
    head_max_bytes: int
    head_timeout_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Limits:
        """The limits these settings set; without settings, the settings' defaults (no
        environment is read)."""
        if settings is None:
            return cls(**{f.name: Settings.model_fields[f.name].default for f in fields(cls)})
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})


class RequestContextMiddleware:
    """Request id, body limit, access log and request metrics for every HTTP request."""

    def __init__(self, app: ASGIApp, *, limits: Limits, log_sentences: bool = False) -> None:
        self.app = app
        self.limits = limits
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
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status, started_response = message["status"], True
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
            elif declared is not None and int(declared) > self.limits.max_body_bytes:
                await _reject(
                    send_with_id,
                    413,
                    PayloadTooLarge.title,
                    PayloadTooLarge.slug,
                    f"the body is {int(declared)} bytes; at most "
                    f"{self.limits.max_body_bytes} bytes are accepted",
                )
            else:
                await self.app(scope, self._limited(receive), send_with_id)
        except Exception:
            # Answered here, not by Starlette's outermost error handler, so that the 500 and
            # its log line carry the request id the caller can quote.
            error_logger.exception("unhandled error", extra={"request_id": request_id})
            if started_response:
                raise  # too late for another answer; the server closes the connection
            await _reject(
                send_with_id,
                500,
                "Internal error",
                "internal",
                "the server failed to answer; the error was logged under this X-Request-ID",
            )
        finally:
            self._record(scope, status, time.perf_counter() - started, request_id)

    def _limited(self, receive: Receive) -> Receive:
        received = 0
        limit = self.limits.max_body_bytes
        grace, rate = self.limits.body_grace_seconds, self.limits.body_min_bytes_per_second
        started = time.monotonic()
        complete = False

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:
                return await receive()  # past the body only a disconnect can come: no deadline
            deadline = started + grace + received / rate
            try:
                async with asyncio.timeout(deadline - time.monotonic()):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    f"the body did not arrive in time: {received} bytes in "
                    f"{time.monotonic() - started:.0f} s; send it at {rate} "
                    "bytes a second or faster"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"the body is larger than {limit} bytes")
                complete = not message.get("more_body", False)
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


def _problem(status: int, title: str, slug: str, detail: str) -> bytes:
    return json.dumps(
        {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
    ).encode()


async def _reject(send: Send, status: int, title: str, slug: str, detail: str) -> None:
    body = _problem(status, title, slug, detail)
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


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol (httptools) with limits on each request's head: its size
    (`head_max_bytes`) and the time it may take to arrive (`head_timeout_seconds`, counted from
    the connection or from the previous response). Pass it to uvicorn as `http=`.

    uvicorn builds one per connection and passes no settings, so the limits are the class's:
    `create_app` sets them from the settings of the worker it builds the app for."""

    limits = Limits.from_settings()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0  # bytes received since the current head began
        self._reading_head = True
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._reading_head and self._head_bytes > self.limits.head_max_bytes:
            self._refuse_large_head()

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._reading_head = False
        self._stop_head_timer()
        # A head that arrived in one piece is measured here, where it is whole.
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.head_max_bytes:
            self._refuse_large_head()
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._reading_head, self._head_bytes = True, 0

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._start_head_timer()  # the next request's head, or the rest of this body

    def _start_head_timer(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(
            self.limits.head_timeout_seconds, self._head_timed_out
        )

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or (
            self.cycle is not None and not self.cycle.response_complete
        ):
            return  # a request is being answered: its time is not limited here
        if self._reading_head and self._head_bytes == 0:
            self.transport.close()  # an idle connection: nothing to answer
            return
        self._refuse(
            408,
            "Request not received in time",
            "request-timeout",
            f"the request was not complete within {self.limits.head_timeout_seconds:.0f} s",
        )

    def _refuse_large_head(self) -> None:
        self._refuse(
            431,
            "Request header fields too large",
            "header-fields-too-large",
            f"the request line and headers are larger than {self.limits.head_max_bytes} bytes",
        )

    def _refuse(self, status: int, title: str, slug: str, detail: str) -> None:
        """Answer with a problem and close: the request was never handed to the application."""
        self._refused = True
        self._stop_head_timer()
        body = _problem(status, title, slug, detail)
        phrase = http.HTTPStatus(status).phrase
        self.transport.write(
            f"HTTP/1.1 {status} {phrase}\r\ncontent-type: {PROBLEM_JSON}\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )
        self.transport.close()
        REQUESTS.labels(route="unmatched", status=str(status)).inc()
        logger.warning("request refused", extra={"status": status, "reason": detail})
