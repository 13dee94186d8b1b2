"""Properties of the classify routes for any Unicode text (Hypothesis).

Control characters, emoji, right-to-left and zero-width marks, combining marks, lone surrogates
(escaped in JSON, or raw in the bytes): every request gets a valid result or a clear 4xx; results
keep order and length; a batch answers each sentence as it would alone; scores are probabilities
and `labels`, `label` and `confidence` follow from the scores and the thresholds.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from service.app import create_app
from service.config import Settings
from service.labels import LABELS, OTHER
from tests.reliability.conftest import assert_no_leak, record_figure

SURROGATE = re.compile(r"[\ud800-\udfff]")
TRICKY = (
    *("\x00", "\x07", "\x1b", "\x7f", "\x85", "\t", "\r\n", "\u2028", "\u2029"),  # control
    *("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"),  # zero-width
    *("\u202e", "\u202d", "\u2066", "\u2069", "\u200f", "\u061c"),  # bidirectional controls
    *("\u0301", "\u0308", "\u20dd", "\u0489", "e\u0301" * 3),  # combining marks
    *("🙂", "👩‍👩‍👧", "🇺🇦", "🏳️‍🌈", "\U0001f9ff"),  # emoji, joiner sequences, flags
    *("שלום עולם", "قصف المستشفى", "Обстріл лікарні", "空袭", "ﷺ", "\U0010ffff", "\uffff"),
    *("\u00a0", "\u3000", "\ufffd", "﷽"),
    *("\ud800", "\udbff", "\udc00", "\udfff"),  # lone surrogates
    "\ud83d\ude00",  # two surrogates that JSON escapes as a pair: one character, 😀
)
WORDS = (
    "soldiers",
    "were killed",
    "a missile hit the hospital",
    "the minister condemned",
    "analysts expect",
    "talks resumed",
    "drone",
    "tank destroyed",
)
piece = st.one_of(
    st.characters(exclude_categories=()),  # any code point, surrogates included
    st.sampled_from(TRICKY),
    st.sampled_from(WORDS).map(lambda word: f" {word} "),
)
any_text = st.lists(piece, max_size=30).map("".join)
clean_piece = piece.filter(lambda text: not SURROGATE.search(text))
clean_sentence = st.tuples(st.lists(clean_piece, max_size=20).map("".join), st.sampled_from(WORDS))
clean_sentence_text = clean_sentence.map(lambda parts: f"{parts[0]} {parts[1]}")

EXAMPLES: dict[str, int] = {}


def count(name: str) -> None:
    EXAMPLES[name] = EXAMPLES.get(name, 0) + 1


@pytest.fixture(scope="module")
def client(small_model_dir: Path) -> Iterator[TestClient]:
    app = create_app(Settings(model_dir=small_model_dir))
    with TestClient(app, raise_server_exceptions=False) as opened:
        yield opened
    record_figure(
        "property tests",
        ", ".join(f"{name}: {tried} examples" for name, tried in EXAMPLES.items()) + "; 0 failures",
    )


@pytest.fixture(scope="module")
def thresholds(client: TestClient) -> dict[str, float]:
    return dict(client.get("/v1/model").json()["thresholds"])


def encode(payload: dict[str, Any], *, escaped: bool) -> bytes:
    """JSON as a client may send it: non-ASCII as \\u escapes, or as raw UTF-8 (where a lone
    surrogate can only be sent as the bytes that encode it, which are not UTF-8)."""
    text = json.dumps(payload, ensure_ascii=escaped)
    return text.encode("utf-8", "surrogatepass")


def post(client: TestClient, path: str, body: bytes) -> Any:
    return client.post(path, content=body, headers={"content-type": "application/json"})


def server_view(body: bytes) -> Any:
    """The JSON as the server reads it: a high and a low surrogate that happen to be neighbours
    are escaped as a pair, which the server reads as one character."""
    return json.loads(body.decode("utf-8"))


def expected_status(body: bytes, texts: list[str]) -> int:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return 400
    if any(SURROGATE.search(text) for text in texts):
        return 400
    if any(not text.strip() for text in texts):
        return 422
    return 200


def assert_consistent(result: dict[str, Any], thresholds: dict[str, float]) -> None:
    """Scores are probabilities; labels, label and confidence follow from them."""
    scores = result["scores"]
    assert list(scores) == list(LABELS)
    assert all(math.isfinite(score) and 0.0 <= score <= 1.0 for score in scores.values())
    passing = [label for label in LABELS if scores[label] >= thresholds[label]]
    if not passing or max(passing, key=scores.__getitem__) == OTHER:
        assert result["labels"] == [OTHER]
    else:
        assert result["labels"] == sorted(
            (label for label in passing if label != OTHER), key=lambda label: -scores[label]
        )
    assert result["label"] == result["labels"][0]
    assert result["confidence"] == scores[result["label"]]


def assert_clear_refusal(response: Any, status: int, texts: list[str]) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert problem["detail"]
    assert_no_leak(response.text, *(text for text in texts if len(text.strip()) >= 12))


@settings(max_examples=300, deadline=None)
@given(
    sentences=st.lists(any_text, min_size=1, max_size=6),
    explain=st.booleans(),
    escaped=st.booleans(),
)
def test_any_text_gets_a_valid_result_or_a_clear_4xx(
    client: TestClient,
    thresholds: dict[str, float],
    sentences: list[str],
    explain: bool,
    escaped: bool,
) -> None:
    count("any text")
    body = encode({"sentences": sentences, "explain": explain}, escaped=escaped)
    view = server_view(body)["sentences"] if escaped else sentences
    status = expected_status(body, view)
    response = post(client, "/v1/classify", body)
    if status != 200:
        assert_clear_refusal(response, status, view)
        return
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [result["text"] for result in results] == view  # same order, same length
    for result in results:
        assert_consistent(result, thresholds)
        if explain:
            assert set(result["evidence"]) == set(result["labels"])
            for terms in result["evidence"].values():
                assert all(term["weight"] > 0 for term in terms)
        else:
            assert "evidence" not in result


@settings(max_examples=60, deadline=None)
@given(sentences=st.lists(clean_sentence_text, min_size=2, max_size=6))
def test_a_batch_answers_each_sentence_as_it_would_alone(
    client: TestClient, sentences: list[str]
) -> None:
    count("batch vs alone")
    together = post(client, "/v1/classify", encode({"sentences": sentences}, escaped=False))
    backwards = post(client, "/v1/classify", encode({"sentences": sentences[::-1]}, escaped=True))
    assert together.status_code == backwards.status_code == 200
    results = together.json()["results"]
    assert [result["text"] for result in results] == sentences
    for sentence, result, reordered in zip(
        sentences, results, backwards.json()["results"][::-1], strict=True
    ):
        alone = post(client, "/v1/classify", encode({"sentences": [sentence]}, escaped=False))
        (single,) = alone.json()["results"]
        for other in (single, reordered):  # the same answer alone and in any position
            assert other["text"] == sentence
            assert other["labels"] == result["labels"]
            for label in LABELS:
                assert math.isclose(other["scores"][label], result["scores"][label], abs_tol=1e-12)


separator = st.sampled_from((". ", "? ", "! ", "\n\n", " ", "\u2029", "。", ""))
document_text = st.lists(st.tuples(any_text, separator), min_size=1, max_size=6).map(
    lambda parts: "".join(text + sep for text, sep in parts)
)


@settings(max_examples=200, deadline=None)
@given(text=document_text, escaped=st.booleans())
def test_any_document_gets_sentences_with_true_offsets_or_a_clear_4xx(
    client: TestClient, thresholds: dict[str, float], text: str, escaped: bool
) -> None:
    count("documents")
    body = encode({"text": text}, escaped=escaped)
    view = server_view(body)["text"] if escaped else text
    status = expected_status(body, [view])
    response = post(client, "/v1/classify/document", body)
    if status != 200:
        assert_clear_refusal(response, status, [view])
        return
    assert response.status_code == 200, response.text
    answer = response.json()
    previous_end = 0
    for sentence in answer["sentences"]:
        assert view[sentence["start"] : sentence["end"]] == sentence["text"]
        assert sentence["start"] >= previous_end
        previous_end = sentence["end"]
        assert_consistent(sentence, thresholds)
    assert answer["counts"] == {
        label: sum(sentence["label"] == label for sentence in answer["sentences"])
        for label in LABELS
    }
