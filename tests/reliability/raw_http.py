"""HTTP/1.1 on a bare socket: send exactly the bytes a test chooses, read back what the server did.

httpx and requests repair what they send (they compute Content-Length, encode headers, refuse
bad bytes), so hostile requests go through here instead.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RawResponse:
    """What came back on one connection: a response, or none when the server just closed it."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip()


def connect(port: int, timeout: float) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def exchange(port: int, parts: Iterable[bytes], *, timeout: float = 30) -> RawResponse:
    """Send `parts` one after another on a new connection, then read one response."""
    with connect(port, timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for part in parts:  # the server may answer and close before it has read them all
                sock.sendall(part)
        return read_response(sock)


def exchange_streaming(
    port: int, head: bytes, body_parts: Iterable[bytes], *, timeout: float = 30
) -> RawResponse:
    """Send the head, then stream the body from another thread while reading the answer, the
    way a real client uploading a large body learns early that it was refused."""
    with connect(port, timeout) as sock:
        sock.sendall(head)

        def stream() -> None:
            with contextlib.suppress(OSError):
                for part in body_parts:
                    sock.sendall(part)

        sender = threading.Thread(target=stream, daemon=True)
        sender.start()
        try:
            return read_response(sock)
        finally:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # unblocks the sender if it is still writing
            sender.join(timeout)


def read_response(sock: socket.socket) -> RawResponse:
    """One response from `sock`; status None if the server closed (or reset) without one."""
    buffer = b""
    try:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                return RawResponse(None, body=buffer)
            buffer += chunk
        head, _, body = buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return RawResponse(int(status_line.split()[1]), headers, body)
    except ConnectionResetError:
        return RawResponse(None, body=buffer)


def closed_by_server(sock: socket.socket, wait: float) -> bool:
    """True if the server closes `sock` within `wait` seconds (anything it sends is read)."""
    deadline = time.monotonic() + wait
    while (remaining := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], remaining)
        if not readable:
            return False
        try:
            if not sock.recv(65536):
                return True
        except ConnectionResetError:
            return True
    return False


@dataclass(frozen=True)
class SlowOutcome:
    """How a slow client fared: whether and when the server hung up, and what it said first."""

    closed: bool
    seconds: float
    answer: bytes


def slow_client(
    port: int, burst: bytes, drip: bytes, *, every: float, give_up_after: float
) -> SlowOutcome:
    """Send `burst` at once, then `drip` one byte every `every` seconds (a slowloris client; with
    no drip, an idle one) until the server closes the connection or `give_up_after` seconds
    have passed."""
    started = time.monotonic()
    answer = b""
    with connect(port, timeout=5) as sock:
        sock.sendall(burst)
        sent = 0
        while time.monotonic() - started < give_up_after:
            if sent < len(drip):
                try:
                    sock.sendall(drip[sent : sent + 1])
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += 1
            readable, _, _ = select.select([sock], [], [], every)
            if readable:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                answer += chunk
                if not chunk or closed_by_server(sock, 5):
                    break
        else:
            return SlowOutcome(False, time.monotonic() - started, answer)
    return SlowOutcome(True, time.monotonic() - started, answer)


def request(
    method: str,
    path: str,
    body: bytes = b"",
    *,
    content_type: str | None = "application/json",
    headers: Iterable[tuple[str, str]] = (),
    content_length: int | str | None = None,
) -> bytes:
    """A request's bytes; Content-Length is the body's unless a test chooses another (or None
    together with a Transfer-Encoding header of its own)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    if content_length is not None or not any(k.lower() == "transfer-encoding" for k, _ in headers):
        lines.append(f"Content-Length: {len(body) if content_length is None else content_length}")
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(*pieces: bytes) -> bytes:
    """A chunked-encoded body, terminating chunk included."""
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"
