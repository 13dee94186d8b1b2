"""The label set, shared by training and serving so the two can never disagree."""

from collections.abc import Mapping
from typing import Final

import numpy as np
import numpy.typing as npt

MILITARY_LOSS: Final = "military_loss"
CIVILIAN_HARM: Final = "civilian_harm"
POLITICAL_STATEMENT: Final = "political_statement"
FORECAST: Final = "forecast"
OTHER: Final = "other"

# Order matters: it is the column order of every score matrix and artifact.
LABELS: Final[tuple[str, ...]] = (
    MILITARY_LOSS,
    CIVILIAN_HARM,
    POLITICAL_STATEMENT,
    FORECAST,
    OTHER,
)


def decide_label_rows(
    rows: npt.NDArray[np.float64], thresholds: Mapping[str, float]
) -> list[list[str]]:
    """The labels each row of a score matrix (columns in `LABELS` order) carries, highest first.

    Every label at or above its threshold is kept. `other` stands alone: it is returned when no
    label reaches its threshold, or when `other` itself is the highest-scoring label that does.
    """
    passing = rows >= np.array([thresholds[label] for label in LABELS])
    # Highest first; equal scores keep the order of LABELS.
    ranking = np.argsort(-rows, axis=1, kind="stable")
    decided = []
    for ranked, passes in zip(ranking.tolist(), passing.tolist(), strict=True):
        labels = [LABELS[column] for column in ranked if passes[column]]
        if not labels or labels[0] == OTHER:
            decided.append([OTHER])
        else:
            decided.append([label for label in labels if label != OTHER])
    return decided
