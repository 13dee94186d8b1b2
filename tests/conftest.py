"""Shared fixtures: a small model trained in a temporary directory from the committed corpus."""

from __future__ import annotations

import importlib.util
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.encoder import RUNTIME_MODULES
from training.pipeline import ModelParams
from training.train import TrainOptions, selection_profile, train

REPO = Path(__file__).resolve().parent.parent
TRAIN_DATA = REPO / "data" / "train.jsonl"
TEST_DATA = REPO / "data" / "test.jsonl"
DEV_DATA = REPO / "data" / "dev.jsonl"
SMALL_CANDIDATES = (ModelParams(C=4.0), ModelParams(C=4.0, char_ngrams=None))
ACCURATE_SMALL_CANDIDATES = (ModelParams(C=4.0, embedding_weight=1.0),)
HAS_ACCURATE_EXTRA = all(importlib.util.find_spec(module) for module in RUNTIME_MODULES)
HAS_FINETUNE_EXTRA = HAS_ACCURATE_EXTRA and all(
    importlib.util.find_spec(module) for module in ("torch", "transformers")
)
needs_accurate_extra = pytest.mark.skipif(
    not HAS_ACCURATE_EXTRA,
    reason="the accurate profile's packages are not installed: pip install '.[accurate]'",
)
needs_finetune_extra = pytest.mark.skipif(
    not HAS_FINETUNE_EXTRA,
    reason="fine-tuning needs PyTorch and transformers: pip install '.[finetune]'",
)


def texts_of(data: Path) -> list[str]:
    """The sentences of a JSON Lines corpus file, in file order."""
    return [json.loads(line)["text"] for line in data.read_text().splitlines()]


def hide_module(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """Make `module` look uninstalled to `importlib.util.find_spec`, as on a base install."""
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == module else real_find_spec(name, *args),
    )


def sample_corpus(source: Path, target: Path, per_label: int, seed: int = 7) -> Path:
    """A stratified sample of a committed corpus: `per_label` lines for each primary label."""
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line]
    random.Random(seed).shuffle(rows)
    picked: dict[str, int] = {}
    chosen = []
    for row in rows:
        if picked.get(row["labels"][0], 0) < per_label:
            picked[row["labels"][0]] = picked.get(row["labels"][0], 0) + 1
            chosen.append(row)
    target.write_text("".join(json.dumps(row) + "\n" for row in chosen), encoding="utf-8")
    return target


def train_small(
    model_dir: Path,
    data: Path,
    test: Path | None = None,
    seed: int = 0,
    profile: str = "fast",
    jobs: int = 1,
    finetune_epochs: int | None = None,
) -> Path:
    """Train on small data; an accurate model's encoder is fine-tuned for one epoch where
    PyTorch is installed, and kept as shipped where it is not."""
    if finetune_epochs is None:
        finetune_epochs = 1 if HAS_FINETUNE_EXTRA else 0
    options = TrainOptions(
        data=data,
        test=test,
        out=model_dir,
        seed=seed,
        folds=3,
        jobs=jobs,
        profile=profile,
        finetune_epochs=finetune_epochs,
    )
    kind = selection_profile(profile, finetune_epochs)
    candidates = ACCURATE_SMALL_CANDIDATES if kind == "accurate" else SMALL_CANDIDATES
    return train(options, lambda _: None, candidates=candidates)


@pytest.fixture(scope="session")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("data")
    return (
        sample_corpus(TRAIN_DATA, folder / "train.jsonl", per_label=60),
        sample_corpus(TEST_DATA, folder / "test.jsonl", per_label=15),
    )


@pytest.fixture(scope="session")
def small_model_dir(
    tmp_path_factory: pytest.TempPathFactory, small_data: tuple[Path, Path]
) -> Path:
    """A model directory holding one small artifact (shared; tests must not modify it)."""
    model_dir = tmp_path_factory.mktemp("models")
    train_small(model_dir, *small_data)
    return model_dir


@pytest.fixture(scope="session")
def accurate_model_dir(
    tmp_path_factory: pytest.TempPathFactory, small_data: tuple[Path, Path]
) -> Path:
    """A model directory holding one small accurate-profile artifact (shared; do not modify)."""
    if not HAS_ACCURATE_EXTRA:
        pytest.skip("the accurate profile's packages are not installed: pip install '.[accurate]'")
    model_dir = tmp_path_factory.mktemp("accurate-models")
    train_small(model_dir, *small_data, profile="accurate")
    return model_dir


@pytest.fixture
def model_dir_copy(tmp_path: Path, small_model_dir: Path) -> Iterator[Path]:
    """A private copy of the small model directory, for tests that change files."""
    import shutil

    target = tmp_path / "models"
    shutil.copytree(small_model_dir, target)
    return target
