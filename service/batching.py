"""Collect concurrent requests into one prediction.

Single-sentence requests are the common case, and most of a prediction's cost is per call, not
per sentence. The batcher gathers what arrives within a short window (or until a batch is
full), runs one prediction in a worker thread, and hands each caller its own rows. It waits
only while requests come together: after a batch of one request, the next batch takes what is
queued and goes, so a caller sending one request at a time is not kept waiting for company.

Each caller names the classifier it started with, so a model swap never changes an answer in
flight: a batch only ever mixes requests for the same classifier.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from service.classifier import Classifier


@dataclass
class _Pending:
    classifier: Classifier
    texts: list[str]
    future: asyncio.Future[npt.NDArray[np.float64]] = field(repr=False)


class MicroBatcher:
    """Batches `probabilities` calls across concurrent requests on one event loop."""

    def __init__(self, *, max_sentences: int, wait_seconds: float, max_big_batches: int) -> None:
        self.max_sentences = max_sentences
        self.wait_seconds = wait_seconds
        # Big requests run as batches of their own, at most this many at once. They hold the GIL
        # for most of their time, so more threads would add memory (a 1,000-sentence batch holds
        # ~12 MB while it runs), not speed.
        self.max_big_batches = max_big_batches
        self._big_batches = asyncio.Semaphore(max_big_batches)
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._last_batch_requests = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sitrep-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def probabilities(
        self, classifier: Classifier, texts: list[str]
    ) -> npt.NDArray[np.float64]:
        """Scores for `texts` from `classifier`, computed together with concurrent callers."""
        if len(texts) >= self.max_sentences or self._task is None:
            # A big request is a batch of its own; queueing it would only delay others.
            async with self._big_batches:
                return await asyncio.to_thread(classifier.probabilities, texts)
        future: asyncio.Future[npt.NDArray[np.float64]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(classifier, texts, future))
        return await future

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            size = len(first.texts)
            wait = self.wait_seconds if self._last_batch_requests > 1 else 0.0
            deadline = asyncio.get_running_loop().time() + wait
            while size < self.max_sentences:
                try:
                    if self._queue.empty():
                        remaining = deadline - asyncio.get_running_loop().time()
                        if remaining <= 0:
                            break
                        item = await asyncio.wait_for(self._queue.get(), remaining)
                    else:
                        item = self._queue.get_nowait()
                except TimeoutError:
                    break
                batch.append(item)
                size += len(item.texts)
            self._last_batch_requests = len(batch)
            for group in _by_classifier(batch):
                await self._predict(group)

    async def _predict(self, group: list[_Pending]) -> None:
        texts = [text for pending in group for text in pending.texts]
        try:
            rows = await asyncio.to_thread(group[0].classifier.probabilities, texts)
        except Exception as error:  # hand the failure to every caller; keep the loop alive
            for pending in group:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        start = 0
        for pending in group:
            end = start + len(pending.texts)
            if not pending.future.done():  # the caller may have gone away
                pending.future.set_result(rows[start:end])
            start = end


def _by_classifier(batch: list[_Pending]) -> list[list[_Pending]]:
    groups: dict[int, list[_Pending]] = {}
    for pending in batch:
        groups.setdefault(id(pending.classifier), []).append(pending)
    return list(groups.values())
