"""A big batch reuses the memory the previous one freed, instead of page-faulting it in again."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from service.allocator import keep_freed_memory

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="the allocator settings are glibc's",
)

# Classify 1,000 sentences with the bundled model three times; print the page faults of the last.
_PROBE = """
import json, resource, sys
from pathlib import Path
from service.allocator import keep_freed_memory
from service.artifact import bundled_model_dir, load_artifact
from service.classifier import Classifier

print(json.dumps({"set": keep_freed_memory()}) if sys.argv[1] == "on" else "{}")
classifier = Classifier(load_artifact(bundled_model_dir()))
lines = Path(sys.argv[2]).read_text(encoding="utf-8").splitlines()[:1000]
texts = [json.loads(line)["text"] for line in lines]
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    classifier.probabilities(texts)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"faults": faults}))
"""


def _last_run_faults(mode: str) -> tuple[dict[str, bool], int]:
    data = Path(__file__).parents[2] / "data" / "test.jsonl"
    environ = {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode, str(data)],
        capture_output=True,
        text=True,
        check=True,
        env=environ,
        timeout=120,
    )
    first, last = done.stdout.splitlines()[-2:]
    return json.loads(first), json.loads(last)["faults"]


def test_a_repeated_big_batch_does_not_fault_its_memory_in_again() -> None:
    outcome, faults = _last_run_faults("on")
    _, default_faults = _last_run_faults("off")
    print(f"page faults of a 1,000-sentence batch: {default_faults} by default, {faults} kept")
    assert outcome == {"set": True}
    # glibc's defaults map and unmap every big array: thousands of faults a batch.
    assert default_faults > 500
    assert faults < default_faults / 10


def test_an_operators_malloc_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert keep_freed_memory() is False
