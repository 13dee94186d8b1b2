"""Metrics: observing a batch's confidences at once exposes what observing them one by one does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.observability import observe_many

BUCKETS = (0.3, 0.5, 0.9, 1.0)
# On the bounds, between them, below the first and above the last.
VALUES = [0.0, 0.3, 0.30001, 0.5, 0.7, 0.9, 0.95, 1.0, 1.5, 0.5, 0.5]


def _samples(registry: CollectorRegistry) -> dict[str, float]:
    text = generate_latest(registry).decode()
    return {
        f"{sample.name}{sorted(sample.labels.items())}": sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram("confidence", "test", buckets=BUCKETS, registry=registry)


@pytest.mark.parametrize("values", [VALUES, VALUES[:3], []], ids=["many", "few", "none"])
def test_observe_many_exposes_what_observing_one_by_one_does(values: list[float]) -> None:
    one_by_one, at_once = CollectorRegistry(), CollectorRegistry()
    histogram = _histogram(one_by_one)
    for value in values:
        histogram.observe(value)
    observe_many(_histogram(at_once), values)
    expected, found = _samples(one_by_one), _samples(at_once)
    assert found.keys() == expected.keys()
    for name, value in expected.items():
        assert found[name] == pytest.approx(value, rel=1e-12), name
    cumulative = found["confidence_bucket[('le', '0.5')]"]  # buckets are exposed cumulative
    assert cumulative == sum(value <= 0.5 for value in values)


def test_observe_many_adds_up_across_worker_processes(tmp_path: Path) -> None:
    """With several workers, each process writes its own files and /metrics adds them up."""
    script = f"""
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from service.observability import observe_many
histogram = Histogram("confidence", "test", buckets={BUCKETS!r})
observe_many(histogram, {VALUES!r})
registry = CollectorRegistry()
MultiProcessCollector(registry)
print(generate_latest(registry).decode())
"""
    environment = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": ""}
    for _ in range(2):  # two processes, as two workers
        output = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env=environment,
            cwd=Path(__file__).resolve().parents[2],
        ).stdout
    assert 'confidence_bucket{le="0.5"} 12.0' in output
    assert "confidence_count 22.0" in output
