"""Batched and fast-path predictions equal plain scikit-learn predictions."""

from __future__ import annotations

import asyncio
import threading
import time
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from service.artifact import ModelArtifact, bundled_model_dir, load_artifact
from service.batching import MicroBatcher
from service.classifier import Classifier
from service.config import Settings
from tests.service.conftest import ClientFactory

TEXTS = [
    "Two soldiers were killed when their vehicle hit a mine.",
    "A drone hit a bus station, wounding eleven civilians.",
    "The president vowed to rebuild every destroyed school.",
    "Forecasters expect heavy snow on the northern front next week.",
    "The delegations met for a third round of talks.",
] * 8


def test_concurrent_callers_get_their_own_rows(small_model_dir: Path) -> None:
    classifier = Classifier(load_artifact(small_model_dir))
    alone = classifier.probabilities(TEXTS)

    async def run() -> list[np.ndarray]:
        batcher = MicroBatcher(max_sentences=16, wait_seconds=0.005, max_big_batches=2)
        batcher.start()
        try:
            return await asyncio.gather(
                *(batcher.probabilities(classifier, [text]) for text in TEXTS),
                batcher.probabilities(classifier, TEXTS[:3]),
                batcher.probabilities(classifier, TEXTS),  # larger than a batch: runs alone
            )
        finally:
            await batcher.stop()

    results = asyncio.run(run())
    for index, rows in enumerate(results[: len(TEXTS)]):
        np.testing.assert_allclose(rows, alone[index : index + 1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(results[-2], alone[:3], rtol=0, atol=1e-12)
    np.testing.assert_allclose(results[-1], alone, rtol=0, atol=1e-12)


def test_a_batch_never_mixes_two_models(small_model_dir: Path) -> None:
    first = Classifier(load_artifact(small_model_dir))
    second = Classifier(load_artifact(small_model_dir))
    second.probabilities = lambda texts: np.full((len(texts), 5), 0.5)  # type: ignore[method-assign]

    async def run() -> list[np.ndarray]:
        batcher = MicroBatcher(max_sentences=64, wait_seconds=0.01, max_big_batches=2)
        batcher.start()
        try:
            return await asyncio.gather(
                batcher.probabilities(first, TEXTS[:1]),
                batcher.probabilities(second, TEXTS[:1]),
            )
        finally:
            await batcher.stop()

    from_first, from_second = asyncio.run(run())
    np.testing.assert_allclose(from_first, first.probabilities(TEXTS[:1]))
    assert (from_second == 0.5).all()


def test_the_batcher_waits_for_company_only_while_requests_come_together(
    small_model_dir: Path,
) -> None:
    """A caller sending one request at a time never waits out the window; after a shared batch,
    the next request waits for others to join it."""
    classifier = Classifier(load_artifact(small_model_dir))
    batches: list[int] = []
    plain = classifier.probabilities

    def recorded(texts: list[str]) -> np.ndarray:
        batches.append(len(texts))
        return plain(texts)

    classifier.probabilities = recorded  # type: ignore[method-assign]

    async def run() -> None:
        # A window of a minute: any wait would time out the calls below.
        batcher = MicroBatcher(max_sentences=2, wait_seconds=60, max_big_batches=2)
        batcher.start()
        try:
            for text in TEXTS[:3]:  # one at a time
                await asyncio.wait_for(batcher.probabilities(classifier, [text]), 10)
            await asyncio.wait_for(
                asyncio.gather(*(batcher.probabilities(classifier, [t]) for t in TEXTS[:2])), 10
            )
            # The last batch was shared: this one waits for a second request to fill it.
            alone = asyncio.ensure_future(batcher.probabilities(classifier, TEXTS[:1]))
            await asyncio.sleep(0.2)
            assert not alone.done()
            await asyncio.wait_for(batcher.probabilities(classifier, TEXTS[1:2]), 10)
            await alone
        finally:
            await batcher.stop()

    asyncio.run(run())
    assert batches == [1, 1, 1, 2, 2]


@pytest.mark.parametrize("at_once", [1, 2, 3])
def test_big_requests_run_at_most_so_many_at_a_time_and_all_get_answers(
    small_model_dir: Path, at_once: int
) -> None:
    """Eight big requests at once would hold eight batches' memory for no gain in speed."""
    classifier = Classifier(load_artifact(small_model_dir))
    running, most = 0, 0
    lock = threading.Lock()
    plain = classifier.probabilities

    def counted(texts: list[str]) -> np.ndarray:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)  # long enough for the others to try to start
        with lock:
            running -= 1
        return plain(texts)

    classifier.probabilities = counted  # type: ignore[method-assign]

    async def run() -> list[np.ndarray]:
        batcher = MicroBatcher(max_sentences=4, wait_seconds=0.001, max_big_batches=at_once)
        batcher.start()
        try:
            return await asyncio.gather(
                *(batcher.probabilities(classifier, TEXTS[i : i + 8]) for i in range(8))
            )
        finally:
            await batcher.stop()

    results = asyncio.run(run())
    assert most == at_once
    for start, rows in enumerate(results):
        np.testing.assert_allclose(rows, plain(TEXTS[start : start + 8]), rtol=0, atol=1e-12)


@given(st.lists(st.text(max_size=120), min_size=1, max_size=8))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fast_features_equal_scikit_learn_on_any_text(texts: list[str]) -> None:
    """FastTfidf's n-gram search must agree with scikit-learn's analyzers on every input."""
    artifact, classifier = _bundled()
    expected = artifact.estimator.predict_proba(texts)
    np.testing.assert_allclose(classifier.probabilities(texts), expected, rtol=0, atol=1e-9)


@cache
def _bundled() -> tuple[ModelArtifact, Classifier]:
    artifact = load_artifact(bundled_model_dir())
    return artifact, Classifier(artifact)


def test_a_sentence_gets_the_same_bits_in_any_batch() -> None:
    """Small and large batches take different arithmetic paths; neither may change a score."""
    _, classifier = _bundled()
    alone = np.vstack([classifier.probabilities([text]) for text in TEXTS[:5]])
    for batch in (TEXTS[:5], TEXTS[:5] * 3, TEXTS[:5] * 20):
        assert np.array_equal(classifier.probabilities(batch)[:5], alone)


def test_the_batch_settings_reach_each_workers_batcher(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SITREP_BATCH_MAX_SENTENCES", "64")
    monkeypatch.setenv("SITREP_BIG_BATCHES_AT_ONCE", "3")
    batcher = make_client().app.state.batcher  # type: ignore[attr-defined]
    assert (batcher.max_sentences, batcher.max_big_batches) == (64, 3)
    with pytest.raises(ValidationError, match="big_batches_at_once"):
        Settings(big_batches_at_once=0)
