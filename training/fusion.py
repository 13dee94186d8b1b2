"""The accurate profile with a fine-tuned encoder: the fast model, corrected by the encoder's head.

Fine-tuning (training/finetune.py) leaves a linear head that reads each label's log-odds off the
tuned embedding. The head and the fast profile's TF-IDF model are right on different sentences,
so their scores are combined, per label, by a small logistic regression (a stacker):

    log-odds(label) = a × fast's log-odds + b × head's logit + c

A stacker must learn how far to trust each model on sentences neither has seen. The tuned
encoder has seen every sentence it was tuned on, so a share of the training data is held out of
fine-tuning (`HELD_OUT_SHARE`, stratified by primary label) and the stacker is fitted there, on
the head's logits and on the fast model's out-of-fold log-odds. The per-label thresholds are
tuned on the same held-out sentences.

Both models are linear, in the TF-IDF features and in the embedding, so the fused model is one
linear model over both: the same kind of pipeline as any accurate model, which the service
serves, explains (the n-grams' exact share of the log-odds) and keeps deterministic unchanged.
docs/decisions/0001-sentence-encoder.md has the comparison that chose this way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import logit
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import FeatureUnion, Pipeline

from service.encoder import SentenceEmbedder
from service.labels import LABELS
from training.estimator import CalibratedLinear, PrimaryWeightedOneVsRest
from training.finetune import FinetunedEncoder
from training.pipeline import EMBEDDING_STEP

HELD_OUT_SHARE = 0.15
# Out-of-fold probabilities are clipped away from 0 and 1 before their log-odds are taken.
PROBABILITY_FLOOR = 1e-6

FloatMatrix = npt.NDArray[np.float64]


def held_out_split(
    primary: Sequence[str], *, seed: int, share: float = HELD_OUT_SHARE
) -> tuple[npt.NDArray[np.int_], npt.NDArray[np.int_]]:
    """Row numbers to fine-tune on, and row numbers held out for the stacker."""
    rows = np.arange(len(primary))
    tune, held_out = train_test_split(
        rows, test_size=share, random_state=seed, shuffle=True, stratify=list(primary)
    )
    return np.sort(tune), np.sort(held_out)


@dataclass(frozen=True)
class Stacker:
    """Per label: log-odds = fast_weight × fast's log-odds + head_weight × head logit + offset."""

    fast_weight: npt.NDArray[np.float64]  # (labels,)
    head_weight: npt.NDArray[np.float64]
    offset: npt.NDArray[np.float64]

    @classmethod
    def fit(
        cls, fast_log_odds: FloatMatrix, head_logits: FloatMatrix, indicator: npt.NDArray[np.int_]
    ) -> Stacker:
        """Fit on held-out sentences: each label's two scores against its 0/1 membership."""
        weights = []
        for column in range(len(LABELS)):
            scores = np.column_stack([fast_log_odds[:, column], head_logits[:, column]])
            # Unpenalized, like the Platt scaling it replaces: three numbers from hundreds of
            # sentences need no shrinking, and a penalty would pull the scores off calibration.
            model = LogisticRegression(C=np.inf).fit(scores, indicator[:, column])
            weights.append((*model.coef_[0], model.intercept_[0]))
        fast_weight, head_weight, offset = np.asarray(weights, dtype=np.float64).T
        return cls(fast_weight=fast_weight, head_weight=head_weight, offset=offset)

    def log_odds(self, fast_log_odds: FloatMatrix, head_logits: FloatMatrix) -> FloatMatrix:
        return np.asarray(
            self.fast_weight * fast_log_odds + self.head_weight * head_logits + self.offset,
            dtype=np.float64,
        )

    def describe(self) -> dict[str, dict[str, float]]:
        """The stacker's weights by label, for the artifact's metadata."""
        return {
            label: {
                "fast_weight": round(float(self.fast_weight[column]), 6),
                "head_weight": round(float(self.head_weight[column]), 6),
                "offset": round(float(self.offset[column]), 6),
            }
            for column, label in enumerate(LABELS)
        }


def log_odds(probabilities: FloatMatrix) -> FloatMatrix:
    """Log-odds of calibrated probabilities, kept finite."""
    clipped = np.clip(probabilities, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
    return np.asarray(logit(clipped), dtype=np.float64)


def head_logits(tuned: FinetunedEncoder, embeddings: FloatMatrix) -> FloatMatrix:
    """The fine-tuning head's logit of every label, on L2-normalised embeddings."""
    return np.asarray(embeddings @ tuned.head_coef.T + tuned.head_intercept, dtype=np.float64)


def fused_pipeline(
    fast: Pipeline, embedder: SentenceEmbedder, tuned: FinetunedEncoder, stacker: Stacker
) -> Pipeline:
    """One linear pipeline whose log-odds are the stacker's, from a fitted fast pipeline.

    fast's log-odds are slope × (w·x + i) + offset for its TF-IDF features x, and the head's
    logit is h·e + j for the embedding e; the stacker's weighted sum of the two is linear in
    [x, e], with coefficients [a·slope·w, b·h] and intercept a·(slope·i + offset) + b·j + c.
    """
    union = fast.named_steps["features"]
    features = FeatureUnion(
        [*union.transformer_list, (EMBEDDING_STEP, embedder)],
        transformer_weights={**(union.transformer_weights or {}), EMBEDDING_STEP: 1.0},
    )
    labels = []
    for column, calibrated in enumerate(fast.named_steps["classifier"].estimators_):
        scale = stacker.fast_weight[column] * calibrated.slope_
        head_weight = stacker.head_weight[column]
        coefficients = np.concatenate(
            [scale * calibrated.linear_.coef_.ravel(), head_weight * tuned.head_coef[column]]
        )
        intercept = (
            scale * float(calibrated.linear_.intercept_[0])
            + stacker.fast_weight[column] * calibrated.offset_
            + head_weight * tuned.head_intercept[column]
            + stacker.offset[column]
        )
        labels.append(CalibratedLinear.fixed(coefficients, intercept))
    return Pipeline(
        [("features", features), ("classifier", PrimaryWeightedOneVsRest.of_fitted(labels))]
    )


def describe(stacker: Stacker, held_out: int, share: float = HELD_OUT_SHARE) -> dict[str, Any]:
    """What an artifact's metadata records about the fusion."""
    return {
        "held_out_share": share,
        "held_out_examples": held_out,
        "stacker": stacker.describe(),
    }
