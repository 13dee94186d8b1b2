"""Batched predictions equal one-by-one predictions, whatever the interleaving."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from service.artifact import load_artifact
from service.batching import MicroBatcher
from service.classifier import Classifier

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
        batcher = MicroBatcher(max_sentences=16, wait_seconds=0.005)
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
        batcher = MicroBatcher(max_sentences=64, wait_seconds=0.01)
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
