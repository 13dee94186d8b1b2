"""Metrics for multi-label predictions with a primary label.

The headline figure is macro-F1 over the five labels on the *primary* label: the first gold
label against the first predicted one. The lenient variant counts a predicted primary label as
right when it is any of the gold labels. Calibration is measured as the expected calibration
error (ECE) of every per-label score against whether the sentence carries that label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from service.labels import LABELS, decide_label_rows

FloatMatrix = npt.NDArray[np.float64]
ECE_BINS = 15


def predicted_label_sets(
    probabilities: FloatMatrix, thresholds: dict[str, float]
) -> list[list[str]]:
    """The labels each row carries under the given thresholds, highest score first."""
    return decide_label_rows(np.asarray(probabilities, dtype=np.float64), thresholds)


def evaluate(
    gold: Sequence[Sequence[str]],
    probabilities: FloatMatrix,
    thresholds: dict[str, float],
) -> dict[str, Any]:
    """Every figure the report and the metadata carry, for one labeled set."""
    predicted = predicted_label_sets(probabilities, thresholds)
    gold_primary = [labels[0] for labels in gold]
    predicted_primary = [labels[0] for labels in predicted]
    lenient_gold = [
        guess if guess in labels else labels[0]
        for guess, labels in zip(predicted_primary, gold, strict=True)
    ]
    indicator = label_indicator(gold)
    predicted_indicator = label_indicator(predicted)
    return {
        "examples": len(gold),
        "primary": _single_label_scores(gold_primary, predicted_primary),
        "lenient_macro_f1": _single_label_scores(lenient_gold, predicted_primary)["macro_f1"],
        "multilabel": _multilabel_scores(indicator, predicted_indicator),
        "ece": {
            "per_label_scores": expected_calibration_error(
                probabilities.ravel(), indicator.ravel()
            ),
            "primary_confidence": expected_calibration_error(
                probabilities.max(axis=1),
                np.array(
                    [
                        LABELS[int(np.argmax(row))] in labels
                        for row, labels in zip(probabilities, gold, strict=True)
                    ]
                ),
            ),
        },
        "confusion_matrix": {
            "labels": list(LABELS),
            "rows_gold_columns_predicted": confusion_matrix(
                gold_primary, predicted_primary, labels=list(LABELS)
            ).tolist(),
        },
    }


def label_indicator(label_sets: Sequence[Sequence[str]]) -> npt.NDArray[np.int_]:
    matrix = np.zeros((len(label_sets), len(LABELS)), dtype=int)
    for row, labels in enumerate(label_sets):
        for label in labels:
            matrix[row, LABELS.index(label)] = 1
    return matrix


def primary_macro_f1(gold_primary: Sequence[str], probabilities: FloatMatrix) -> float:
    """Threshold-free macro-F1 of the highest-scoring label; used to compare candidate models."""
    predicted = [LABELS[int(index)] for index in probabilities.argmax(axis=1)]
    return float(_single_label_scores(list(gold_primary), predicted)["macro_f1"])


def expected_calibration_error(
    scores: npt.ArrayLike, outcomes: npt.ArrayLike, *, bins: int = ECE_BINS
) -> float:
    """Weighted mean gap between confidence and observed frequency over equal-width bins."""
    curve = reliability_curve(scores, outcomes, bins=bins)
    count = sum(members for _, _, members in curve)
    if count == 0:
        return 0.0
    return sum(members * abs(conf - seen) for conf, seen, members in curve) / count


def reliability_curve(
    scores: npt.ArrayLike, outcomes: npt.ArrayLike, *, bins: int = ECE_BINS
) -> list[tuple[float, float, int]]:
    """(mean confidence, observed frequency, count) for each non-empty bin."""
    confidence = np.asarray(scores, dtype=float)
    observed = np.asarray(outcomes, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    curve = []
    for index in range(bins):
        members = which == index
        if members.any():
            curve.append(
                (
                    float(confidence[members].mean()),
                    float(observed[members].mean()),
                    int(members.sum()),
                )
            )
    return curve


def _single_label_scores(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=list(LABELS), zero_division=0
    )
    return {
        "per_label": _per_label(precision, recall, f1, support),
        "macro_f1": float(np.mean(f1)),
        "accuracy": float(np.mean([g == p for g, p in zip(gold, predicted, strict=True)])),
    }


def _multilabel_scores(
    gold: npt.NDArray[np.int_], predicted: npt.NDArray[np.int_]
) -> dict[str, Any]:
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, zero_division=0
    )
    return {
        "per_label": _per_label(precision, recall, f1, support),
        "macro_f1": float(np.mean(f1)),
    }


def _per_label(*columns: npt.NDArray[Any]) -> dict[str, dict[str, float]]:
    precision, recall, f1, support = columns
    return {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(LABELS)
    }
