"""Fixtures of the reliability tests: two genuinely different models, leak checks, and the
figures of the run (printed at the end of the session, copied into docs/reliability.md)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.artifact import list_versions
from tests.conftest import REPO, TRAIN_DATA, sample_corpus, train_small

USER_KEY = "user-key-0123456789abcdef"
ADMIN_KEY = "admin-key-0123456789abcdef"
# What must never reach a caller: a traceback, a source file, or where things live on disk.
LEAK_MARKERS = ("Traceback", 'File "', ".py", str(REPO), "/tmp/", "site-packages")

FIGURES: dict[str, str] = {}


def record_figure(name: str, text: str) -> None:
    """Remember one line of figures for the summary at the end of the run."""
    FIGURES[name] = text


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.write_sep("-", "reliability figures of this run")
        for name, text in FIGURES.items():
            terminalreporter.write_line(f"{name}: {text}")


def assert_no_leak(text: str, *secrets: str) -> None:
    """A response or log says nothing about the server's insides, nor any of `secrets`."""
    for marker in (*LEAK_MARKERS, *secrets):
        assert marker not in text, f"{marker!r} leaked in {text[:300]!r}"


@dataclass(frozen=True)
class TwoModels:
    """A model directory with two different artifacts: `old` and the later-trained `new`."""

    path: Path
    old: str
    new: str


@pytest.fixture(scope="session")
def two_models(
    tmp_path_factory: pytest.TempPathFactory, small_model_dir: Path, small_data: tuple[Path, Path]
) -> TwoModels:
    """The small model plus one trained on another sample, so their scores differ and every
    answer can be traced to the model that produced it (shared; tests must not modify it)."""
    folder = tmp_path_factory.mktemp("two-models")
    path = folder / "models"
    shutil.copytree(small_model_dir, path)
    (old,) = list_versions(path)
    other_sample = sample_corpus(TRAIN_DATA, folder / "other.jsonl", per_label=60, seed=11)
    new = train_small(path, other_sample, small_data[1]).name
    assert old != new
    return TwoModels(path, old, new)


@pytest.fixture
def two_models_copy(tmp_path: Path, two_models: TwoModels) -> TwoModels:
    """A private copy of `two_models`, for tests that add or damage artifacts."""
    path = tmp_path / "models"
    shutil.copytree(two_models.path, path)
    return TwoModels(path, two_models.old, two_models.new)


def log_entries(log: str) -> list[dict[str, object]]:
    """The JSON lines of a server log. A running server may be halfway through its last line:
    that line is left for the next read."""
    complete = log if log.endswith("\n") else log.rpartition("\n")[0]
    return [json.loads(line) for line in complete.splitlines() if line.startswith("{")]


def copy_artifact(model_dir: Path, source: str, name: str, created: str) -> str:
    """Copy artifact `source` as version `name`, stamped as trained at `created`."""
    target = model_dir / name
    shutil.copytree(model_dir / source, target)
    metadata = json.loads((target / "metadata.json").read_text())
    metadata["version"], metadata["created"] = name, created
    (target / "metadata.json").write_text(json.dumps(metadata))
    return name
