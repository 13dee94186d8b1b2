"""Hostile requests sent byte for byte to a real server on a socket.

Each case gets its own 4xx (slow clients: a closed connection), the server then answers a normal
request exactly as before, and its memory never grows by more than the body limit.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.conftest import assert_no_leak, record_figure
from tests.reliability.memory import MiB, PeakRss, rss_bytes
from tests.reliability.raw_http import (
    RawResponse,
    chunked,
    exchange,
    exchange_streaming,
    request,
    slow_client,
)
from tests.service.server import ServerProcess

pytestmark = pytest.mark.slow
BODY_LIMIT = 2 * MiB  # the default SITREP_MAX_BODY_BYTES
NORMAL = json.dumps({"sentences": ["Two soldiers were killed by a mine near the bridge."]}).encode()


def js(value: Any) -> bytes:
    return json.dumps(value).encode()


def post(path: str, body: bytes, **options: Any) -> tuple[bytes, ...]:
    return (request("POST", path, body, **options),)


def classify(body: bytes, **options: Any) -> tuple[bytes, ...]:
    return post("/v1/classify", body, **options)


def document(body: bytes) -> tuple[bytes, ...]:
    return post("/v1/classify/document", body)


def raw(text: bytes) -> tuple[bytes, ...]:
    return (text,)


def head(
    content_length: int | str | None, *headers: tuple[str, str], path: str = "/v1/classify"
) -> bytes:
    return request("POST", path, content_length=content_length, headers=headers)


CHUNKED = ("Transfer-Encoding", "chunked")


def pieces(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """`total` bytes of a JSON string's inside, `size` at a time."""
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


def chunk_stream(total: int) -> Iterator[bytes]:
    yield b"10\r\n" + b'{"sentences": ["' + b"\r\n"
    for piece in pieces(total):
        yield b"%x\r\n%s\r\n" % (len(piece), piece)


@dataclass(frozen=True)
class Hostile:
    """One hostile request: its bytes, the status it must get and a fragment of the reason."""

    name: str
    parts: tuple[bytes, ...]
    status: int
    says: str = ""
    # False where the request never reaches the application: uvicorn's HTTP parser refuses it
    # with a plain-text 400, which is all the protocol allows.
    problem: bool = True
    stream: Callable[[], Iterator[bytes]] | None = field(default=None, repr=False)


CASES = (
    # Bodies that are not JSON, or not UTF-8
    Hostile("json-truncated", classify(b'{"sentences": ["Two soldiers'), 400, "not valid JSON"),
    Hostile("json-empty-body", classify(b""), 400, "empty"),
    Hostile("json-whitespace-body", classify(b" \r\n\t "), 400, "empty"),
    Hostile("json-trailing-garbage", classify(b'{"sentences": ["a"]} xyz'), 400, "Extra data"),
    Hostile("json-single-quotes", classify(b"{'sentences': ['a']}"), 400, "not valid JSON"),
    Hostile("json-comment", classify(b'{"sentences": ["a"] /* c */}'), 400, "not valid JSON"),
    Hostile("json-utf8-bom", classify(b'\xef\xbb\xbf{"sentences": ["a"]}'), 400, "BOM"),
    Hostile("invalid-utf8", classify(b'{"sentences": ["\xff\xfe"]}'), 400, "not valid UTF-8"),
    Hostile("overlong-utf8", classify(b'{"sentences": ["\xc0\xaf"]}'), 400, "not valid UTF-8"),
    Hostile("utf8-encoded-surrogate", classify(b'{"sentences": ["\xed\xa0\x80"]}'), 400, "UTF-8"),
    Hostile("utf16-body", classify('{"sentences": ["a"]}'.encode("utf-16")), 400, "UTF-8"),
    Hostile("lone-surrogate-escape", classify(b'{"sentences": ["a \\ud800 b"]}'), 400, "surrogate"),
    Hostile("lone-surrogate-in-key", classify(b'{"sentences": ["a"], "\\udc00": 1}'), 400, "surr"),
    Hostile("lone-surrogate-document", document(b'{"text": "Shelling \\udfff."}'), 400, "surr"),
    Hostile(
        "integer-5000-digits", classify(b'{"sentences": [' + b"9" * 5000 + b"]}"), 400, "digits"
    ),
    Hostile("deep-arrays", classify(b"[" * 100_000 + b"]" * 100_000), 400, "nested too deeply"),
    Hostile("deep-objects", classify(b'{"a":' * 50_000 + b"1" + b"}" * 50_000), 400, "nested"),
    # JSON of the wrong shape
    Hostile("json-null", classify(b"null"), 422, "body"),
    Hostile("json-top-level-array", classify(js(["a"])), 422, "body"),
    Hostile("json-top-level-string", classify(js("a")), 422, "body"),
    Hostile("sentences-missing", classify(js({})), 422, "body.sentences"),
    Hostile("sentences-empty-list", classify(js({"sentences": []})), 422, "body.sentences"),
    Hostile("sentences-null", classify(js({"sentences": None})), 422, "body.sentences"),
    Hostile("sentences-a-string", classify(js({"sentences": "a"})), 422, "body.sentences"),
    Hostile("sentence-number", classify(js({"sentences": [42]})), 422, "body.sentences.0"),
    Hostile("sentence-huge-float", classify(js({"sentences": [1.5e308]})), 422, "sentences.0"),
    Hostile("sentence-bool", classify(js({"sentences": [True]})), 422, "body.sentences.0"),
    Hostile("sentence-null", classify(js({"sentences": ["a", None]})), 422, "body.sentences.1"),
    Hostile("sentence-object", classify(js({"sentences": [{"text": "a"}]})), 422, "sentences.0"),
    Hostile(
        "sentence-deep-list", classify(js({"sentences": [[[["a"]]]]})), 422, "body.sentences.0"
    ),
    Hostile("sentence-blank", classify(js({"sentences": ["a", " \u3000\n"]})), 422, "[1]"),
    Hostile("sentence-5001-chars", classify(js({"sentences": ["x" * 5001]})), 422, "at most 5000"),
    Hostile("sentences-1001", classify(js({"sentences": ["a"] * 1001})), 422, "at most 1000"),
    Hostile("sentences-100000", classify(js({"sentences": ["a"] * 100_000})), 422, "got 100000"),
    Hostile("explain-string", classify(js({"sentences": ["a"], "explain": "yes"})), 422, "explain"),
    Hostile("explain-number", classify(js({"sentences": ["a"], "explain": 1})), 422, "explain"),
    Hostile("unknown-field", classify(js({"sentences": ["a"], "admin": True})), 422, "body.admin"),
    Hostile("duplicate-key", classify(b'{"sentences": ["a"], "sentences": 7}'), 422, "sentences"),
    Hostile("nan", classify(b'{"sentences": NaN}'), 422, "body.sentences"),
    Hostile("infinity", classify(b'{"sentences": ["a"], "explain": -Infinity}'), 422, "explain"),
    Hostile("document-number", document(js({"text": 5})), 422, "body.text"),
    Hostile("document-blank", document(js({"text": "\n\t "})), 422, "body.text"),
    Hostile("document-too-long", document(js({"text": "War. " * 40_001})), 422, "at most 200000"),
    Hostile("reload-without-admin-keys", post("/v1/admin/reload", b""), 403, "SITREP_ADMIN_KEYS"),
    # Content types
    Hostile("content-type-text", classify(NORMAL, content_type="text/plain"), 415, "text/plain"),
    Hostile("content-type-missing", classify(NORMAL, content_type=None), 415, "none"),
    Hostile(
        "content-type-form",
        classify(b"sentences=a", content_type="application/x-www-form-urlencoded"),
        415,
        "x-www-form-urlencoded",
    ),
    Hostile(
        "content-type-multipart",
        classify(b"--b\r\n\r\na\r\n--b--", content_type="multipart/form-data; boundary=b"),
        415,
        "multipart/form-data",
    ),
    Hostile("content-type-lookalike", classify(NORMAL, content_type="application/jsonx"), 415),
    # Sizes and lengths
    Hostile("body-50mb-declared", (head(50 * MiB), b"{" * 65_536), 413, f"{BODY_LIMIT} bytes"),
    Hostile(
        "body-50mb-streamed",
        (head(50 * MiB),),
        413,
        f"{BODY_LIMIT} bytes",
        stream=lambda: pieces(50 * MiB),
    ),
    Hostile(
        "body-50mb-chunked-streamed",
        (head(None, CHUNKED),),
        413,
        f"larger than {BODY_LIMIT} bytes",
        stream=lambda: chunk_stream(50 * MiB),
    ),
    Hostile(
        "chunked-just-past-the-limit",
        (head(None, CHUNKED), *chunk_stream(BODY_LIMIT + 1)),
        413,
        f"larger than {BODY_LIMIT} bytes",
    ),
    Hostile(
        "body-one-byte-over-the-limit",
        classify(b'{"sentences": ["' + b"x" * (BODY_LIMIT + 1 - 19) + b'"]}'),
        413,
        f"{BODY_LIMIT + 1} bytes",
    ),
    Hostile("expect-100-continue-too-large", (head(50 * MiB, ("Expect", "100-continue")),), 413),
    # The bytes past the declared length are parsed as a second request, which is garbage.
    Hostile("body-longer-than-declared", classify(NORMAL, content_length=10), 400, problem=False),
    Hostile("content-length-not-a-number", (head("ten"),), 400, problem=False),
    Hostile("content-length-negative", (head("-1"),), 400, problem=False),
    Hostile(
        "content-length-twice", (head(5, ("Content-Length", "50")), b"null!"), 400, problem=False
    ),
    Hostile(
        "content-length-and-chunked",
        (head(5, CHUNKED), chunked(NORMAL)),
        400,
        problem=False,
    ),
    Hostile(
        "chunk-size-not-hex", (head(None, CHUNKED), b"zz\r\nab\r\n0\r\n\r\n"), 400, problem=False
    ),
    Hostile("chunk-size-overflow", (head(None, CHUNKED), b"f" * 20 + b"\r\n"), 400, problem=False),
    # Heads: huge, malformed, or not HTTP at all
    Hostile("header-64kb", classify(NORMAL, headers=[("X-Pad", "a" * 65_536)]), 431),
    Hostile(
        "headers-2000",
        classify(NORMAL, headers=[(f"X-Pad-{i}", "b" * 30) for i in range(2_000)]),
        431,
    ),
    Hostile("url-64kb", raw(b"GET /healthz?q=" + b"a" * 65_536 + b" HTTP/1.1\r\n\r\n"), 431),
    Hostile("header-with-nul", classify(NORMAL, headers=[("X-A", "a\x00b")]), 400, problem=False),
    Hostile("header-name-with-space", classify(NORMAL, headers=[("X A", "b")]), 400, problem=False),
    Hostile("request-line-garbage", raw(b"HELLO\r\n\r\n"), 400, problem=False),
    Hostile(
        "tls-client-hello", raw(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"), 400, problem=False
    ),
    Hostile("http2-preface", raw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 400, problem=False),
    # Routes and methods
    Hostile("get-on-classify", (request("GET", "/v1/classify", content_type=None),), 405),
    Hostile("delete-on-model", (request("DELETE", "/v1/model", content_type=None),), 405),
    Hostile("path-traversal", raw(b"GET /v1/../../etc/passwd HTTP/1.1\r\n\r\n"), 404),
    Hostile(
        "path-encoded-traversal", raw(b"GET /v1/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n\r\n"), 404
    ),
    Hostile("unknown-version-prefix", post("/v2/classify", NORMAL), 404),
)
assert len({case.name for case in CASES}) == len(CASES) >= 40


@dataclass
class HostileServer:
    server: ServerProcess
    peak: PeakRss
    baseline_rss: int
    normal_answer: dict[str, Any]
    tried: list[str] = field(default_factory=list)
    requests: int = 0


@pytest.fixture(scope="module")
def hostile(
    small_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostileServer]:
    log = tmp_path_factory.mktemp("hostile") / "server.log"
    # glibc's default trim threshold (128 KiB): freed memory goes back to the kernel, so the RSS
    # after the table is what the server still holds. By default the service keeps up to 16 MB
    # of freed memory for the next big batch (service/allocator.py), which would hide that.
    trim = {"MALLOC_TRIM_THRESHOLD_": str(128 * 1024)}
    with ServerProcess(log_path=log, model_dir=small_model_dir, environ=trim) as server:
        answer = exchange(server.port, classify(NORMAL))
        assert answer.status == 200
        for _ in range(5):  # warm up: first requests allocate caches that are not growth
            exchange(server.port, classify(js({"sentences": ["a"] * 1000})))
        assert server.process is not None
        pid = server.process.pid
        with PeakRss(pid) as peak:
            yield HostileServer(server, peak, rss_bytes(pid), answer.json())
        assert_no_leak(
            "\n".join(
                line for line in server.log().splitlines() if '"logger": "sitrep.access"' in line
            )
        )


def check_normal_request(hostile: HostileServer) -> None:
    """The server answers a normal request exactly as before the hostile one."""
    answer = exchange(hostile.server.port, classify(NORMAL))
    hostile.requests += 1
    assert answer.status == 200, answer
    got, expected = answer.json(), hostile.normal_answer
    assert got["model"] == expected["model"]
    ((result,), (wanted,)) = got["results"], expected["results"]
    assert result["labels"] == wanted["labels"]
    assert result["scores"] == pytest.approx(wanted["scores"], abs=1e-12)


def check_refusal(answer: RawResponse, case: Hostile) -> None:
    assert answer.status == case.status, f"{case.name}: {answer}"
    if case.problem:
        assert answer.content_type == "application/problem+json", answer
        problem = answer.json()
        assert problem["status"] == case.status
        assert problem["title"]
        assert case.says in problem["detail"] or case.says in json.dumps(problem), problem
    assert_no_leak(answer.body.decode("utf-8", "replace"), "a" * 100, "x" * 100)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_request_is_refused_and_the_next_one_is_served(
    hostile: HostileServer, case: Hostile
) -> None:
    port = hostile.server.port
    if case.stream is not None:
        answer = exchange_streaming(port, b"".join(case.parts), case.stream())
    else:
        answer = exchange(port, case.parts)
    hostile.requests += 1
    check_refusal(answer, case)
    check_normal_request(hostile)
    hostile.tried.append(case.name)


@dataclass(frozen=True)
class Slow:
    """A client too slow to be worth waiting for: the server must hang up on it."""

    name: str
    burst: bytes  # sent at once
    drip: bytes = b""  # then one byte every `every` seconds; nothing: the client just waits
    every: float = 0.5


SLOW_CLIENTS = (
    Slow(
        "slowloris-head", b"GET /healthz HTTP/1.1\r\n", b"Host: 127.0.0.1\r\nX-Pad: " + b"a" * 200
    ),
    Slow("slowloris-body", head(4000), b'{"sentences": ["' + b"x" * 4000),
    Slow("idle-after-connect", b""),
    Slow("idle-after-request-line", b"GET /healthz HTTP/1.1\r\n"),
    Slow("idle-mid-header", b"GET /healthz HTTP/1.1\r\nHost: 127.0"),
    Slow("body-shorter-than-declared", head(1000) + b'{"sentences": ["x"]}'),
    Slow("chunked-body-never-ends", head(None, CHUNKED) + b"10\r\n" + b'{"sentences": ["'),
)
GIVE_UP_AFTER = 60.0  # the server cuts slow clients after about 10 s; this bounds the test
CROWD = 48  # slowloris connections at once, on top of the named slow clients


def test_slow_clients_are_cut_off_while_others_are_served(hostile: HostileServer) -> None:
    """The named slow clients and a crowd of slowloris connections at once: every one is cut
    off, and normal requests are answered meanwhile."""
    port = hostile.server.port
    stop = threading.Event()
    served: list[int] = []

    def normal_requests() -> None:
        while not stop.wait(0.5):
            check_normal_request(hostile)
            served.append(1)

    crowd = [Slow(f"crowd-{i}", *astuple(SLOW_CLIENTS[0])[1:3], every=1.0) for i in range(CROWD)]
    clients = (*SLOW_CLIENTS, *crowd)
    with ThreadPoolExecutor(len(clients) + 1) as pool:
        checker = pool.submit(normal_requests)
        futures = {
            client.name: pool.submit(
                slow_client,
                port,
                client.burst,
                client.drip,
                every=client.every,
                give_up_after=GIVE_UP_AFTER,
            )
            for client in clients
        }
        outcomes = {name: future.result() for name, future in futures.items()}
        stop.set()
        checker.result()
    for name, outcome in outcomes.items():
        assert outcome.closed, f"{name}: still connected after {outcome.seconds:.0f} s"
        if outcome.answer:
            assert outcome.answer.startswith(b"HTTP/1.1 408 "), (name, outcome.answer[:300])
    assert served, "no normal request was answered while slow clients were connected"
    hostile.tried.extend(client.name for client in SLOW_CLIENTS)
    hostile.requests += len(outcomes)
    slowest = max(outcome.seconds for outcome in outcomes.values())
    record_figure(
        "slow clients",
        f"{len(SLOW_CLIENTS)} kinds and {CROWD} slowloris connections at once, all cut off "
        f"(the last after {slowest:.1f} s); {len(served)} normal requests served meanwhile",
    )


def test_memory_stays_within_the_body_limit(hostile: HostileServer) -> None:
    """After the whole table, and at its worst moment, the server holds less extra memory than
    one body at the limit (runs last: it judges what the tests above did)."""
    if len(hostile.tried) < len(CASES) + len(SLOW_CLIENTS):
        pytest.skip("judges the hostile table; run together with it")
    assert hostile.server.process is not None
    after = rss_bytes(hostile.server.process.pid)
    growth, peak = after - hostile.baseline_rss, hostile.peak.bytes - hostile.baseline_rss
    record_figure(
        "hostile inputs",
        f"{len(hostile.tried)} cases, {hostile.requests} requests, 0 failures; server RSS "
        f"{hostile.baseline_rss / MiB:.0f} MiB, growth {growth / MiB:+.1f} MiB, "
        f"peak {peak / MiB:+.1f} MiB (body limit {BODY_LIMIT / MiB:.0f} MiB)",
    )
    assert growth < BODY_LIMIT, f"RSS grew by {growth / MiB:.1f} MiB"
    assert peak < 8 * BODY_LIMIT, f"RSS peaked {peak / MiB:.1f} MiB above the start"
