"""The accurate profile's fusion: the fast model and the tuned encoder's head, as one model."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from scipy.special import expit

from service.artifact import load_artifact
from service.classifier import Classifier
from service.encoder import SentenceEmbedder
from service.labels import LABELS
from tests.conftest import needs_accurate_extra, needs_finetune_extra, texts_of
from training import fusion
from training.finetune import FinetunedEncoder


def test_the_held_out_share_keeps_every_label_and_changes_with_the_seed() -> None:
    primary = [label for label in LABELS for _ in range(40)]
    tune, held_out = fusion.held_out_split(primary, seed=0)
    assert (len(tune), len(held_out)) == (170, 30)
    assert set(tune).isdisjoint(held_out)
    assert Counter(primary[row] for row in held_out) == dict.fromkeys(LABELS, 6)
    assert np.array_equal(held_out, fusion.held_out_split(primary, seed=0)[1])
    assert not np.array_equal(held_out, fusion.held_out_split(primary, seed=1)[1])


def test_the_stacker_leans_on_the_model_that_is_right() -> None:
    generator = np.random.default_rng(0)
    truth = generator.integers(0, 2, size=(600, len(LABELS)))
    informative = np.where(truth == 1, 2.0, -2.0) + generator.normal(0, 1.0, truth.shape)
    noise = generator.normal(0, 2.0, truth.shape)
    # The head knows the first two labels, the fast model the other three.
    head = np.where(np.arange(len(LABELS)) < 2, informative, noise)
    fast = np.where(np.arange(len(LABELS)) < 2, noise, informative)
    stacker = fusion.Stacker.fit(fast, head, truth)
    assert (stacker.head_weight[:2] > 5 * np.abs(stacker.fast_weight[:2])).all()
    assert (stacker.fast_weight[2:] > 5 * np.abs(stacker.head_weight[2:])).all()
    fused = expit(stacker.log_odds(fast, head)) >= 0.5
    assert np.mean(fused == truth) > 0.9
    assert set(stacker.describe()) == set(LABELS)


@needs_accurate_extra
def test_the_fused_pipeline_computes_the_stacker_s_sum(
    small_model_dir: Path, small_data: tuple[Path, Path]
) -> None:
    """One linear model over n-grams and embedding, equal to stacking the two models' scores;
    the service's fast path gives the same numbers."""
    fast = load_artifact(small_model_dir).estimator
    generator = np.random.default_rng(1)
    tuned = FinetunedEncoder(
        weights=None,  # type: ignore[arg-type]  # the shipped encoder stands in for a tuned one
        head_coef=generator.normal(0, 3, (len(LABELS), 384)),
        head_intercept=generator.normal(0, 1, len(LABELS)),
    )
    stacker = fusion.Stacker(
        fast_weight=np.array([0.8, 1.1, 0.5, 1.0, 0.3]),
        head_weight=np.array([0.4, 0.2, 0.9, 0.0, 1.2]),
        offset=np.array([-0.3, 0.1, 0.0, 0.5, -1.0]),
    )
    texts = texts_of(small_data[1])[:40]
    embedder = SentenceEmbedder().fit(texts)
    expected = expit(
        stacker.log_odds(
            fusion.log_odds(fast.predict_proba(texts)),
            fusion.head_logits(tuned, embedder.transform(texts)),
        )
    )
    fused = fusion.fused_pipeline(fast, embedder, tuned, stacker)
    np.testing.assert_allclose(fused.predict_proba(texts), expected, atol=1e-9)


@needs_finetune_extra
def test_an_accurate_artifact_records_its_fusion_and_explains_in_n_grams(
    accurate_model_dir: Path, small_data: tuple[Path, Path]
) -> None:
    artifact = load_artifact(accurate_model_dir)
    fused = artifact.metadata["fusion"]
    assert fused["held_out_examples"] == artifact.metadata["metrics"]["held_out"]["examples"] > 0
    assert set(fused["stacker"]) == set(LABELS)
    assert artifact.metadata["params"]["embedding_weight"] is None  # the fast model's choice
    report = (accurate_model_dir / artifact.version / "report.md").read_text()
    assert "Held out of fine-tuning (the fusion is fitted here)" in report
    assert "| military_loss |" in report.split("## Model selection")[0]  # the stacker's table
    classifier = Classifier(artifact)
    texts = texts_of(small_data[1])
    np.testing.assert_allclose(
        classifier.probabilities(texts), artifact.estimator.predict_proba(texts), atol=1e-9
    )
    evidence = classifier.explain("Two soldiers were killed by a mine.", ["military_loss"])
    assert evidence["military_loss"]
