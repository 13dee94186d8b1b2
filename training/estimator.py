"""One calibrated binary classifier per label, fitted so that a sentence's main label ranks first.

`CalibratedLinear` is one label's model: a linear classifier whose decision values are mapped
to probabilities by Platt scaling fitted on out-of-fold decision values.

A sentence may carry several labels, and the first is its primary one. With plain one-vs-rest
fitting, every label of "the minister condemned the strike that killed 12" is learned as
strongly as every other, so both scores saturate near 1 and their order is a coin toss. Here a
label that a sentence carries only as a secondary label counts `secondary_weight` times as much
when the linear model is fitted; the Platt calibration that follows still uses every label
membership at full weight, so the scores remain calibrated probabilities of membership.
Cross-validation on the training data chooses the weight (see training/select.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, MultiOutputMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.parallel import Parallel, delayed

# Values of the graded label matrix that `fit` takes (see Corpus.graded_label_matrix).
ABSENT, SECONDARY, PRIMARY = 0, 1, 2


class CalibratedLinear(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A linear classifier with Platt-scaled probabilities: P(y=1) = expit(slope_ × d + offset_).

    The weights of `fit` shape only the linear model; the calibration is fitted on unweighted
    out-of-fold decision values, so the probabilities stay calibrated for every example.
    """

    def __init__(self, linear: Any, *, folds: int = 5, seed: int = 0) -> None:
        self.linear = linear
        self.folds = folds
        self.seed = seed

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> CalibratedLinear:
        target = np.asarray(y)
        weights = np.ones(len(target)) if sample_weight is None else np.asarray(sample_weight)
        self.linear_ = clone(self.linear).fit(X, target, sample_weight=weights)
        out_of_fold = np.empty(len(target))
        splitter = StratifiedKFold(n_splits=self.folds, shuffle=True, random_state=self.seed)
        for train, held_out in splitter.split(np.zeros(len(target)), target):
            model = clone(self.linear).fit(X[train], target[train], sample_weight=weights[train])
            out_of_fold[held_out] = model.decision_function(X[held_out])
        platt = LogisticRegression(C=np.inf).fit(out_of_fold.reshape(-1, 1), target)  # no penalty
        self.slope_ = float(platt.coef_[0, 0])
        self.offset_ = float(platt.intercept_[0])
        self.classes_ = np.array([0, 1])
        return self

    @classmethod
    def fixed(
        cls, coefficients: npt.NDArray[np.float64], intercept: float, *, slope: float = 1.0
    ) -> CalibratedLinear:
        """A fitted label model with the given weights: log-odds = slope × (w·x + intercept).

        For models assembled from others' weights (training/fusion.py) rather than fitted here.
        """
        model = cls(FixedLinear(coefficients, intercept))
        model.linear_ = model.linear
        model.slope_, model.offset_ = float(slope), 0.0
        model.classes_ = np.array([0, 1])
        return model

    def decision_function(self, X: Any) -> npt.NDArray[np.float64]:
        return np.asarray(self.linear_.decision_function(X), dtype=np.float64)

    def predict_proba(self, X: Any) -> npt.NDArray[np.float64]:
        positive = expit(self.slope_ * self.decision_function(X) + self.offset_)
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: Any) -> npt.NDArray[np.int_]:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


class PrimaryWeightedOneVsRest(MultiOutputMixin, ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Multi-label one-vs-rest whose `estimators_[i]` is label i's `CalibratedLinear`."""

    def __init__(
        self, estimator: Any, *, secondary_weight: float = 1.0, n_jobs: int | None = None
    ) -> None:
        self.estimator = estimator
        self.secondary_weight = secondary_weight
        self.n_jobs = n_jobs

    def fit(self, X: Any, graded: npt.ArrayLike) -> PrimaryWeightedOneVsRest:
        grades = np.asarray(graded)
        if grades.ndim != 2 or not np.isin(grades, (ABSENT, SECONDARY, PRIMARY)).all():
            raise ValueError(
                "expected a graded label matrix of 0 (absent), 1 (secondary) and 2 (primary), "
                f"got shape {grades.shape} with values {np.unique(grades)[:5]}"
            )
        membership = (grades != ABSENT).astype(int)
        weights = np.where(grades == SECONDARY, self.secondary_weight, 1.0)
        self.estimators_ = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_label)(self.estimator, X, membership[:, column], weights[:, column])
            for column in range(grades.shape[1])
        )
        self.classes_ = np.arange(grades.shape[1])
        return self

    @classmethod
    def of_fitted(cls, estimators: list[CalibratedLinear]) -> PrimaryWeightedOneVsRest:
        """A fitted model of one fitted `CalibratedLinear` per label, in label order."""
        model = cls(estimators[0])
        model.estimators_ = list(estimators)
        model.classes_ = np.arange(len(estimators))
        return model

    def predict_proba(self, X: Any) -> npt.NDArray[np.float64]:
        """Calibrated probability of each label (columns are labels; rows need not sum to 1)."""
        return np.column_stack([estimator.predict_proba(X)[:, 1] for estimator in self.estimators_])

    def predict(self, X: Any) -> npt.NDArray[np.int_]:
        return (self.predict_proba(X) >= 0.5).astype(int)


class FixedLinear(BaseEstimator):  # type: ignore[misc]
    """A linear decision function with given weights, shaped like a fitted scikit-learn model's
    (`coef_` of one row, `intercept_` of one value), so the service reads it like any other."""

    def __init__(self, coefficients: npt.NDArray[np.float64], intercept: float) -> None:
        self.coefficients = coefficients
        self.intercept = intercept

    @property
    def coef_(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.coefficients, dtype=np.float64).reshape(1, -1)

    @property
    def intercept_(self) -> npt.NDArray[np.float64]:
        return np.array([self.intercept], dtype=np.float64)

    def decision_function(self, X: Any) -> npt.NDArray[np.float64]:
        values = safe_sparse_dot(X, np.asarray(self.coefficients, dtype=np.float64))
        return np.asarray(values, dtype=np.float64).ravel() + self.intercept


def _fit_label(estimator: Any, X: Any, membership: Any, weights: Any) -> Any:
    return clone(estimator).fit(X, membership, sample_weight=weights)
