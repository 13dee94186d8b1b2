"""Which model this worker serves, and how it is replaced without dropping a request.

A swap is one assignment of `current`: requests read it once when they start and finish on the
classifier they got, so in-flight requests are never affected. Loading and verification happen
in a thread before the swap; if they fail, the old classifier stays and the error says why.

With several workers, the version all of them should serve is written to a small state file in
the runtime directory shared by the workers; each worker polls it and follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from service.artifact import ArtifactError, load_artifact, newest_version
from service.classifier import Classifier
from service.observability import RELOADS, set_model_version

logger = logging.getLogger("sitrep.models")
STATE_FILE = "model-version"


@dataclass(frozen=True)
class ReloadOutcome:
    previous: str | None
    current: str


class ModelStore:
    """The current classifier of this worker and the machinery to replace it."""

    def __init__(self, model_dir: Path, runtime_dir: Path | None = None) -> None:
        self.model_dir = model_dir
        self.runtime_dir = runtime_dir
        self.current: Classifier | None = None
        self.last_error: str | None = None
        self._lock = asyncio.Lock()

    @property
    def ready(self) -> bool:
        return self.current is not None

    def load_initial(self, version: str | None) -> None:
        """Load the model to serve at start; on failure stay up, unready, and log why."""
        wanted = version or self._shared_version()
        try:
            self.current = _load_classifier(self.model_dir, wanted)
        except (ArtifactError, ValueError) as error:
            self.last_error = str(error)
            logger.error("no model loaded: %s", error, extra={"model_dir": str(self.model_dir)})
            return
        self.last_error = None
        _freeze_long_lived_objects()
        set_model_version(None, self.current.version)
        logger.info("model loaded", extra={"model_version": self.current.version})
        if self.runtime_dir is not None and self._shared_version() is None:
            self._publish(self.current.version)

    async def reload(self, version: str | None) -> ReloadOutcome:
        """Load, verify and swap in `version` (the newest when None); raise ArtifactError if bad."""
        async with self._lock:
            previous = self.current.version if self.current else None
            try:
                wanted = version if version is not None else newest_version(self.model_dir)
                classifier = await asyncio.to_thread(_load_classifier, self.model_dir, wanted)
            except (ArtifactError, ValueError) as error:
                RELOADS.labels(outcome="failed").inc()
                logger.error("reload refused; the previous model keeps serving: %s", error)
                raise
            self.current = classifier
            self.last_error = None
            self._publish(classifier.version)
            _freeze_long_lived_objects()
        RELOADS.labels(outcome="ok").inc()
        set_model_version(previous, classifier.version)
        logger.info(
            "model swapped", extra={"model_version": classifier.version, "previous": previous}
        )
        return ReloadOutcome(previous=previous, current=classifier.version)

    async def follow_shared_version(self, poll_seconds: float) -> None:
        """Keep this worker on the version another worker switched to (runs until cancelled)."""
        if self.runtime_dir is None:
            return
        failed: str | None = None
        while True:
            await asyncio.sleep(poll_seconds)
            wanted = self._shared_version()
            current = self.current.version if self.current else None
            if wanted is None or wanted in (current, failed):
                continue
            try:
                await self.reload(wanted)
            except (ArtifactError, ValueError):
                failed = wanted  # logged by reload; do not retry every poll

    def _shared_version(self) -> str | None:
        if self.runtime_dir is None:
            return None
        with contextlib.suppress(OSError):
            return (self.runtime_dir / STATE_FILE).read_text().strip() or None
        return None

    def _publish(self, version: str) -> None:
        if self.runtime_dir is None:
            return
        temporary = self.runtime_dir / f".{STATE_FILE}.{os.getpid()}"
        temporary.write_text(version + "\n")
        os.replace(temporary, self.runtime_dir / STATE_FILE)


def _freeze_long_lived_objects() -> None:
    """Keep the garbage collector's full passes off the model and the libraries.

    A loaded worker holds about 130,000 objects that live as long as it does, and every full
    collection walks all of them: about 70 ms, during which no request moves. `gc.freeze`
    takes them out of the collector's sight. Unfreezing first lets a replaced model's objects
    be collected when the next one is swapped in.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _load_classifier(model_dir: Path, version: str | None) -> Classifier:
    """Verify, load and prepare an artifact; whatever goes wrong is an ArtifactError.

    A verified checksum only proves the file is the one the metadata names: a forged or foreign
    artifact (another estimator, garbled metadata) can still fail in any way while it is read or
    prepared, and must be refused like any other bad artifact, not crash the service.
    """
    try:
        return Classifier(load_artifact(model_dir, version))
    except ArtifactError:
        raise
    except Exception as error:
        name = f"artifact {version!r}" if version is not None else "the newest artifact"
        raise ArtifactError(
            f"{name} is not a sitrep model: {type(error).__name__}: {error}"
        ) from error
