"""The model that ships in models/: provenance, integrity, exactness, and behaviour."""

from __future__ import annotations

import hashlib
import re
from functools import cache

import numpy as np
import pytest
import sklearn

from service.artifact import (
    LATEST_FILE,
    ModelArtifact,
    bundled_model_dir,
    load_artifact,
    newest_version,
)
from service.classifier import Classifier
from tests.conftest import REPO, TEST_DATA, TRAIN_DATA
from training.corpus import read_corpus

MAX_ARTIFACT_BYTES = 20 * 1024 * 1024


@cache
def bundled() -> ModelArtifact:
    return load_artifact(bundled_model_dir())


@cache
def classifier() -> Classifier:
    return Classifier(bundled())


def labels_of(sentence: str) -> list[str]:
    return classifier().predict([sentence])[0]["labels"]


def test_latest_names_the_newest_bundled_artifact() -> None:
    latest = (bundled_model_dir() / LATEST_FILE).read_text().strip()
    assert latest == newest_version(bundled_model_dir()) == bundled().version


def test_bundled_model_was_trained_on_the_committed_data() -> None:
    data = bundled().metadata["data"]
    assert data["train"]["sha256"] == hashlib.sha256(TRAIN_DATA.read_bytes()).hexdigest()
    assert data["test"]["sha256"] == hashlib.sha256(TEST_DATA.read_bytes()).hexdigest()


def test_bundled_model_is_small_and_matches_the_pinned_scikit_learn() -> None:
    assert (bundled().path / "model.joblib").stat().st_size < MAX_ARTIFACT_BYTES
    pyproject = (REPO / "pyproject.toml").read_text()
    pinned = re.search(r'"scikit-learn==([^"]+)"', pyproject)
    assert pinned is not None
    assert pinned.group(1) == sklearn.__version__ == bundled().metadata["libraries"]["scikit-learn"]


def test_fast_path_equals_the_scikit_learn_pipeline_on_the_test_split() -> None:
    texts = read_corpus(TEST_DATA, min_examples_per_label=0).texts
    expected = bundled().estimator.predict_proba(texts)
    np.testing.assert_allclose(classifier().probabilities(texts), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("tank", ["T-72B3", "T-90M", "Leopard 2A6", "M1 Abrams", "Merkava"])
def test_a_destroyed_tank_is_a_military_loss_whatever_its_name(tank: str) -> None:
    assert labels_of(f"Drone footage shows a {tank} tank destroyed near the village.")[0] == (
        "military_loss"
    )


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        (
            "Three soldiers were killed and five wounded when their convoy was ambushed.",
            "military_loss",
        ),
        ("Shelling destroyed a maternity hospital overnight, killing two nurses.", "civilian_harm"),
        (
            "Hundreds of families fled their homes as the fighting reached the outskirts.",
            "civilian_harm",
        ),
        (
            "The prime minister condemned the attack as a cowardly act of terror.",
            "political_statement",
        ),
        ("Parliament voted to extend martial law by ninety days.", "political_statement"),
        ("Analysts expect the offensive to stall once the autumn rains arrive.", "forecast"),
        ("The central bank expects inflation to ease next year.", "forecast"),
        ("Foreign ministers of both countries met in Istanbul on Friday.", "other"),
        ("Grain exports rose 12 percent in September compared with a year earlier.", "other"),
    ],
)
def test_clear_sentences_get_their_label(sentence: str, expected: str) -> None:
    assert labels_of(sentence)[0] == expected
