"""FastTfidf computes exactly what scikit-learn's TF-IDF vectorizers compute."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

from service import features
from service.artifact import load_artifact
from service.classifier import Classifier
from service.features import (
    WORD_TOKEN_PATTERN,
    FastTfidf,
    _word_tokens,
    _WordGrams,
)
from training.corpus import read_corpus

CORPUS = [
    "Two soldiers were killed when their vehicle hit a mine near Bakhmut.",
    "A drone hit a bus station, wounding eleven civilians — the mayor said.",
    "The president vowed to rebuild every destroyed school; 'we won't forget'.",
    "Forecasters expect heavy snow on the northern front next week.",
    "al-Fashir: RSF shelling kills 12, health ministry says",
    "Kyiv’s air force said it downed 23 of 26 Shahed drones overnight",
    "the the the war war: 1,200 dead?  yes -- 1,200",
    "Café owner in Zaporizhzhia: 'nobody's coming back'",
    "x y z a b c — single letters and a-b-c hyphens, don't 'quote' me",
]
PROBES = [
    *CORPUS,
    "",
    "   ",
    "Soldiers soldiers SOLDIERS killed killed",
    "unknownword another-unknown 'quoted' -dash- a--b",
    "Ünïcödé àccents and cafe\u0301 combining marks",
    "mine mine mine\tnear\nBakhmut\u00a0bus",
    "a",
    # Preprocessing that depends on the word: a final sigma, a dotted capital I that lowercases
    # to two characters, a ligature, and a diaeresis whose decomposition is a space.
    "ΟΔΟΣ ΟΔΟΣ. İstanbul ﬁre SOLDIERS¨KILLED a¨b",
]


def _sitrep_vectorizers() -> tuple[TfidfVectorizer, TfidfVectorizer]:
    return (
        TfidfVectorizer(
            ngram_range=(1, 2),
            token_pattern=WORD_TOKEN_PATTERN,
            sublinear_tf=True,
            strip_accents="unicode",
        ),
        TfidfVectorizer(
            analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, strip_accents="unicode"
        ),
    )


def _union(*vectorizers: TfidfVectorizer) -> FeatureUnion:
    union = FeatureUnion([(f"v{number}", v) for number, v in enumerate(vectorizers)])
    return union.fit(CORPUS)


@pytest.mark.parametrize(
    "vectorizers",
    [
        _sitrep_vectorizers(),  # word 1-2 with its token pattern, char_wb 3-5
        # trigrams, scikit-learn's default token pattern, raw counts, no accent stripping
        (TfidfVectorizer(ngram_range=(1, 3)),),
        (TfidfVectorizer(ngram_range=(2, 3), token_pattern=WORD_TOKEN_PATTERN),),
        (TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), lowercase=False),),
    ],
    ids=["sitrep", "word-1-3", "word-2-3", "char-2-4-cased"],
)
def test_fast_tfidf_equals_scikit_learn(vectorizers: tuple[TfidfVectorizer, ...]) -> None:
    union = _union(*vectorizers)
    fast = FastTfidf.from_union(union)
    assert fast is not None
    found = fast.transform(PROBES)
    dense = np.zeros((len(PROBES), fast.width))
    np.add.at(dense, (found.rows, found.columns), found.values)
    np.testing.assert_allclose(dense, union.transform(PROBES).toarray(), rtol=0, atol=1e-12)


def test_unsupported_vectorizers_are_refused() -> None:
    """Anything FastTfidf cannot copy exactly falls back to scikit-learn (None)."""
    assert (
        FastTfidf.from_union(_union(TfidfVectorizer(analyzer="char", ngram_range=(2, 3)))) is None
    )
    assert FastTfidf.from_union(_union(TfidfVectorizer(stop_words=["the"]))) is None
    assert FastTfidf.from_union(_union(TfidfVectorizer(binary=True))) is None


def _dense(fast: FastTfidf, texts: list[str]) -> np.ndarray:
    found = fast.transform(texts)
    dense = np.zeros((len(texts), fast.width))
    np.add.at(dense, (found.rows, found.columns), found.values)
    return dense


def test_words_met_before_change_no_answer_and_are_kept_within_a_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each word's n-grams are worked out once and then recalled, up to a limit of words; an
    answer never depends on which words came before."""
    monkeypatch.setattr(features, "SEEN_WORDS", 15)
    union = _union(*_sitrep_vectorizers())
    fast = FastTfidf.from_union(union)
    assert fast is not None
    expected = union.transform(PROBES).toarray()
    # Alone, then together in two orders (all words met before, then a mix), then again
    # after the limit has made the memory start over.
    for batch in ([[probe] for probe in PROBES], [PROBES], [PROBES[::-1]], [PROBES * 3]):
        for texts in batch:
            rows = [PROBES.index(text) for text in texts]
            np.testing.assert_allclose(_dense(fast, texts), expected[rows], rtol=0, atol=1e-12)
            assert 0 < len(fast._met) <= 15


def test_concurrent_batches_get_the_answers_they_would_get_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Big requests run on threads of their own, all sharing one model's memory of words."""
    # PROBES hold 28 words outside the vocabulary: batches of a few probes find some words
    # remembered and some not, and the memory fills and starts over many times.
    monkeypatch.setattr(features, "SEEN_WORDS", 14)
    union = _union(*_sitrep_vectorizers())
    fast = FastTfidf.from_union(union)
    assert fast is not None
    pick = np.random.default_rng(0).choice
    batches = [list(pick(PROBES, size=4)) for _ in range(200)]
    expected = [union.transform(texts).toarray() for texts in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda texts: _dense(fast, texts), batches))
    for answer, wanted in zip(answers, expected, strict=True):
        np.testing.assert_allclose(answer, wanted, rtol=0, atol=1e-12)


@given(st.text(alphabet=st.sampled_from("AaBbΣσςİi¨\u0301\u00a0ﬁ1'- .,"), max_size=30))
@settings(max_examples=200)
def test_words_preprocessed_one_at_a_time_get_the_features_of_the_whole_text(text: str) -> None:
    """FastTfidf lowercases and strips accents word by word, scikit-learn text by text."""
    union = _union(*_sitrep_vectorizers())
    fast = FastTfidf.from_union(union)
    assert fast is not None
    np.testing.assert_allclose(
        _dense(fast, [text, text.upper()]),
        union.transform([text, text.upper()]).toarray(),
        rtol=0,
        atol=1e-12,
    )


@given(st.text(alphabet=st.sampled_from("ab1_'’- \t\né\u0301.,()“—#"), max_size=40) | st.text())
@settings(max_examples=300)
def test_word_tokens_equal_the_token_pattern(text: str) -> None:
    assert _word_tokens(text) == re.findall(WORD_TOKEN_PATTERN, text)


WORDS = st.text(alphabet=st.sampled_from("ab1_'’-.,()“”—#é\u0301"), min_size=1, max_size=8)


@given(st.lists(WORDS, max_size=20))
@settings(max_examples=300)
def test_words_get_the_codes_of_their_tokens(words: list[str]) -> None:
    """Words in punctuation take a short cut to their tokens; it must lead to the same ones."""
    vocabulary = {gram: index for index, gram in enumerate(["a", "b", "ab", "a-b", "1", "a b"])}
    grams = _WordGrams(True, _word_tokens, vocabulary, 1, 2)
    expected = [
        tuple(grams.codes.get(token, 0) for token in re.findall(WORD_TOKEN_PATTERN, word))
        for word in words
    ]
    assert grams._code_each(words) == expected


def test_classifier_falls_back_to_scikit_learn_exactly(
    small_model_dir: Path, small_data: tuple[Path, Path]
) -> None:
    """A model whose vectorizers FastTfidf cannot mirror still gets predict_proba's answers."""
    artifact = load_artifact(small_model_dir)
    pipeline = clone(artifact.estimator)
    union = pipeline.named_steps["features"]
    union.transformer_list = [("char", TfidfVectorizer(analyzer="char", ngram_range=(2, 3)))]
    corpus = read_corpus(small_data[0])
    pipeline.fit(corpus.texts, corpus.graded_label_matrix())
    fallback = Classifier(replace(artifact, estimator=pipeline))
    assert fallback._fast is None
    probes = [*CORPUS, *PROBES[-4:]] * 5  # over 32 texts: the sparse-matrix path as well
    for texts in (probes[:1], probes[:7], probes):
        expected = pipeline.predict_proba(texts)
        np.testing.assert_allclose(fallback.probabilities(texts), expected, rtol=0, atol=1e-9)
