"""A serving worker collects garbage far less often."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service import collector
from service.app import create_app
from service.config import Settings

PYTHON_DEFAULT = (700, 10, 10)


@pytest.fixture
def python_default_thresholds() -> Iterator[None]:
    """Start from CPython's own thresholds; leave the session's as they were."""
    session = gc.get_threshold()
    gc.set_threshold(*PYTHON_DEFAULT)
    yield
    gc.set_threshold(*session)


def _collections_over_300_requests(model_dir: Path) -> int:
    """Young-generation collections while serving 300 single-sentence requests."""
    with TestClient(create_app(Settings(model_dir=model_dir))) as client:
        before = gc.get_stats()[0]["collections"]
        for number in range(300):
            sentence = f"Two soldiers were killed near checkpoint {number}."
            assert client.post("/v1/classify", json={"sentences": [sentence]}).status_code == 200
        return int(gc.get_stats()[0]["collections"] - before)


@pytest.mark.usefixtures("python_default_thresholds")
def test_serving_collects_garbage_far_less_often(
    small_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    collections = _collections_over_300_requests(small_model_dir)
    monkeypatch.setattr(collector, "FIRST_GENERATION_THRESHOLD", PYTHON_DEFAULT[0])
    default_collections = _collections_over_300_requests(small_model_dir)
    print(f"collections in 300 requests: {default_collections} by default, {collections} now")
    assert collections <= 3 < 10 <= default_collections
