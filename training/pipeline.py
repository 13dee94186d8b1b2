"""Build the scikit-learn pipeline from typed, comparable parameters."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from training.estimator import CalibratedLinear, PrimaryWeightedOneVsRest

# Words with inner apostrophes and hyphens stay whole ("didn't", "al-Shabaab", "T-90").
WORD_TOKEN_PATTERN = r"(?u)\b\w[\w'’-]*\w\b|\b\w\b"
CALIBRATION_FOLDS = 5


@dataclass(frozen=True, kw_only=True)
class ModelParams:
    """The knobs compared during model selection."""

    C: float = 4.0
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] | None = (3, 5)
    min_df: int = 2
    class_weight: str | None = "balanced"
    secondary_weight: float = 0.1

    def describe(self) -> str:
        parts = [f"word {self.word_ngrams[0]}-{self.word_ngrams[1]}"]
        if self.char_ngrams:
            parts.append(f"char {self.char_ngrams[0]}-{self.char_ngrams[1]}")
        return f"C={self.C:g}, {' + '.join(parts)}, secondary labels x{self.secondary_weight:g}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_pipeline(params: ModelParams, *, seed: int) -> Pipeline:
    """TF-IDF word (and character) n-grams → one calibrated logistic regression per label.

    Each label gets its own binary classifier because a sentence may carry several labels.
    Probabilities are Platt-calibrated on cross-validated decision values, over one linear model
    per label, so explanations are exact. The pipeline is fitted on a graded label matrix
    (see training/estimator.py).
    """
    features: list[tuple[str, TfidfVectorizer]] = [
        (
            "word",
            TfidfVectorizer(
                analyzer="word",
                ngram_range=params.word_ngrams,
                token_pattern=WORD_TOKEN_PATTERN,
                strip_accents="unicode",
                sublinear_tf=True,
                min_df=params.min_df,
                dtype=np.float64,
            ),
        )
    ]
    if params.char_ngrams:
        features.append(
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=params.char_ngrams,
                    strip_accents="unicode",
                    sublinear_tf=True,
                    min_df=params.min_df,
                    dtype=np.float64,
                ),
            )
        )
    calibrated = CalibratedLinear(_linear_model(params, seed), folds=CALIBRATION_FOLDS, seed=seed)
    return Pipeline(
        [
            ("features", FeatureUnion(features)),
            (
                "classifier",
                PrimaryWeightedOneVsRest(calibrated, secondary_weight=params.secondary_weight),
            ),
        ]
    )


def _linear_model(params: ModelParams, seed: int) -> LogisticRegression:
    return LogisticRegression(
        C=params.C,
        class_weight=params.class_weight,
        solver="liblinear",
        # More features than sentences: the dual problem reaches the same optimum about six
        # times faster (0.6 s against 3.9 s a label on the full corpus).
        dual=True,
        max_iter=1_000,
        random_state=seed,
    )
