"""A bounded load on the service: a few keep-alive connections sending a mix of requests, each
outcome recorded (status, time, model version, body) for the tests to judge afterwards."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx2 as httpx

SENTENCES = (
    "Two soldiers were killed when their armoured vehicle hit a mine near the river.",
    "A missile struck an apartment block, killing nine residents including three children.",
    "The foreign minister condemned the attack and demanded an urgent Security Council meeting.",
    "Analysts expect fighting around the port to intensify once the rains end.",
    "Delegations from both sides met in Geneva on Tuesday.",
    "Власти сообщили о новых ударах по энергосистеме.",  # non-English text must not fail either
)
DOCUMENT = "Lt. Gen. Petrov said on Feb. 26 that U.S. aid was late. Two soldiers died. " * 3


@dataclass(frozen=True)
class Call:
    """One kind of request in the mix."""

    name: str
    method: str
    path: str
    json: Any = None


MIXED_CALLS: tuple[Call, ...] = (
    *(
        Call(f"classify-1-{i}", "POST", "/v1/classify", {"sentences": [s]})
        for i, s in enumerate(SENTENCES)
    ),
    Call("classify-batch", "POST", "/v1/classify", {"sentences": list(SENTENCES)}),
    Call("classify-explain", "POST", "/v1/classify", {"sentences": SENTENCES[:2], "explain": True}),
    Call("document", "POST", "/v1/classify/document", {"text": DOCUMENT}),
    Call("model", "GET", "/v1/model"),
    Call("healthz", "GET", "/healthz"),
    Call("readyz", "GET", "/readyz"),
    Call("metrics", "GET", "/metrics"),
)


@dataclass(frozen=True)
class Outcome:
    call: Call
    started: float  # time.monotonic() when the request was sent
    finished: float
    status: int | None  # None: no response (connection error, timeout)
    error: str | None = None
    body: Any = field(default=None, repr=False)

    @property
    def seconds(self) -> float:
        return self.finished - self.started

    @property
    def version(self) -> str | None:
        """The model version the response names, if it names one."""
        if not isinstance(self.body, dict):
            return None
        if "model" in self.body and isinstance(self.body["model"], dict):
            return str(self.body["model"]["version"])
        if self.call.path == "/v1/model":
            return str(self.body["version"])
        if self.call.path == "/readyz":
            return str(self.body.get("model_version"))
        return None


class Load:
    """`with Load(url, connections=16) as load:` keeps `connections` clients busy until the block
    ends (or `max_seconds` pass, whichever is first); then `load.outcomes` holds every request."""

    def __init__(
        self,
        url: str,
        *,
        connections: int,
        calls: Sequence[Call] = MIXED_CALLS,
        headers: dict[str, str] | None = None,
        max_seconds: float = 120,
    ) -> None:
        self.url = url
        self.calls = calls
        self.headers = headers or {}
        self.max_seconds = max_seconds
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._workers = [
            threading.Thread(target=self._work, args=(index,), daemon=True)
            for index in range(connections)
        ]

    def __enter__(self) -> Load:
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join()

    def wait_for(self, requests: int, timeout: float = 60) -> None:
        """Block until at least `requests` more requests have been answered."""
        target = len(self.outcomes) + requests
        deadline = time.monotonic() + timeout
        while len(self.outcomes) < target:
            assert time.monotonic() < deadline, f"load stalled at {len(self.outcomes)} requests"
            time.sleep(0.01)

    def failures(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.status != 200]

    def _work(self, index: int) -> None:
        # Keep-alive expiry below the server's 5 s idle timeout: a pooled connection is never
        # reused just as the server closes it.
        limits = httpx.Limits(max_connections=1, keepalive_expiry=2)
        with httpx.Client(
            base_url=self.url, headers=self.headers, timeout=60, limits=limits, trust_env=False
        ) as client:
            deadline = time.monotonic() + self.max_seconds
            turn = index
            while not self._stop.is_set() and time.monotonic() < deadline:
                call = self.calls[turn % len(self.calls)]
                turn += 1
                self.outcomes.append(self._send(client, call))

    @staticmethod
    def _send(client: httpx.Client, call: Call) -> Outcome:
        started = time.monotonic()
        try:
            response = client.request(call.method, call.path, json=call.json)
        except httpx.HTTPError as error:
            return Outcome(
                call, started, time.monotonic(), None, f"{type(error).__name__}: {error}"
            )
        finished = time.monotonic()
        body: Any = None
        if response.headers.get("content-type", "").startswith("application/json"):
            body = response.json()
        elif response.status_code != 200:
            body = response.text
        return Outcome(call, started, finished, response.status_code, body=body)
